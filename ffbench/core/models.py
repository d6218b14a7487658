"""The 784-800-10 networks of the notes' table: a backprop MLP and a Forward-Forward net."""

from __future__ import annotations

from enum import Enum

import torch
import torch.nn as nn
import torch.nn.functional as F

from ffbench.core.losses import goodness

N_CLASSES = 10
GPU_CHUNK = 1 << 16  # at batch 60000 a cache-sized chunk would leave a GPU waiting on launches


def chunk_size(device: torch.device, on_cpu: int) -> int:
    """Rows per chunk of a batch: `on_cpu` (sized for the CPU's cache) there, whole batches of
    the notes' sizes on a GPU."""
    return on_cpu if device.type == "cpu" else GPU_CHUNK


class LabelInput(str, Enum):
    overlay = "overlay"  # the label in the first 10 pixels; the first layer normalises (sec. 2)
    after_norm = "after_norm"  # the image L2-normalised, then the label pixels set (authors' code)


class GoodnessReduce(str, Enum):
    sum = "sum"  # g = ||a||^2 (eqs 3.5, 3.25)
    mean = "mean"  # g = mean of a^2 (core/FFALayer.py:22-23)


class GroupLinear(nn.Module):
    """A block-diagonal linear layer: the input's and the output's units in `groups` equal
    slices, slice g of the output from slice g of the input alone (Ren et al. 2023, their
    grouped layer: mixer_lib.py's group weights [G, in/G, out/G])."""

    def __init__(self, n_in: int, n_out: int, groups: int, bias: bool = True):
        super().__init__()
        self.groups = groups
        bound = (groups / n_in) ** 0.5  # nn.Linear's uniform init, fan-in of one block
        self.weight = nn.Parameter(
            torch.empty(groups, n_out // groups, n_in // groups).uniform_(-bound, bound)
        )
        self.bias = nn.Parameter(torch.empty(n_out).uniform_(-bound, bound)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.einsum("ngi,goi->ngo", x.unflatten(1, (self.groups, -1)), self.weight)
        out = out.flatten(1)
        return out if self.bias is None else out + self.bias


class GroupNorm(nn.Module):
    """LayerNorm without affine parameters over each of `groups` equal slices of the units (one
    slice: plain LayerNorm), as Ren et al. normalise every hidden layer (eps 1e-5)."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.unflatten(1, (self.groups, -1))
        return F.layer_norm(z, z.shape[-1:]).flatten(1)


class MLP(nn.Module):
    """784-800-10 ReLU network trained by backprop (DNN_base); returns logits.

    As Ren et al. (2023) build it: `layer_norm` puts a LayerNorm after every hidden layer's
    linear map (before its ReLU; per group in a grouped layer), and `linear_groups` > 1 makes
    the hidden layers after the first block-diagonal (`GroupLinear`)."""

    def __init__(
        self,
        sizes: tuple[int, ...] = (784, 800, 10),
        bias: bool = True,
        layer_norm: bool = False,
        linear_groups: int = 1,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        last = len(sizes) - 2
        pairs = zip(sizes[:-1], sizes[1:], layer_groups(sizes, linear_groups), strict=True)
        for i, (n_in, n_out, groups) in enumerate(pairs):
            if groups > 1:
                layers.append(GroupLinear(n_in, n_out, groups, bias=bias))
            else:
                layers.append(nn.Linear(n_in, n_out, bias=bias))
            if i < last:
                layers += [GroupNorm(groups)] if layer_norm else []
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x).argmax(dim=1)

    def units(self) -> list[nn.Sequential]:
        """Each layer up to its activation function: its linear map, and its norm if it has one
        (what forward gradients perturb the output of)."""
        units, current = [], []
        for m in self.net:
            if isinstance(m, nn.ReLU):
                units.append(nn.Sequential(*current))
                current = []
            else:
                current.append(m)
        return units + [nn.Sequential(*current)]


def layer_groups(sizes: tuple[int, ...], linear_groups: int) -> list[int]:
    """The blocks of each layer of an MLP of `sizes`: `linear_groups` for the hidden layers after
    the first, 1 for the first and the output layer."""
    last = len(sizes) - 2
    return [linear_groups if 0 < i < last else 1 for i in range(last + 1)]


def check_groups(sizes: tuple[int, ...], linear_groups: int) -> str | None:
    """Why an MLP of `sizes` cannot have `linear_groups` blocks in its grouped layers, or None."""
    grouped = sizes[1:-1]
    if linear_groups > 1 and len(grouped) < 2:
        return (f"linear_groups={linear_groups} groups the hidden layers after the first, and "
                f"sizes={','.join(map(str, sizes))} has one; give two hidden layers or "
                "--set linear_groups=1")  # fmt: skip
    if any(n % linear_groups for n in grouped):
        return (f"linear_groups={linear_groups} does not divide the hidden sizes "
                f"{','.join(map(str, grouped))}; give a divisor of each")  # fmt: skip
    return None


def overlay_label(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The image with its first 10 pixels replaced by the one-hot label (section 2)."""
    out = x.clone()
    out[:, :N_CLASSES] = 0.0
    out[torch.arange(len(x), device=x.device), labels] = 1.0
    return out


def l2_normalize(h: torch.Tensor, eps: float) -> torch.Tensor:
    """a / (||a|| + eps): a layer sees only the direction of its input, not its goodness."""
    return h / (h.norm(dim=1, keepdim=True) + eps)


def label_ready(x: torch.Tensor, label_input: LabelInput) -> torch.Tensor:
    """The image as the label goes into it: itself (text), or L2-normalised first (the authors'
    `pre`, torch.nn.functional.normalize, core/FFA.py:22)."""
    return F.normalize(x, dim=1) if label_input == LabelInput.after_norm else x


def encode_images(
    x: torch.Tensor, label_input: LabelInput, normalize: bool, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(base, v): the first layer's input for label k is base + v * e_k. base is the image as the
    label goes into it, label pixels 0, divided by the norm the labelled input will have; a
    one-hot label has norm 1, so that norm, sqrt(||base||^2 + 1), is the same for every label.
    Without `normalize` the first layer takes the overlaid image as it is (v = 1)."""
    base = label_ready(x, label_input).clone()
    base[:, :N_CLASSES] = 0.0
    if normalize:
        v = 1.0 / (torch.sqrt(base.square().sum(dim=1) + 1.0) + eps)
    else:
        v = torch.ones(len(x), dtype=x.dtype, device=x.device)
    return base * v[:, None], v


class LayerGoodness(torch.autograd.Function):
    """Goodness of one FF layer, g = c ||relu(x^norm W^T + b)||^2 (eqs 3.4, 3.5; c = 1 for the
    sum, 1/width for the mean), and its activation.

    The same value as `l2_normalize` + Linear + ReLU + `goodness` under autograd, with the weight
    gradient of eq 3.18 written out, dL/dW = sum_i dL/dg_i 2 c a_i (x_i^norm)^T, so that one pass
    over the activations replaces autograd's chain of elementwise backward kernels. The row scale
    1/(||x|| + eps) is applied to x W^T rather than to x. No gradient flows to x: FF layers train
    on a detached input. `bias` may be None (the authors' layers have none).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, normalize: bool, eps: float, scale: float):
        if normalize:
            r = 1.0 / (torch.linalg.vector_norm(x, dim=1) + eps)
            a = (x @ weight.T).mul_(r[:, None])
        else:  # x is already x^norm
            r = None
            a = x @ weight.T
        if bias is not None:
            a.add_(bias)
        a.clamp_min_(0.0)
        g = torch.linalg.vector_norm(a, dim=1).square().mul_(scale)
        ctx.save_for_backward(x, a, r)
        ctx.scale, ctx.has_bias = scale, bias is not None
        ctx.mark_non_differentiable(a)
        return g, a

    @staticmethod
    def backward(ctx, grad_g: torch.Tensor, _grad_a):
        x, a, r = ctx.saved_tensors
        two_dg = (2.0 * ctx.scale) * grad_g
        grad_weight = (a * (two_dg if r is None else two_dg * r)[:, None]).T @ x
        grad_bias = a.T @ two_dg if ctx.has_bias else None
        return None, grad_weight, grad_bias, None, None, None


class FFNet(nn.Module):
    """784-800-10 Forward-Forward net: every layer is Linear + ReLU on an L2-normalised input,
    trained on its own goodness (eqs 3.4, 3.5). `normalize_input=False` feeds the first layer the
    raw image, as section 3 writes it (x for the first layer, a^norm after); `bias`, `eps` and
    `goodness` are the reading's switches (ffbench/rows/readings.py)."""

    def __init__(
        self,
        sizes: tuple[int, ...],
        normalize_input: bool,
        bias: bool,
        eps: float,
        goodness: GoodnessReduce,
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Linear(n_in, n_out, bias=bias)
            for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.normalize_input = normalize_input
        self.eps = eps
        self.scales = [1.0 / n if goodness == GoodnessReduce.mean else 1.0 for n in sizes[1:]]

    def normalizes(self, i: int) -> bool:
        return i > 0 or self.normalize_input

    def layer_forward(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """Activation a_i of layer i from the (unnormalised) output of layer i-1, by autograd."""
        return torch.relu(self.layers[i](l2_normalize(h, self.eps) if self.normalizes(i) else h))

    def layer_goodness(
        self, i: int, h: torch.Tensor, normalize: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(g_i, a_i) of layer i by `LayerGoodness`; gradients reach layer i's weights only."""
        layer = self.layers[i]
        return LayerGoodness.apply(h, layer.weight, layer.bias, normalize, self.eps, self.scales[i])

    def goodnesses(
        self,
        x: torch.Tensor,
        fused: bool = True,
        input_normalized: bool = False,
        first: int = 0,
        stop: int | None = None,
    ) -> list[torch.Tensor]:
        """Goodness of layers `first` .. `stop`-1 (default: the last) for x, the input of layer
        `first` (`input_normalized`: x is already what the first layer takes). Each layer's input
        is detached, so the gradient of layer i's loss reaches layer i's weights only.
        `fused=False` is the plain autograd path."""
        out, h = [], x
        for i in range(first, len(self.layers) if stop is None else stop):
            if fused:
                normalize = self.normalizes(i) and not (i == 0 and input_normalized)
                g, h = self.layer_goodness(i, h, normalize=normalize)
            else:
                h = self.layer_forward(i, h.detach())
                g = goodness(h) * self.scales[i]
            out.append(g)
        return out

    @torch.no_grad()
    def hidden(self, x: torch.Tensor, upto: int, input_normalized: bool = True) -> torch.Tensor:
        """The activation of layer `upto` - 1 (x itself for 0): the input layer `upto` trains on."""
        h = x
        for i in range(upto):
            normalize = self.normalizes(i) and not (i == 0 and input_normalized)
            _, h = self.layer_goodness(i, h, normalize=normalize)
        return h

    @torch.no_grad()
    def goodness_per_label(
        self, base: torch.Tensor, v: torch.Tensor, chunk: int = 512
    ) -> torch.Tensor:
        """(N, 10): goodness summed over layers with each of the 10 labels, for images encoded by
        `encode_images` (the first layer's input for label k is base + v e_k).

        Only the first layer sees the label, so its base W^T is computed once and each label adds
        v times its column of W: 10 labels cost about one pass. Rows go in chunks small enough
        for the ten label variants to stay in cache.
        """
        first = self.layers[0]
        label_columns = first.weight[:, :N_CLASSES].T  # (10, hidden)
        out = []
        for s in range(0, len(base), chunk):
            vs = v[s : s + chunk, None]
            shared = base[s : s + chunk] @ first.weight.T
            if first.bias is not None:
                shared += first.bias
            scores = []
            for k in range(N_CLASSES):
                a = torch.addcmul(shared, vs, label_columns[k]).clamp_min_(0.0)
                norm = torch.linalg.vector_norm(a, dim=1)
                total = norm.square() * self.scales[0]
                for i, layer in enumerate(self.layers[1:], start=1):  # (a W^T) / ||a||, reused
                    inv = (1.0 / (norm + self.eps))[:, None]
                    a = (a @ layer.weight.T).mul_(inv)
                    if layer.bias is not None:
                        a += layer.bias
                    a.clamp_min_(0.0)
                    norm = torch.linalg.vector_norm(a, dim=1)
                    total += norm.square() * self.scales[i]
                scores.append(total)
            out.append(torch.stack(scores, dim=1))
        return torch.cat(out)

    @torch.no_grad()
    def goodness_per_label_plain(
        self, x: torch.Tensor, label_input: LabelInput = LabelInput.overlay
    ) -> torch.Tensor:
        """`goodness_per_label` the obvious way: 10 full passes, each label overlaid."""
        x = label_ready(x, label_input)
        labels = [torch.full((len(x),), k, dtype=torch.long, device=x.device) for k in range(10)]
        return torch.stack(
            [torch.stack(self.goodnesses(overlay_label(x, y), fused=False)).sum(0) for y in labels],
            dim=1,
        )
