"""The `code` reading against the authors' loop, and each reading switch on small cases."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from authors_loop import AuthorsDNN, AuthorsFFA, authors_epochs

from ffbench.core.losses import Loss, code_loss_terms, ff_loss_terms
from ffbench.core.models import FFNet, GoodnessReduce, LabelInput, encode_images
from ffbench.core.optimizers import Optimizer
from ffbench.methods.backprop import Backprop
from ffbench.methods.ff import FF, wrong_label_negatives
from ffbench.rows import get, overrides, under
from ffbench.rows.readings import READINGS, SWITCHES
from ffbench.runner.loop import train

CPU = torch.device("cpu")
PLAN = [(40, 0.05), (300, 2.0), (700, 8.0)]  # (batch, rate) of three epochs


@pytest.mark.parametrize("name", ["adj_FFA0_1", "adj_FFA1_2", "FFA0"])
def test_code_reading_takes_the_authors_steps(mnist_small, name):
    """FF under the code reading (encoded inputs, fused goodness, chunks, windows, shared
    ASGD with decay-only steps) against the authors' loop written plainly: same losses, same
    weights, same predictions after three epochs."""
    exp = under(get(name), "code")
    torch.manual_seed(0)
    fast = FF(exp, mnist_small, CPU, chunk=128)  # several chunks per batch
    gen = torch.Generator().manual_seed(0)
    fast_losses = []
    for batch, rate in PLAN:
        for group in fast.optimizers[0].param_groups:
            group["lr"] = rate
        fast_losses.append(fast.train_epoch(None, batch, gen).item())
    torch.manual_seed(0)
    plain = AuthorsFFA(exp.loss)
    raw = mnist_small.x_train * 255
    plain_losses = authors_epochs(plain, raw, mnist_small.y_train, PLAN,
                                  torch.Generator().manual_seed(0))  # fmt: skip
    assert fast_losses == pytest.approx(plain_losses, rel=1e-4, abs=1e-6)
    for a, b in zip(fast.model.layers, plain.layers, strict=True):
        torch.testing.assert_close(a.weight, b.weight, rtol=1e-4, atol=1e-6)
    x = mnist_small.x_test[:2000]
    assert (fast.predict(x) == plain.predict(x * 255)).float().mean() > 0.99


def test_code_reading_dnn_is_the_authors_dnn(mnist_small):
    exp = under(get("DNN_base"), "code")
    torch.manual_seed(0)
    fast = Backprop(exp, mnist_small, CPU, chunk=128)
    gen = torch.Generator().manual_seed(0)
    fast_losses = []
    for batch, rate in PLAN:
        for group in fast.optimizers[0].param_groups:
            group["lr"] = rate * 1e-3
        fast_losses.append(fast.train_epoch(None, batch, gen).item())
    torch.manual_seed(0)
    plain = AuthorsDNN()
    plan = [(b, r * 1e-3) for b, r in PLAN]
    plain_losses = authors_epochs(plain, mnist_small.x_train * 255, mnist_small.y_train, plan,
                                  torch.Generator().manual_seed(0))  # fmt: skip
    assert fast_losses == pytest.approx(plain_losses, rel=1e-4)
    for a, b in zip(fast.model.net[::2], plain.layers, strict=True):
        torch.testing.assert_close(a.weight, b.weight, rtol=1e-4, atol=1e-6)


def test_two_layers_of_the_code_loss_start_at_1_448():
    """With zero goodness each adjusted layer averages log(1 + e^0.5) and log(1 + e^-0.5): two
    layers give 1.448, where the figures FFA0_0 ... FFA1_2 start (-1.448 for L1); the plain
    (linear) loss starts at 0, as pFFA0 and pFFA1 do."""
    zero = torch.zeros(5)
    kinds = [Loss.L0, Loss.L1, Loss.adj_L0, Loss.adj_L1]
    by_kind = {k: code_loss_terms(k, zero, zero, 0.5).mean().item() for k in kinds}
    assert 2 * by_kind[Loss.adj_L0] == pytest.approx(1.4481, abs=1e-4)
    assert 2 * by_kind[Loss.adj_L1] == pytest.approx(-1.4481, abs=1e-4)
    assert by_kind[Loss.L0] == pytest.approx(0.0, abs=1e-6)
    assert by_kind[Loss.L1] == pytest.approx(0.0, abs=1e-6)


def test_a_code_reading_run_starts_where_the_figures_do(mnist_small):
    exp = dataclasses.replace(under(get("adj_FFA0_1"), "code"), epochs=1, train_subset=2000)
    first = train(exp, mnist_small, CPU, seed=0).records[0]
    assert first["batch"] == 50 and first["rate"] == 0.025
    assert first["loss"] == pytest.approx(1.448, abs=1e-3)


def test_the_plain_losses_of_the_code_are_one_linear_objective_until_exp_leaves_float32():
    g_pos, g_neg = torch.tensor([0.2, 3.0]), torch.tensor([1.0, 0.1])
    s = torch.cat([g_pos - 0.5, 0.5 - g_neg])
    for kind in (Loss.L0, Loss.L1):
        torch.testing.assert_close(code_loss_terms(kind, g_pos, g_neg, 0.5), -s)
    # one positive far above theta: ln(exp(.)) computed literally breaks once |s| passes 88.7
    # (exp(s) overflows, or 1/exp(-s) in its gradient does), however small the mean loss
    for g, broken in [(80.0, False), (95.0, True)]:
        g_pos = torch.tensor([0.2, g], requires_grad=True)
        for kind in (Loss.L0, Loss.L1):
            code_loss_terms(kind, g_pos, g_neg, 0.5).mean().backward()
            assert (not g_pos.grad.isfinite().all()) == broken, (g, kind)
            g_pos.grad = None
    # the adjusted forms are eqs 3.13 and 3.16 themselves, not ln(1 + sigma) of eqs 4.1, 4.2
    torch.testing.assert_close(code_loss_terms(Loss.adj_L0, g_pos, g_neg, 0.5),
                               ff_loss_terms(Loss.L0, g_pos, g_neg, 0.5))  # fmt: skip
    torch.testing.assert_close(code_loss_terms(Loss.adj_L1, g_pos, g_neg, 0.5),
                               ff_loss_terms(Loss.L1, g_pos, g_neg, 0.5))  # fmt: skip


def test_wrong_label_negatives_never_carry_the_label():
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (500,), generator=gen)
    perm = torch.randperm(500, generator=gen)
    draw = wrong_label_negatives(perm, y, gen)
    images, labels = draw(7, 300)
    assert torch.equal(images, perm[7:307])  # the same images
    assert (labels != y[images]).all()
    assert set(labels.tolist()) == set(range(10))  # every wrong label is drawn
    again = draw(7, 300)[1]
    assert not torch.equal(labels, again)  # afresh for every batch


def test_mean_goodness_is_the_sum_over_the_width():
    torch.manual_seed(0)
    x = torch.rand(8, 784)
    total, mean = (FFNet((784, 800, 10), True, True, 1e-8, g) for g in GoodnessReduce)
    mean.load_state_dict(total.state_dict())
    g_sum, g_mean = total.goodnesses(x), mean.goodnesses(x)
    torch.testing.assert_close(g_mean[0], g_sum[0] / 800)
    torch.testing.assert_close(g_mean[1], g_sum[1] / 10)


def test_the_authors_label_input_is_set_after_normalising():
    """core/FFA.py:22 and 32-38: F.normalize(image), first 10 pixels 0, 1.0 at the label; the
    layer then divides by (norm + 1e-4)."""
    x = torch.rand(4, 784) * 255
    base, v = encode_images(x, LabelInput.after_norm, True, 1e-4)
    joined = F.normalize(x).clone()
    joined[:, :10] = 0
    joined[range(4), [3, 1, 4, 1]] = 1.0
    want = joined / (joined.norm(dim=1, keepdim=True) + 1e-4)
    got = base.clone()
    got[range(4), [3, 1, 4, 1]] = v
    torch.testing.assert_close(got, want)


def test_the_adam_rows_run_what_their_figures_show():
    """The notebooks' `D.optimizer` is never read (core/dojo.py:10, 42): ASGD; the figures
    FFA0_2 and FFA1_3 start at 0 and fall without bound: the plain losses."""
    for name, loss in (("adj_FFA0_2", Loss.L0), ("adj_FFA1_3", Loss.L1)):
        exp = under(get(name), "code")
        assert exp.optimizer == Optimizer.asgd and exp.loss == loss
        assert under(get(name), "text").optimizer == Optimizer.adam


def test_a_reading_sets_every_switch_and_rows_beyond_the_notes_keep_theirs():
    for reading in READINGS.values():
        assert {s.name for s in SWITCHES} <= set(reading.settings)
    assert under(get("FF_best"), "code") == get("FF_best")
    assert overrides(under(get("adj_FFA0_1"), "code")) == {}
