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

Ren et al.'s ingredients, each a setting off by default (ffbench/core/settings.py):

- `group_size`: a hidden layer's units in groups of that many, each group's slope measured along
  its own units' tangent alone, so the estimate's noise is that of q = group_size units, not of
  the layer's (Ren §3.4: relative variance about q + 1). For a local loss this is Ren's loss per
  group, the head's cross-entropy with the other groups' features held fixed
  (spatial_avg_linear_v2.py); in `joint`, group g spans every hidden layer, as their one jvp per
  block gives each group its slope (train_mixer_supervised.py, forward_grad_activations). Where
  a layer's loss crosses later layers, the groups' slopes come from one jvp of the batch repeated
  once per group (`_slopes`); where it is local to one linear map (a head, the output layer), from
  that map's gradient dotted with each group's tangent (`_local_slopes`); in `joint`, from one
  jvp of the body and the output layer's gradient.
- `relu_mask`: an estimate of dL/da where the ReLU is off is pure noise, its true value 0; times
  the ReLU's derivative it stays unbiased with less variance (Ren §3.6).
- `layer_norm`, `linear_groups`: the network (ffbench/core/models.py). The perturbation sits after
  the norm, before the ReLU, as Ren places it; the step to the weights goes back through the norm
  exactly (the layer's own backward), as theirs does.
- `head_lr`: the local heads' rate as a multiple of the body's.
"""

from __future__ import annotations

import warnings
from enum import Enum

import torch
import torch.nn.functional as F
from torch.func import functional_call, jvp, vjp

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


def activity_perturbed(model: MLP, x, y, gen: torch.Generator, heads=None,
                       group_size: int | None = None, mask: bool = False):  # fmt: skip
    """(loss, {name: gradient estimate}) by perturbing every layer's pre-activations a_i.

    For each layer, u ~ N(0, I) per sample, d_i = (dL_i/da_i) . u_i by jvp, dL/da ~ d u, and the
    weights get the exact local step from it (`_local_step`). With `heads` (one Linear per hidden
    layer) a hidden layer's L is the loss of its own head instead of the network's output.
    A hidden layer's units are in groups of `group_size` (None: one group), each group's slope
    along its own part of u (`_slopes`); `mask`: `_masked`.
    """
    units = model.units()
    last = len(units) - 1
    n = len(x)
    graphs, pre, h = _forward(units, x)

    def tail(i):
        """Per-sample loss (already divided by n) as a function of h_i = relu(a_i), for
        `labels`."""

        def f(primals, labels):
            (h,) = primals
            if heads is not None and i < last:
                return F.cross_entropy(heads[i](h), labels, reduction="none") / n
            for j in range(i, last):
                h = units[j + 1](h if j == i else torch.relu(h))
            return F.cross_entropy(h, labels, reduction="none") / n

        return f

    grads, names = {}, _names(model)
    for i, unit in enumerate(units):
        u = torch.randn(pre[i].shape, generator=gen, device=x.device, dtype=x.dtype)
        if i < last:  # u through the ReLU (elementwise: its jvp), then slices at the next layer
            parts, active = _parts(u, group_size), _parts(pre[i] > 0, group_size)
            if heads is None:  # the loss crosses the later layers: one jvp
                slopes = _slopes(tail(i), (torch.relu(pre[i]),), (_spread(parts * active),), y)
            else:
                slopes = _local_slopes(tail(i), torch.relu(pre[i]), parts * active, y)
        else:  # the output layer: its loss is a function of a itself
            parts = _parts(u)
            slopes = _local_slopes(lambda ps, labels: F.cross_entropy(ps[0], labels,
                                   reduction="none") / n, pre[i], parts, y)  # fmt: skip
        grad_a = _masked(_estimate(slopes, parts), pre[i], mask and i < last)
        grads |= _local_step(names, unit, grad_a, graphs[i])
    return F.cross_entropy(h, y), grads


def _parts(u, size: int | None = None):
    """u (n, w) as slices of `size` of its units (None: one slice), (n, w / size, size)."""
    return u.unflatten(1, (-1, size or u.shape[1]))


def _spread(parts):
    """G tangents (G, n, w) from u's slices (n, G, q): tangent g is slice g of u alone (the rest
    0)."""
    eye = torch.eye(parts.shape[1], dtype=parts.dtype, device=parts.device)
    return (eye[:, None, :, None] * parts[None]).flatten(2)


def _estimate(slopes, parts):
    """dL/da ~ d_g u_g: each slice of u times its own slope, (n, w), from slopes (G, n)."""
    return (slopes.T[:, :, None] * parts).flatten(1)


def _slopes(f, primals, tangents, y):
    """The slopes f'(primals) . t_k per sample along k tangents (each (k, n, ...)), by one jvp:
    the batch repeated k times, tangent k on copy k (one pass of k-times-larger small products
    where vmap over k jvps paid its per-op overhead k times). f(primals, labels) is the
    per-sample loss; returns (k, n)."""
    k = len(tangents[0])
    spread = (lambda p: p.repeat(k, *[1] * (p.dim() - 1))) if k > 1 else (lambda p: p)
    _, slope = jvp(lambda *ps: f(ps, spread(y)), tuple(spread(p) for p in primals),
                   tuple(t.flatten(0, 1) for t in tangents))  # fmt: skip
    return slope.view(k, -1)


def _local_slopes(f, primal, parts, y):
    """`_slopes` where f is local to one linear map (a head, the output layer's own loss): the
    slope along a tangent is a linear map of it, the per-sample gradient of f at `primal` (one
    vjp of that map alone) dotted with it, so one pass gives the slope along every slice of the
    tangent (n, G, q); returns (G, n)."""
    _, pull = vjp(lambda p: f((p,), y), primal)
    (grad,) = pull(torch.ones(len(primal), dtype=primal.dtype, device=primal.device))
    return (_parts(grad, parts.shape[2]) * parts).sum(-1).T


def _masked(grad_a, a, mask: bool):
    """The estimate of dL/da times the ReLU's derivative at a (where the unit is off its true
    value is 0), or as it is."""
    return grad_a * (a > 0) if mask else grad_a


def joint_activity_perturbed(model: MLP, x, y, gen: torch.Generator,
                             group_size: int | None = None, mask: bool = False):  # fmt: skip
    """(loss, {name: gradient estimate}) from one perturbation of all layers at once.

    u = (u_1 .. u_L) ~ N(0, I) per sample over every layer's pre-activations, one jvp of the
    network's loss in offsets added to them gives d = sum_l (dL/da_l) . u_l, and every layer
    takes dL/da_l ~ d u_l with its exact local step, as `activity_perturbed` does.

    With `group_size`, in G slices of that many units, slice g of every hidden layer takes the
    slope along those slices' tangents alone, and the output layer the slope along its own. The
    hidden layers after the first are block-diagonal in the same G slices (`ForwardGrad.check`),
    so slice g of the last hidden layer's tangent comes from the slices g alone: one jvp carries
    all of them to the last hidden layer, and the output layer takes them apart (as Ren et al.'s
    tiled loss does).
    """
    units = model.units()
    last = len(units) - 1
    n = len(x)
    graphs, pre, out = _forward(units, x)
    us = [torch.randn(a.shape, generator=gen, device=x.device, dtype=x.dtype) for a in pre]

    def body(offsets):  # the last hidden layer's h from offsets to every hidden layer's a
        a = pre[0] + offsets[0]
        for unit, offset in zip(units[1:last], offsets[1:], strict=True):
            a = unit(torch.relu(a)) + offset
        return torch.relu(a)

    def head(h, offset):
        return F.cross_entropy(units[last](h) + offset, y, reduction="none") / n

    h, h_dot = jvp(body, ([torch.zeros_like(u) for u in us[:-1]],), (us[:-1],))
    # The slope along a tangent at the output layer is the per-sample loss's gradient there, in
    # (h, offset), dotted with the tangent: one vjp of that layer alone gives it for every group
    # (a linear map of the tangent; the jvp of the batch repeated per group cost far more).
    _, pull = vjp(head, h, torch.zeros_like(us[-1]))
    grad_h, grad_out = pull(torch.ones(n, dtype=x.dtype, device=x.device))
    hidden = _parts(grad_h * h_dot, group_size).sum(-1).T  # (G, n)
    own = (grad_out * us[-1]).sum(1, keepdim=True).T  # (1, n)
    if not group_size:  # one slope for every layer
        hidden = own = hidden + own
    grads, names = {}, _names(model)
    for i, (unit, u, a) in enumerate(zip(units, us, graphs, strict=True)):
        if i < last:
            grad_a = _estimate(hidden, _parts(u, group_size))
        else:
            grad_a = _estimate(own, _parts(u))
        grads |= _local_step(names, unit, _masked(grad_a, pre[i], mask and i < last), a)
    return F.cross_entropy(out, y), grads


def _forward(units: list[torch.nn.Module], x):
    """Each layer's pre-activation a = unit(h) with its graph to that layer's parameters alone
    (the input detached; what `_local_step` goes back through), the same without it, and the
    output."""
    graphs, h = [], x
    with torch.enable_grad():
        for i, unit in enumerate(units):
            graphs.append(unit(h))
            h = graphs[-1].detach()
            h = torch.relu(h) if i < len(units) - 1 else h
    return graphs, [a.detach() for a in graphs], h


def _names(model: torch.nn.Module) -> dict[int, str]:
    return {id(p): k for k, p in model.named_parameters()}


def _local_step(names: dict[int, str], unit: torch.nn.Module, grad_a, a) -> dict:
    """A layer's parameter gradients, by name (`_names`), from an estimate of dL/da at its output
    a = unit(h), a with its graph (`_forward`): the exact backward of the layer alone,
    (dL/dz)^T h and its sum for a Linear, through the norm first where it has one."""
    params = list(unit.parameters())
    grads = torch.autograd.grad(a, params, grad_a)
    return {names[id(p)]: g for p, g in zip(params, grads, strict=True)}


@torch.no_grad()
def estimate(kind: Perturbation, model: MLP, x, y, gen: torch.Generator, heads=None,
             group_size: int | None = None, mask: bool = False):  # fmt: skip
    """(loss, {name: gradient estimate}) by the estimator `kind` names, its hidden layers' units
    in groups of `group_size` (None: each layer one group) and masked by the ReLU's derivative
    if `mask`. Forward-mode AD needs no backward graph: without no_grad, local losses' jvp closed
    over the heads' parameters and every estimate carried a graph into `.grad` (the same
    numbers, held in memory)."""
    if kind == Perturbation.weight:
        return weight_perturbed(model, x, y, gen)
    if kind == Perturbation.joint:
        return joint_activity_perturbed(model, x, y, gen, group_size, mask)
    return activity_perturbed(model, x, y, gen, heads, group_size, mask)


class ForwardGrad(Backprop):
    """An MLP trained by forward gradients of its cross-entropy: Backprop's loop, each batch's
    gradients estimated by `estimate` instead of a backward pass. One subclass per estimator."""

    reads = Backprop.reads - {"dnn_output"} | {"group_size", "relu_mask"}  # cross-entropy only
    kind: Perturbation

    @classmethod
    def check(cls, exp) -> str | None:
        hidden = exp.sizes[1:-1]
        if exp.group_size is not None and any(n % exp.group_size for n in hidden):
            return (f"group_size={exp.group_size} does not divide the hidden sizes "
                    f"{','.join(map(str, hidden))}; give a divisor of each")  # fmt: skip
        if cls.kind == Perturbation.joint and exp.group_size and len(hidden) > 1:
            groups = hidden[0] // exp.group_size
            if len(set(hidden)) > 1 or exp.linear_groups != groups:
                return (f"{exp.name}'s groups span its hidden layers, which must be one width "
                        f"and block-diagonal in the same groups; --set "
                        f"linear_groups={groups} with equal hidden sizes, or "
                        "group_size=none")  # fmt: skip
        return super().check(exp)

    def __init__(self, exp, data, device: torch.device):
        super().__init__(exp, data, device)
        self.heads = None
        if self.kind == Perturbation.local:
            self.heads = torch.nn.ModuleList(
                torch.nn.Linear(n, N_CLASSES) for n in exp.sizes[1:-1]
            ).to(device)
            heads = {"params": self.heads.parameters(), "lr_scale": exp.head_lr}
            self.optimizers = [make_optimizer(exp, [{"params": self.model.parameters()}, heads],
                                              device)]  # fmt: skip

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"model": self.model} | ({"heads": self.heads} if self.heads is not None else {})

    def batch_gradients(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
        loss, grads = estimate(self.kind, self.model, x, y, gen, self.heads,
                               self.exp.group_size, self.exp.relu_mask)  # fmt: skip
        params = dict(self.model.named_parameters())
        for k, g in grads.items():
            params[k].grad = g
        if self.heads is not None:  # each head learns its own layer's task, locally
            features = x
            for unit, head in zip(self.model.units(), self.heads, strict=False):
                with torch.no_grad():
                    features = torch.relu(unit(features))
                F.cross_entropy(head(features), y).backward()
        return loss.detach()


@register
class WeightPerturbed(ForwardGrad):
    name, kind = "fg_weight", Perturbation.weight
    reads = ForwardGrad.reads - {"group_size", "relu_mask"}  # no activity to group or mask


@register
class ActivityPerturbed(ForwardGrad):
    name, kind = "fg_activity", Perturbation.activity


@register
class LocalLosses(ForwardGrad):
    name, kind = "fg_local", Perturbation.local
    reads = ForwardGrad.reads | {"head_lr"}


@register
class JointActivityPerturbed(ForwardGrad):
    name, kind = "fg_joint", Perturbation.joint


def layer_cosines(
    kind: Perturbation, sizes: tuple[int, ...], x: torch.Tensor, y: torch.Tensor, draws: int,
    gen: torch.Generator, group_size: int | None = None, mask: bool = False,
) -> list[float]:  # fmt: skip
    """Mean |cos| between `draws` forward-gradient estimates of each layer's weight gradient and
    the gradient it is an unbiased estimate of (`estimate_errors`)."""
    return [cos for cos, _ in estimate_errors(kind, sizes, x, y, draws, gen, group_size, mask)]


def estimate_errors(
    kind: Perturbation, sizes: tuple[int, ...], x: torch.Tensor, y: torch.Tensor, draws: int,
    gen: torch.Generator, group_size: int | None = None, mask: bool = False,
) -> list[tuple[float, float]]:  # fmt: skip
    """Per layer, (mean |cos|, relative error E||g^ - g||^2 / ||g||^2) of `draws` estimates g^ of
    its weight gradient g, on the batch (x, y), at a fresh initialisation (seed 0): g of the
    network's loss for weight, activity and joint perturbation; for local losses, of a hidden
    layer's own head's loss with its input held fixed (the last layer: the network's)."""
    torch.manual_seed(0)
    model = MLP(sizes)
    units = model.units()
    heads = None
    if kind == Perturbation.local:
        heads = torch.nn.ModuleList(torch.nn.Linear(n, N_CLASSES) for n in sizes[1:-1])
        h = x
        for i, unit in enumerate(units):
            a = unit(h.detach())
            out = heads[i](torch.relu(a)) if i < len(units) - 1 else a
            F.cross_entropy(out, y).backward()
            h = torch.relu(a)
    else:
        F.cross_entropy(model(x), y).backward()
    weights = [unit[0].weight for unit in units]
    true = [w.grad.flatten() for w in weights]
    names = _names(model)
    cos, err = [0.0] * len(units), [0.0] * len(units)
    for _ in range(draws):
        _, est = estimate(kind, model, x, y, gen, heads, group_size, mask)
        for i, w in enumerate(weights):
            got = est[names[id(w)]].flatten()
            cos[i] += F.cosine_similarity(got, true[i], dim=0).abs().item() / draws
            err[i] += ((got - true[i]).square().sum() / true[i].square().sum()).item() / draws
    return list(zip(cos, err, strict=True))
