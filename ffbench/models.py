"""The 784-800-10 networks of the notes' table: a backprop MLP and a Forward-Forward net."""

from __future__ import annotations

import torch
import torch.nn as nn

from ffbench.losses import goodness

N_CLASSES = 10
NORM_EPS = 1e-8


class MLP(nn.Module):
    """784-800-10 ReLU network trained by backprop (DNN_base); returns logits."""

    def __init__(self, sizes: tuple[int, ...] = (784, 800, 10)):
        super().__init__()
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x).argmax(dim=1)


def overlay_label(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The image with its first 10 pixels replaced by the one-hot label (section 2)."""
    out = x.clone()
    out[:, :N_CLASSES] = 0.0
    out[torch.arange(len(x), device=x.device), labels] = 1.0
    return out


def l2_normalize(h: torch.Tensor) -> torch.Tensor:
    """a^norm = a / ||a||: a layer sees only the direction of its input, not its goodness."""
    return h / (h.norm(dim=1, keepdim=True) + NORM_EPS)


class LayerGoodness(torch.autograd.Function):
    """Goodness of one FF layer, g = ||relu(x^norm W^T + b)||^2 (eqs 3.4, 3.5), and its activation.

    The same value as `l2_normalize` + Linear + ReLU + `goodness` under autograd, with the weight
    gradient of eq 3.18 written out, dL/dW = sum_i dL/dg_i 2 a_i (x_i^norm)^T, so that one pass
    over the activations replaces autograd's chain of elementwise backward kernels. The row scale
    1/||x|| is applied to x W^T rather than to x. No gradient flows to x: FF layers train on a
    detached input.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, normalize: bool):
        if normalize:
            r = 1.0 / (torch.linalg.vector_norm(x, dim=1) + NORM_EPS)
            a = torch.addcmul(bias, r[:, None], x @ weight.T)
        else:  # x is already x^norm
            r = None
            a = torch.addmm(bias, x, weight.T)
        a.clamp_min_(0.0)
        g = torch.linalg.vector_norm(a, dim=1).square()
        ctx.save_for_backward(x, a, r)
        ctx.mark_non_differentiable(a)
        return g, a

    @staticmethod
    def backward(ctx, grad_g: torch.Tensor, _grad_a):
        x, a, r = ctx.saved_tensors
        two_dg = 2.0 * grad_g
        grad_weight = (a * (two_dg if r is None else two_dg * r)[:, None]).T @ x
        grad_bias = a.T @ two_dg
        return None, grad_weight, grad_bias, None


class FFNet(nn.Module):
    """784-800-10 Forward-Forward net: every layer is Linear + ReLU on an L2-normalised input,
    trained on its own goodness g = ||a||^2 (eqs 3.4, 3.5). `normalize_input=False` feeds the
    first layer the raw image, as section 3 writes it (x for the first layer, a^norm after)."""

    def __init__(self, sizes: tuple[int, ...] = (784, 800, 10), normalize_input: bool = True):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Linear(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.normalize_input = normalize_input

    def normalizes(self, i: int) -> bool:
        return i > 0 or self.normalize_input

    def layer_forward(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """Activation a_i of layer i from the (unnormalised) output of layer i-1, by autograd."""
        return torch.relu(self.layers[i](l2_normalize(h) if self.normalizes(i) else h))

    def layer_goodness(
        self, i: int, h: torch.Tensor, normalize: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(g_i, a_i) of layer i by `LayerGoodness`; gradients reach layer i's weights only."""
        layer = self.layers[i]
        return LayerGoodness.apply(h, layer.weight, layer.bias, normalize)

    def goodnesses(
        self, x: torch.Tensor, fused: bool = True, input_normalized: bool = False
    ) -> list[torch.Tensor]:
        """Goodness of every layer for label-overlaid inputs (`input_normalized`: x is already
        what the first layer takes). Each layer's input is detached, so the gradient of layer i's
        loss reaches layer i's weights only. `fused=False` is the plain autograd path."""
        out, h = [], x
        for i in range(len(self.layers)):
            if fused:
                normalize = self.normalizes(i) and not (i == 0 and input_normalized)
                g, h = self.layer_goodness(i, h, normalize=normalize)
            else:
                h = self.layer_forward(i, h.detach())
                g = goodness(h)
            out.append(g)
        return out

    @torch.no_grad()
    def goodness_per_label(self, x: torch.Tensor, chunk: int = 512) -> torch.Tensor:
        """(N, 10): goodness summed over layers with each of the 10 labels overlaid.

        Only the first layer sees the label, and a one-hot overlay changes x^norm by one column
        of W and not at all the norm (||x|| is the same for every label), so the first layer's
        x W^T is computed once and each label adds its column: 10 labels cost about one pass.
        Rows go in chunks small enough for the ten label variants to stay in cache.
        """
        first = self.layers[0]
        label_columns = first.weight[:, :N_CLASSES].T  # (10, hidden)
        out = []
        for s in range(0, len(x), chunk):
            x0 = x[s : s + chunk].clone()
            x0[:, :N_CLASSES] = 0.0
            r = (1.0 / (torch.sqrt(x0.square().sum(dim=1) + 1.0) + NORM_EPS))[:, None]
            if not self.normalize_input:
                r = torch.ones_like(r)
            shared = torch.addcmul(first.bias, r, x0 @ first.weight.T)  # r x0 W^T + b
            scores = []
            for k in range(N_CLASSES):
                a = torch.addcmul(shared, r, label_columns[k]).clamp_min_(0.0)
                norm = torch.linalg.vector_norm(a, dim=1)
                total = norm.square()
                for layer in self.layers[1:]:  # a^norm W^T = (a W^T) / ||a||, the norm reused
                    inv = (1.0 / (norm + NORM_EPS))[:, None]
                    a = torch.addcmul(layer.bias, inv, a @ layer.weight.T).clamp_min_(0.0)
                    norm = torch.linalg.vector_norm(a, dim=1)
                    total += norm.square()
                scores.append(total)
            out.append(torch.stack(scores, dim=1))
        return torch.cat(out)

    @torch.no_grad()
    def goodness_per_label_plain(self, x: torch.Tensor) -> torch.Tensor:
        """`goodness_per_label` the obvious way: 10 full passes, each label overlaid."""
        labels = [torch.full((len(x),), k, dtype=torch.long, device=x.device) for k in range(10)]
        return torch.stack(
            [torch.stack(self.goodnesses(overlay_label(x, y), fused=False)).sum(0) for y in labels],
            dim=1,
        )

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Prediction of section 2: every label is tried and the best total goodness wins."""
        return self.goodness_per_label(x).argmax(dim=1)
