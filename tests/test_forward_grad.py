"""Forward gradients: exact directional derivatives, and estimates whose mean is the gradient."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from ffbench import methods
from ffbench.core import data
from ffbench.core.models import MLP, GroupLinear
from ffbench.methods import forward_grad
from ffbench.methods.forward_grad import (
    Perturbation,
    activity_perturbed,
    estimate,
    joint_activity_perturbed,
    weight_perturbed,
)
from ffbench.rows import get
from ffbench.runner.loop import train


def small_problem(seed=0):
    torch.manual_seed(seed)
    model = MLP((6, 5, 3)).double()
    x = torch.randn(8, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    true = {k: p.grad.clone() for k, p in model.named_parameters()}
    return model, x, y, true


def flat(grads, model):
    return torch.cat([grads[k].flatten() for k, _ in model.named_parameters()])


def mean_estimate(estimator, model, x, y, draws, **kw):
    gen = torch.Generator().manual_seed(1)
    total = None
    for _ in range(draws):
        _, g = estimator(model, x, y, gen, **kw)
        g = flat(g, model)
        total = g if total is None else total + g
    return total / draws


def test_weight_perturbation_slope_is_the_exact_directional_derivative():
    model, x, y, true = small_problem()
    gen = torch.Generator().manual_seed(3)
    for _ in range(5):
        state = gen.get_state()
        _, est = weight_perturbed(model, x, y, gen)
        gen.set_state(state)  # draw the same direction again to know v
        v = torch.cat([torch.randn(p.shape, generator=gen, dtype=p.dtype).flatten()
                       for _, p in model.named_parameters()])  # fmt: skip
        slope = (flat(true, model) @ v).item()
        torch.testing.assert_close(flat(est, model), slope * v)


def test_activity_perturbation_slope_is_the_exact_directional_derivative():
    """Replaying the generator gives each layer's u; the estimate of layer i's weight gradient
    must be ((dL/dz_i . u_i) u_i)^T h_(i-1), per sample, to the last digit."""
    model, x, y, _ = small_problem()
    first, second = model.net[0], model.net[2]
    z0 = first(x).detach().requires_grad_()
    h1 = torch.relu(z0)
    z1 = second(h1).detach().requires_grad_()
    F.cross_entropy(z1, y, reduction="sum").div(len(x)).backward()
    F.cross_entropy(second(h1), y, reduction="sum").div(len(x)).backward()
    gen = torch.Generator().manual_seed(5)
    state = gen.get_state()
    _, est = activity_perturbed(model, x, y, gen)
    gen.set_state(state)
    for z, h, name in ((z0, x, "net.0"), (z1, h1.detach(), "net.2")):
        u = torch.randn(z.shape, generator=gen, dtype=z.dtype)
        grad_z = (z.grad * u).sum(1, keepdim=True) * u
        torch.testing.assert_close(est[f"{name}.weight"], grad_z.T @ h)
        torch.testing.assert_close(est[f"{name}.bias"], grad_z.sum(0))


def test_joint_perturbation_slope_sums_every_layers_directional_derivative():
    """One jvp for all layers: d = (dL/dz_0 . u_0) + (dL/dz_1 . u_1) per sample, and every
    layer's estimate is (d u_i)^T h_(i-1), to the last digit."""
    model, x, y, _ = small_problem()
    first, second = model.net[0], model.net[2]
    z0 = first(x).detach().requires_grad_()
    z1 = second(torch.relu(z0))
    F.cross_entropy(z1, y, reduction="sum").div(len(x)).backward(inputs=[z0])
    z1 = z1.detach().requires_grad_()
    F.cross_entropy(z1, y, reduction="sum").div(len(x)).backward()
    gen = torch.Generator().manual_seed(5)
    state = gen.get_state()
    _, est = joint_activity_perturbed(model, x, y, gen)
    gen.set_state(state)
    u0, u1 = (torch.randn(z.shape, generator=gen, dtype=z.dtype) for z in (z0, z1))
    d = (z0.grad * u0).sum(1, keepdim=True) + (z1.grad * u1).sum(1, keepdim=True)
    h1 = torch.relu(z0).detach()
    for u, h, name in ((u0, x, "net.0"), (u1, h1, "net.2")):
        torch.testing.assert_close(est[f"{name}.weight"], (d * u).T @ h)
        torch.testing.assert_close(est[f"{name}.bias"], (d * u).sum(0))


@pytest.mark.parametrize("estimator", [weight_perturbed, activity_perturbed,
                                       joint_activity_perturbed])  # fmt: skip
def test_forward_gradient_is_unbiased(estimator):
    model, x, y, true = small_problem()
    g = flat(true, model)
    mean = mean_estimate(estimator, model, x, y, draws=4000)
    cosine = torch.nn.functional.cosine_similarity(mean, g, dim=0).item()
    assert cosine > 0.97
    assert (mean - g).norm() / g.norm() < 0.25  # the scale too: 8 g would be 7 off
    assert (mean.norm() / g.norm()).item() == pytest.approx(1.0, abs=0.2)
    one = mean_estimate(estimator, model, x, y, draws=1)
    assert torch.nn.functional.cosine_similarity(one, g, dim=0).item() < cosine


def test_local_group_slopes_are_the_exact_directional_derivatives_of_the_heads_loss():
    """With a head and 2 groups, group g of the hidden layer's estimate is (dL_head/da . u_g) u_g
    with u_g the draw on its own units only (through the ReLU), to the last digit: what one jvp
    per group of the head's loss gives, here made by autograd from scratch."""
    torch.manual_seed(3)
    model = MLP((6, 4, 3)).double()
    head = torch.nn.Linear(4, 3).double()
    x, y = torch.randn(8, 6, dtype=torch.float64), torch.randint(0, 3, (8,))
    gen = torch.Generator().manual_seed(4)
    state = gen.get_state()
    _, est = activity_perturbed(model, x, y, gen, torch.nn.ModuleList([head]), group_size=2)
    gen.set_state(state)
    a = model.net[0](x).detach().requires_grad_()
    F.cross_entropy(head(torch.relu(a)), y, reduction="sum").div(len(x)).backward()
    u = torch.randn(a.shape, generator=gen, dtype=a.dtype)
    grad_a = torch.cat([(a.grad[:, g] * u[:, g]).sum(1, keepdim=True) * u[:, g]
                        for g in (slice(0, 2), slice(2, 4))], 1)  # fmt: skip
    torch.testing.assert_close(est["net.0.weight"], grad_a.T @ x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(est["net.0.bias"], grad_a.sum(0), rtol=1e-12, atol=1e-12)


def test_local_perturbation_estimates_the_gradient_of_the_local_loss():
    model, x, y, _ = small_problem()
    heads = torch.nn.ModuleList([torch.nn.Linear(5, 3).double()])
    first = model.net[0]
    model.zero_grad()
    F.cross_entropy(heads[0](torch.relu(first(x))), y).backward()
    local_w = first.weight.grad.clone()
    gen = torch.Generator().manual_seed(2)
    est = sum(activity_perturbed(model, x, y, gen, heads)[1]["net.0.weight"] for _ in range(4000))
    est = est / 4000
    assert torch.nn.functional.cosine_similarity(est.flatten(), local_w.flatten(), dim=0) > 0.97


def test_local_losses_leave_no_graph_in_grad():
    """Local losses' jvp reads the heads' parameters; the estimate is the same numbers in or out
    of no_grad, and what reaches `.grad` carries no graph (issue 24: it used to)."""
    model, x, y, _ = small_problem()
    heads = torch.nn.ModuleList([torch.nn.Linear(5, 3).double()])
    _, plain = activity_perturbed(model, x, y, torch.Generator().manual_seed(3), heads)
    _, est = estimate(Perturbation.local, model, x, y, torch.Generator().manual_seed(3), heads)
    assert all(torch.equal(est[k], plain[k].detach()) for k in est)
    g = torch.Generator().manual_seed(0)
    labels = lambda n: torch.randint(0, 10, (n,), generator=g)  # noqa: E731
    tiny = data.MNIST(torch.rand(16, 784, generator=g), labels(16), torch.rand(8, 784, generator=g),
                      labels(8))  # fmt: skip
    exp = dataclasses.replace(get("FG_local"), sizes=(784, 20, 10))
    method = methods.get(exp.method)(exp, tiny, torch.device("cpu"))
    method.batch_gradients(tiny.x_train, tiny.y_train, torch.Generator().manual_seed(1))
    grads = [p.grad for m in method.modules().values() for p in m.parameters()]
    assert all(g is not None and not g.requires_grad and g.grad_fn is None for g in grads)


@pytest.mark.parametrize(
    "name, lr, better_than",
    [("FG_weight", 0.001, 0.15), ("FG_activity", 0.005, 0.3), ("FG_local", 0.005, 0.2)],
)
def test_forward_gradient_rows_learn(mnist_small, name, lr, better_than):
    """A few hundred steps on 2000 images: above chance (0.1), activity perturbation most."""
    exp = dataclasses.replace(get(name), epochs=4, batch_final=50, lr=lr)
    result = train(exp, mnist_small, torch.device("cpu"), seed=0)
    assert result.status == "finished" and result.test_accuracy > better_than


def grouped_problem(seed=0, n=8):
    """Ren et al.'s network in small: 6 -> 8 -> 8 (block-diagonal in 2) -> 3, LayerNorm."""
    torch.manual_seed(seed)
    model = MLP((6, 8, 8, 3), layer_norm=True, linear_groups=2).double()
    x = torch.randn(n, 6, dtype=torch.float64)
    y = torch.randint(0, 3, (n,))
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return model, x, y, {k: p.grad.clone() for k, p in model.named_parameters()}


def test_a_grouped_layer_is_a_block_diagonal_linear_layer():
    torch.manual_seed(0)
    layer = GroupLinear(8, 6, groups=2).double()
    dense = torch.block_diag(*layer.weight)  # (6, 8): block g maps input slice g to output g
    x = torch.randn(5, 8, dtype=torch.float64)
    torch.testing.assert_close(layer(x), x @ dense.T + layer.bias)


def test_the_local_step_through_a_norm_is_the_layers_exact_gradient():
    """Given the exact dL/da at a layer's output (after its LayerNorm), the local step gives that
    layer's exact parameter gradients: the norm's backward is taken exactly."""
    model, x, y, true = grouped_problem()
    units = model.units()
    h = torch.relu(units[0](x))
    a = units[1](h).detach().requires_grad_()
    F.cross_entropy(units[2](torch.relu(a)), y).backward()
    step = forward_grad._local_step(
        forward_grad._names(model), units[1], a.grad, units[1](h.detach())
    )
    assert set(step) == {"net.3.weight", "net.3.bias"}
    for k, g in step.items():
        torch.testing.assert_close(g, true[k])


def z_scores(estimates, true):
    """(mean - true) / its standard error, per coordinate, over draws (rows of `estimates`)."""
    se = estimates.std(0) / len(estimates) ** 0.5
    return ((estimates.mean(0) - true) / se)[se > 0]


@pytest.mark.parametrize("kind, group_size", [(Perturbation.activity, 4), (Perturbation.joint, 4),
                                              (Perturbation.activity, None)])  # fmt: skip
def test_masked_and_grouped_estimates_are_unbiased(kind, group_size):
    """Over 3000 draws the mean estimate of every parameter's gradient is the exact gradient
    within its standard error (|z| < 5 everywhere), ReLU-masked and in groups, on a network with
    LayerNorm and a block-diagonal layer; the same draws scaled by 1.5 fail it."""
    model, x, y, true = grouped_problem()
    gen = torch.Generator().manual_seed(4)
    draws = torch.stack([flat(estimate(kind, model, x, y, gen, None, group_size, True)[1], model)
                         for _ in range(3000)])  # fmt: skip
    z = z_scores(draws, flat(true, model))
    assert z.abs().max() < 5 and z.square().mean() < 3  # coordinates share a slope: noisy
    assert z_scores(1.5 * draws, flat(true, model)).abs().max() > 5


def test_the_mask_zeroes_the_estimate_where_the_relu_is_off_and_nowhere_else():
    """Without a norm a layer's bias gradient is the sum over samples of the estimate of dL/da:
    masked, one sample's is 0 exactly where its ReLU is off and the unmasked one elsewhere."""
    model, x, y, _ = small_problem()
    first = model.units()[0]
    for s in range(len(x)):
        on = first(x[s : s + 1])[0] > 0
        assert 0 < on.sum() < len(on)
        gen = torch.Generator().manual_seed(s)
        _, plain = activity_perturbed(model, x[s : s + 1], y[s : s + 1], gen)
        gen = torch.Generator().manual_seed(s)
        _, masked = activity_perturbed(model, x[s : s + 1], y[s : s + 1], gen, mask=True)
        assert torch.all(masked["net.0.bias"][~on] == 0) and torch.all(plain["net.0.bias"] != 0)
        assert torch.equal(masked["net.0.bias"][on], plain["net.0.bias"][on])
        assert torch.equal(masked["net.2.bias"], plain["net.2.bias"])  # the output: no ReLU


def test_one_group_is_todays_estimate():
    """group_size = the layer's width: the same draws give today's FG_local estimate (no groups)
    to the last digit, for local losses and per-layer activity perturbation (the joint estimate
    in groups takes the output layer's slope apart from the hidden groups', one or more)."""
    model, x, y, _ = small_problem()
    heads = torch.nn.ModuleList([torch.nn.Linear(5, 3).double()])
    for kind, hs in ((Perturbation.local, heads), (Perturbation.activity, None)):
        a = estimate(kind, model, x, y, torch.Generator().manual_seed(7), hs)[1]
        b = estimate(kind, model, x, y, torch.Generator().manual_seed(7), hs, group_size=5)[1]
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_joint_groups_slope_is_the_slope_along_their_own_slices():
    """The fast path (one jvp through the block-diagonal layers, slices taken apart at the output
    layer) against its definition: for each group g, the jvp of the network's loss along the
    tangent that is u on slice g of every hidden layer and 0 elsewhere."""
    model, x, y, _ = grouped_problem(n=3)
    first, second, out = model.units()
    gen = torch.Generator().manual_seed(2)
    state = gen.get_state()
    _, est = forward_grad.joint_activity_perturbed(model, x, y, gen, group_size=4)
    gen.set_state(state)
    pre = forward_grad._forward(model.units(), x)[1]
    us = [torch.randn(a.shape, generator=gen, dtype=torch.float64) for a in pre]

    def loss(o0, o1):
        a = second(torch.relu(pre[0] + o0)) + o1
        return F.cross_entropy(out(torch.relu(a)), y, reduction="none") / 3

    h1 = torch.relu(pre[0])
    for g in range(2):
        keep = torch.zeros(8, dtype=torch.float64)
        keep[4 * g : 4 * g + 4] = 1
        _, slope = torch.func.jvp(loss, (torch.zeros_like(us[0]), torch.zeros_like(us[1])),
                                  (us[0] * keep, us[1] * keep))  # fmt: skip
        names = forward_grad._names(model)
        step = forward_grad._local_step(names, second, slope[:, None] * us[1] * keep, second(h1))
        torch.testing.assert_close(est["net.3.weight"][g], step["net.3.weight"][g])
        torch.testing.assert_close(est["net.3.bias"][4 * g : 4 * g + 4],
                                   step["net.3.bias"][4 * g : 4 * g + 4])  # fmt: skip


def test_relative_error_is_q_plus_one_and_falls_with_the_group_size():
    """One image, so layer 1's weight estimate is (dL/da estimate) h^T and its relative error
    E||g^ - g||^2 / ||g||^2 is q + 1 for groups of q units (Ren et al. §3.4); masked, it is
    sum_g (active_g + 1) ||g_g||^2 / ||g||^2. Measured over 2000 draws at initialisation."""
    x = torch.rand(1, 784, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([3])
    sizes = (784, 64, 10)
    errors = {}
    for q in (64, 32, 16, 8):
        gen = torch.Generator().manual_seed(1)
        (_, err), _ = forward_grad.estimate_errors(Perturbation.activity, sizes, x, y, 2000, gen, q)
        errors[q] = err
        assert err == pytest.approx(q + 1, rel=0.15)
    assert errors[64] > errors[32] > errors[16] > errors[8]
    torch.manual_seed(0)
    model = MLP(sizes)
    a = model.units()[0](x)
    a_ = a.detach().requires_grad_()
    F.cross_entropy(model.units()[1](torch.relu(a_)), y).backward()
    g, active = a_.grad[0], (a[0] > 0).double()
    for q in (64, 8):
        gg, act = g.view(-1, q), active.view(-1, q)
        want = ((act.sum(1) + 1) * gg.square().sum(1)).sum() / g.square().sum()
        gen = torch.Generator().manual_seed(1)
        (_, err), _ = forward_grad.estimate_errors(Perturbation.activity, sizes, x, y, 2000, gen, q,
                                                   mask=True)  # fmt: skip
        assert err == pytest.approx(want.item(), rel=0.15) and err < errors[q] * 0.75


@pytest.mark.parametrize(
    "row, settings, says",
    [("FG_local", {"group_size": 24}, "group_size=24 does not divide the hidden sizes 800"),
     ("Ren_LG_FG_A", {"linear_groups": 1}, "--set linear_groups=16"),
     ("Ren_BP", {"linear_groups": 3}, "linear_groups=3 does not divide the hidden sizes 512,512"),
     ("DNN_base", {"linear_groups": 2}, "has one; give two hidden layers")],
)  # fmt: skip
def test_groups_that_do_not_fit_the_network_are_refused_with_the_fix(row, settings, says):
    exp = dataclasses.replace(get(row), **settings)
    assert says in methods.get(exp.method).check(exp)


def test_the_heads_rate_is_head_lr_times_the_bodys(synthetic):
    """The loop sets every epoch's rate; the heads' group gets head_lr times the body's."""
    exp = dataclasses.replace(get("FG_local"), sizes=(784, 16, 10), epochs=2, batch_start=32,
                              batch_final=32, head_lr=0.25)  # fmt: skip
    seen = []

    class Spy(methods.get(exp.method)):
        def train_epoch(self, *args):
            seen.append([group["lr"] for group in self.optimizers[0].param_groups])
            return super().train_epoch(*args)

    train(exp, synthetic, torch.device("cpu"), seed=0, method=Spy)
    assert len(seen) == 2 and all(heads == pytest.approx(0.25 * body) for body, heads in seen)


def test_rens_rows_are_the_network_of_table_3():
    """784 -> 512 -> 16 x (32 -> 32) -> 10 with LayerNorm: 401,920 + 16,896 + 5,130 parameters
    (Ren's count adds a second head of 5,130 to reach their 429K)."""
    for name in ("Ren_BP", "Ren_FG_W", "Ren_FG_A", "Ren_LG_FG_A"):
        exp = get(name)
        model = MLP(exp.sizes, exp.bias, exp.layer_norm, exp.linear_groups)
        assert sum(p.numel() for p in model.parameters()) == 401_920 + 16_896 + 5_130
        assert isinstance(model.net[3], GroupLinear) and model.net[3].weight.shape == (16, 32, 32)
    assert get("Ren_LG_FG_A").group_size * 16 == 512 and get("Ren_FG_A").group_size is None
