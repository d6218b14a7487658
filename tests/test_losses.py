"""The FF losses against the notes' equations (3.13, 3.16, 4.1, 4.2) and their weight gradients
against the closed forms of eqs 3.20 and 3.24."""

import math

import pytest
import torch

from ffbench.core.losses import Loss, ff_loss, goodness
from ffbench.core.models import FFNet, LayerGoodness, encode_images
from ffbench.rows import get, under


def sigma(x):
    return 1 / (1 + math.exp(-x))


def by_hand(kind, g_pos, g_neg, theta):
    """The losses written out term by term, as in the notes, with plain Python floats."""
    if kind in (Loss.L0, Loss.adj_L0):
        q = [sigma(g - theta) for g in g_pos] + [sigma(theta - g) for g in g_neg]  # eq 3.11
    else:
        q = [sigma(theta - g) for g in g_pos] + [sigma(g - theta) for g in g_neg]  # eq 3.15
    shift = 1.0 if kind in (Loss.adj_L0, Loss.adj_L1) else 0.0  # ln(1 + .) of eqs 4.1, 4.2
    mean_ln = sum(math.log(shift + v) for v in q) / len(q)
    return -mean_ln if kind in (Loss.L0, Loss.adj_L0) else mean_ln


@pytest.mark.parametrize("kind", [Loss.L0, Loss.L1, Loss.adj_L0, Loss.adj_L1])
@pytest.mark.parametrize("theta", [0.0, 1.0, 2.0])
@pytest.mark.parametrize("stable", [False, True])
def test_loss_values_match_the_equations(kind, theta, stable):
    g_pos = [0.1, 1.5, 3.0, 7.0]
    g_neg = [0.0, 2.5, 4.0]  # n != m: the mean runs over all n + m terms
    got = ff_loss(kind, torch.tensor(g_pos), torch.tensor(g_neg), theta, stable).item()
    assert got == pytest.approx(by_hand(kind, g_pos, g_neg, theta), rel=1e-6)


def closed_form_update(kind, x, w, theta, lr):
    """Delta W of eq 3.20 (L0) or eq 3.24 (L1) for a bias-free layer: n positives, n negatives."""
    n = x.shape[0] // 2
    a = torch.relu(x @ w.T)
    g = a.square().sum(1)
    g_pos, g_neg = g[:n], g[n:]
    if kind == Loss.L0:
        coef = torch.cat([1 - torch.sigmoid(g_pos - theta), torch.sigmoid(theta - g_neg) - 1])
    else:
        coef = torch.cat([1 - torch.sigmoid(theta - g_pos), torch.sigmoid(g_neg - theta) - 1])
    return 2 * lr / len(x) * (coef[:, None] * a).T @ x  # sum_i coef_i a_i x_i^T


@pytest.mark.parametrize("kind", [Loss.L0, Loss.L1])
@pytest.mark.parametrize("theta", [0.0, 0.5, 2.0, 5.0])
def test_weight_gradient_matches_eqs_3_20_and_3_24(kind, theta):
    g = torch.Generator().manual_seed(int(theta * 10))
    x = torch.randn(40, 12, generator=g, dtype=torch.float64)  # 20 positives, 20 negatives
    w = (0.5 * torch.randn(7, 12, generator=g, dtype=torch.float64)).requires_grad_()
    g_all = goodness(torch.relu(x @ w.T))
    ff_loss(kind, g_all[:20], g_all[20:], theta).backward()
    lr = 0.01
    # The update of the notes is a descent step: Delta W = -lr * dL/dW.
    torch.testing.assert_close(-lr * w.grad, closed_form_update(kind, x, w.detach(), theta, lr))


@pytest.mark.parametrize(
    "normalize, bias, eps, mean",
    [(True, True, 1e-8, False), (False, True, 1e-8, False), (True, False, 1e-4, True)],
)
def test_fused_layer_gradient_matches_autograd(normalize, bias, eps, mean):
    """LayerGoodness (eq 3.18 written out) against normalise + Linear + ReLU + goodness;
    normalize=False takes x^norm ready-made, as the first layer does in training. The last case
    is the code reading's layer: no bias, x / (||x|| + 1e-4), the mean of a^2."""
    torch.manual_seed(0)
    x = torch.rand(30, 20, dtype=torch.float64)
    x[3] = 0.0  # a zero input row (a dead layer below) must not give NaN
    layer = torch.nn.Linear(20, 9, bias=bias).double()
    upstream = torch.randn(30, dtype=torch.float64)
    scale = 1 / 9 if mean else 1.0

    x_norm = x / (x.norm(dim=1, keepdim=True) + eps)
    g_fused, a_fused = LayerGoodness.apply(
        x if normalize else x_norm, layer.weight, layer.bias, normalize, eps, scale
    )
    (g_fused * upstream).sum().backward()
    fused = [p.grad.clone() for p in layer.parameters()]
    layer.zero_grad()

    a_plain = torch.relu(layer(x_norm))
    g_plain = a_plain.square().mean(1) if mean else goodness(a_plain)
    (g_plain * upstream).sum().backward()
    torch.testing.assert_close(g_fused, g_plain)
    torch.testing.assert_close(a_fused, a_plain)
    for got, want in zip(fused, [p.grad for p in layer.parameters()], strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("reading, normalize_input", [("text", True), ("text", False),
                                                      ("code", True)])  # fmt: skip
def test_fast_label_scoring_equals_ten_overlaid_passes(reading, normalize_input):
    exp = under(get("adj_FFA0_1"), reading)
    torch.manual_seed(1)
    net = FFNet(exp.sizes, normalize_input=normalize_input, bias=exp.bias, eps=exp.norm_eps,
                goodness=exp.goodness)  # fmt: skip
    with torch.no_grad():
        for layer in net.layers:
            layer.weight.mul_(20 if normalize_input else 2)  # labels must score differently
    x = torch.rand(50, 784)
    base, v = encode_images(x, exp.label_input, normalize_input, exp.norm_eps)
    fast = net.goodness_per_label(base, v)
    plain = net.goodness_per_label_plain(x, exp.label_input)
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-4)
    assert fast.std(dim=1).min() > 0  # the labels really score differently


def test_adjusted_losses_stay_bounded_where_the_literal_ones_explode():
    """Section 4: ln(1 + sigma) keeps the loss in [-ln 2, 0] (adj L0) and [0, ln 2] (adj L1)."""
    g = torch.tensor([0.0, 1e-3, 2.0, 50.0, 1e3, 1e6, 1e30])
    for theta in (0.0, 1.0, 2.0):
        for g_pos, g_neg in [(g, g.flip(0)), (g, g), (g.flip(0), g)]:
            adj0 = ff_loss(Loss.adj_L0, g_pos, g_neg, theta).item()
            adj1 = ff_loss(Loss.adj_L1, g_pos, g_neg, theta).item()
            assert -math.log(2) <= adj0 <= 0
            assert 0 <= adj1 <= math.log(2)
    # Literal ln(sigma): a negative far above theta gives ln 0 = -inf, as the paper's FFA0/FFA1.
    literal = ff_loss(Loss.L0, torch.tensor([5.0]), torch.tensor([500.0]), 2.0)
    assert math.isinf(literal.item())
    stable = ff_loss(Loss.L0, torch.tensor([5.0]), torch.tensor([500.0]), 2.0, stable=True)
    assert stable.item() == pytest.approx((0 + 498 + math.log1p(math.exp(-3))) / 2, rel=1e-5)


def test_L0_plus_L1_is_the_margin_for_the_literal_losses_only():
    """Section 3.2: L0 + L1 = x, here E[(theta - g+) (+) (g- - theta)]; not for the adjusted."""
    g_pos, g_neg, theta = torch.tensor([0.5, 2.0, 4.0]), torch.tensor([1.0, 3.0]), 2.0
    margin = torch.cat([theta - g_pos, g_neg - theta]).mean().item()
    total = ff_loss(Loss.L0, g_pos, g_neg, theta) + ff_loss(Loss.L1, g_pos, g_neg, theta)
    assert total.item() == pytest.approx(margin, abs=1e-6)
    adjusted = ff_loss(Loss.adj_L0, g_pos, g_neg, theta) + ff_loss(Loss.adj_L1, g_pos, g_neg, theta)
    assert adjusted.item() != pytest.approx(margin, abs=1e-3)
