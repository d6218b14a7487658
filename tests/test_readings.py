"""The `code` reading against the authors' loop, and each reading switch on small cases."""

import pytest
import torch
from authors_loop import AuthorsDNN, AuthorsFFA, authors_epochs

from ffbench.experiments import get, under
from ffbench.training import BackpropTask, FFTask

CPU = torch.device("cpu")
PLAN = [(40, 0.05), (300, 2.0), (700, 8.0)]  # (batch, rate) of three epochs


@pytest.mark.parametrize("name", ["adj_FFA0_1", "adj_FFA1_2", "FFA0"])
def test_code_reading_takes_the_authors_steps(mnist_small, name):
    """FFTask under the code reading (encoded inputs, fused goodness, chunks, windows, shared
    ASGD with decay-only steps) against the authors' loop written plainly: same losses, same
    weights, same predictions after three epochs."""
    exp = under(get(name), "code")
    torch.manual_seed(0)
    fast = FFTask(exp, mnist_small, CPU, chunk=128)  # several chunks per batch
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
    fast = BackpropTask(exp, mnist_small, CPU, chunk=128)
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
