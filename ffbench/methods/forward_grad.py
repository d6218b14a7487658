"""Forward gradients (second seed; Baydin et al. 2022; Ren et al. 2023) on the 784-800-10 MLP.

A forward gradient is an unbiased estimate of the gradient from one forward-mode pass: for a
random direction v ~ N(0, I), the directional derivative (grad f . v) comes out of `torch.func.jvp`
and (grad f . v) v has expectation grad f. Its alignment with grad f shrinks like 1/sqrt(n) with
the dimension n of v, which is why

- `weight`: v over all weights at once (n = 636,010 here) needs a small rate and learns less per
  step;
- `activity`: v over each layer's pre-activations, per sample (n = 800 or 10), then the exact
  local step to the weights, dL/dW = (dL/dz)^T h;
- `local`: as `activity`, but each hidden layer's perturbation measures a local loss (a linear
  softmax head on that layer, trained on its own), so no signal has to cross layers;
- `joint`: every layer's pre-activations perturbed at once and one jvp of the network's loss
  (the one-pass activity perturbation, as in Ren et al. 2023): each layer's estimate carries the
  noise of all the others' perturbations, n = all hidden and output units. `activity` pays one
  jvp per layer to keep them apart, which is why its alignment does not fall with depth.
"""

from __future__ import annotations

import warnings
from enum import Enum

import torch
import torch.nn.functional as F
from torch.func import functional_call, jvp

from ffbench.core.models import MLP, N_CLASSES
from ffbench.core.optimizers import make_optimizer
from ffbench.methods import register
from ffbench.methods.backprop import Backprop

# torch's forward-mode AD loads its decompositions through torch.jit.script, which warns about
# its own deprecation on first use; it is torch's business, not the user's.
warnings.filterwarnings(
    "ignore", message="`torch.jit.script` is deprecated", category=FutureWarning
)


class Perturbation(str, Enum):
    weight = "weight"
    activity = "activity"
    local = "local"
    joint = "joint"


def weight_perturbed(model: torch.nn.Module, x, y, gen: torch.Generator):
    """(loss, {name: (grad f . v) v}) for one v ~ N(0, I) over every parameter."""
    params = {k: p.detach() for k, p in model.named_parameters()}
    tangents = {
        k: torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype)
        for k, p in params.items()
    }

    def loss_of(p):
        return F.cross_entropy(functional_call(model, p, (x,)), y)

    loss, slope = jvp(loss_of, (params,), (tangents,))
    return loss, {k: slope * v for k, v in tangents.items()}


def _linears(model: MLP) -> list[torch.nn.Linear]:
    return [m for m in model.net if isinstance(m, torch.nn.Linear)]


def activity_perturbed(model: MLP, x, y, gen: torch.Generator, heads=None):
    """(loss, {name: gradient estimate}) by perturbing every layer's pre-activations z_l.

    For each layer, u ~ N(0, I) per sample, d_i = (dL_i/dz_i) . u_i by jvp, dL/dz ~ d u, and the
    weights get the exact local step (dL/dz)^T h_{l-1}. With `heads` (one Linear per hidden layer)
    a hidden layer's L is the loss of its own head instead of the network's output.
    """
    layers = _linears(model)
    last = len(layers) - 1
    n = len(x)
    inputs, pre, h = _forward(layers, x)

    def tail(i):
        """Per-sample loss (already divided by n) as a function of z_i."""

        def f(z):
            if heads is not None and i < last:
                return F.cross_entropy(heads[i](torch.relu(z)), y, reduction="none") / n
            out = z
            for j in range(i, last):
                out = layers[j + 1](torch.relu(out))
            return F.cross_entropy(out, y, reduction="none") / n

        return f

    grads, names = {}, _names(model)
    for i, layer in enumerate(layers):
        u = torch.randn(pre[i].shape, generator=gen, device=x.device, dtype=x.dtype)
        _, slope = jvp(tail(i), (pre[i],), (u,))  # per-sample directional derivatives
        grads |= _local_step(names, layer, slope[:, None] * u, inputs[i])
    loss = F.cross_entropy(h, y)
    return loss, grads


def joint_activity_perturbed(model: MLP, x, y, gen: torch.Generator):
    """(loss, {name: gradient estimate}) from one perturbation of all layers at once.

    u = (u_1 .. u_L) ~ N(0, I) per sample over every layer's pre-activations, one jvp of the
    network's loss in offsets added to them gives d_i = sum_l (dL_i/dz_l) . u_l, and every layer
    takes dL/dz_l ~ d u_l with its exact local step, as `activity_perturbed` does.
    """
    layers = _linears(model)
    last = len(layers) - 1
    inputs, pre, _ = _forward(layers, x)
    us = tuple(torch.randn(z.shape, generator=gen, device=x.device, dtype=x.dtype) for z in pre)

    def loss_of(offsets):
        h = x
        for i, layer in enumerate(layers):
            z = layer(h) + offsets[i]
            h = torch.relu(z) if i < last else z
        return F.cross_entropy(h, y, reduction="none") / len(x)

    per_sample, slope = jvp(loss_of, (tuple(torch.zeros_like(u) for u in us),), (us,))
    grads, names = {}, _names(model)
    for layer, u, h in zip(layers, us, inputs, strict=True):
        grads |= _local_step(names, layer, slope[:, None] * u, h)
    return per_sample.sum().detach(), grads


def _forward(layers: list[torch.nn.Linear], x):
    """Each layer's input and pre-activation, and the output, without a graph."""
    inputs, pre, h = [], [], x
    with torch.no_grad():
        for i, layer in enumerate(layers):
            inputs.append(h)
            pre.append(layer(h))
            h = torch.relu(pre[-1]) if i < len(layers) - 1 else pre[-1]
    return inputs, pre, h


def _names(model: torch.nn.Module) -> dict[int, str]:
    return {id(p): k for k, p in model.named_parameters()}


def _local_step(names: dict[int, str], layer: torch.nn.Linear, grad_z, h) -> dict:
    """A layer's weight and bias gradients, by parameter name (`_names`), from an estimate of
    dL/dz: (dL/dz)^T h and its sum (a layer without a bias has no such gradient)."""
    grads = {names[id(layer.weight)]: grad_z.T @ h}
    if layer.bias is not None:
        grads[names[id(layer.bias)]] = grad_z.sum(0)
    return grads


@torch.no_grad()
def estimate(kind: Perturbation, model: MLP, x, y, gen: torch.Generator, heads=None):
    """(loss, {name: gradient estimate}) by the estimator `kind` names. Forward-mode AD needs no
    backward graph: without no_grad, local losses' jvp closed over the heads' parameters and
    every estimate carried a graph into `.grad` (the same numbers, held in memory)."""
    if kind == Perturbation.weight:
        return weight_perturbed(model, x, y, gen)
    if kind == Perturbation.joint:
        return joint_activity_perturbed(model, x, y, gen)
    return activity_perturbed(model, x, y, gen, heads)


class ForwardGrad(Backprop):
    """An MLP trained by forward gradients of its cross-entropy: Backprop's loop, each batch's
    gradients estimated by `estimate` instead of a backward pass. One subclass per estimator."""

    reads = Backprop.reads - {"dnn_output"}  # always cross-entropy on the logits
    kind: Perturbation

    def __init__(self, exp, data, device: torch.device):
        super().__init__(exp, data, device)
        self.heads = None
        if self.kind == Perturbation.local:
            self.heads = torch.nn.ModuleList(
                torch.nn.Linear(n, N_CLASSES) for n in exp.sizes[1:-1]
            ).to(device)
            params = list(self.model.parameters()) + list(self.heads.parameters())
            self.optimizers = [make_optimizer(exp, params, device)]

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"model": self.model} | ({"heads": self.heads} if self.heads is not None else {})

    def batch_gradients(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
        loss, grads = estimate(self.kind, self.model, x, y, gen, self.heads)
        params = dict(self.model.named_parameters())
        for k, g in grads.items():
            params[k].grad = g
        if self.heads is not None:  # each head learns its own layer's task, locally
            features = x
            for i, head in enumerate(self.heads):
                with torch.no_grad():
                    features = torch.relu(_linears(self.model)[i](features))
                F.cross_entropy(head(features), y).backward()
        return loss.detach()


@register
class WeightPerturbed(ForwardGrad):
    name, kind = "fg_weight", Perturbation.weight


@register
class ActivityPerturbed(ForwardGrad):
    name, kind = "fg_activity", Perturbation.activity


@register
class LocalLosses(ForwardGrad):
    name, kind = "fg_local", Perturbation.local


@register
class JointActivityPerturbed(ForwardGrad):
    name, kind = "fg_joint", Perturbation.joint


def layer_cosines(
    kind: Perturbation, sizes: tuple[int, ...], x: torch.Tensor, y: torch.Tensor, draws: int,
    gen: torch.Generator,
) -> list[float]:  # fmt: skip
    """Mean |cos| between `draws` forward-gradient estimates of each layer's weight gradient and
    the gradient it is an unbiased estimate of, on the batch (x, y), at a fresh initialisation
    (seed 0): the network's loss for weight, activity and joint perturbation; for local losses, a
    hidden layer's own head's loss with its input held fixed (the last layer: the network's)."""
    torch.manual_seed(0)
    model = MLP(sizes)
    layers = _linears(model)
    heads = None
    if kind == Perturbation.local:
        heads = torch.nn.ModuleList(torch.nn.Linear(n, N_CLASSES) for n in sizes[1:-1])
        h = x
        for i, layer in enumerate(layers):
            z = layer(h.detach())
            out = heads[i](torch.relu(z)) if i < len(layers) - 1 else z
            F.cross_entropy(out, y).backward()
            h = torch.relu(z)
    else:
        F.cross_entropy(model(x), y).backward()
    true = [layer.weight.grad.flatten() for layer in layers]
    names = _names(model)
    sums = [0.0] * len(layers)
    for _ in range(draws):
        _, est = estimate(kind, model, x, y, gen, heads)
        for i, layer in enumerate(layers):
            got = est[names[id(layer.weight)]].flatten()
            sums[i] += F.cosine_similarity(got, true[i], dim=0).abs().item()
    return [s / draws for s in sums]
