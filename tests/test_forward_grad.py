"""Forward gradients: exact directional derivatives, and estimates whose mean is the gradient."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from ffbench import methods
from ffbench.core import data
from ffbench.core.models import MLP
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
    """Local losses' jvp reads the heads' parameters; the estimate is the same numbers with or
    without a backward graph, and what reaches `.grad` carries none (issue 24)."""
    model, x, y, _ = small_problem()
    heads = torch.nn.ModuleList([torch.nn.Linear(5, 3).double()])
    _, with_graph = activity_perturbed(model, x, y, torch.Generator().manual_seed(3), heads)
    assert with_graph["net.0.weight"].requires_grad  # what a plain call closes over
    _, est = estimate(Perturbation.local, model, x, y, torch.Generator().manual_seed(3), heads)
    assert all(torch.equal(est[k], with_graph[k].detach()) for k in est)
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
