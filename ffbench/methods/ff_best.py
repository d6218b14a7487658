"""FF_best: Forward-Forward as well as it is done in print, on the same data and runner.

Hinton's paper reports 1.36 % test error with FF alone. This is the published supervised recipe
(Hinton 2022, section 3.3, and its public reimplementations), every piece a constant or a
registry setting:

- input: the image (pixels in [0, 1]; `pixels=standard` subtracts MNIST's mean and divides by
  its std), its first 10 pixels replaced by the label (one-hot; 0.1 everywhere for the
  "neutral" label);
- every layer (784-1000-1000-1000, ReLU) sees its input RMS-normalised, x / sqrt(mean(x^2)), so
  it can use only the direction of the layer below, not its goodness;
- goodness g = sum of squared activations (eq 3.5), theta = the layer's width, loss L0 in its
  stable form, softplus(theta - g+) + softplus(g- - theta) (eq 3.13);
- negatives (`negatives=hard`): the same image with a wrong label drawn from the network's own
  predictions (the head below), in proportion to the probability it gives each wrong label;
  `negatives=wrong_label` draws the wrong label uniformly;
- peer normalisation: a penalty 0.03 * var over units of each unit's running mean activity on
  positive data, which keeps every unit in use;
- the gradient passes each ReLU as if it were the identity, so a unit that went silent recovers;
- SGD with momentum 0.9 and weight decay 3e-4, batch 100, the rate cooled linearly to zero over
  the second half of training (the schedule's `cooldown`);
- a linear softmax head on the RMS-normalised activities of layers 2 and 3 for the neutral label,
  trained at the same time on detached features (rate and weight decay x10): no gradient reaches
  the FF layers. It chooses the hard negatives and is a second read-out (`FF_best/head`).

Prediction (section 2 of the notes, Hinton's choice of layers): every label is tried and the
label with the largest goodness summed over all layers but the first wins.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ffbench.core.data import MNIST, pixel_values
from ffbench.core.losses import FF_LOSSES, ff_loss, goodness
from ffbench.core.models import N_CLASSES
from ffbench.core.optimizers import make_optimizer
from ffbench.core.schedules import batch_slices
from ffbench.core.settings import Experiment, Negatives
from ffbench.methods import Method, register
from ffbench.methods.ff import flops_per_sample

NEUTRAL = 1.0 / N_CLASSES  # the label pixels of a sample that favours no label
PEER_WEIGHT = 0.03
PEER_MOMENTUM = 0.9
HEAD_SCALE = 10.0  # the head's rate and weight decay, relative to the FF layers'
RMS_EPS = 1e-8  # keeps an all-zero layer's RMS norm finite
PREDICT_CHUNK = 1000


def unlabelled(x: torch.Tensor) -> torch.Tensor:
    """The image with its 10 label pixels zeroed: the label goes there by addition."""
    out = x.clone()
    out[:, :N_CLASSES] = 0.0
    return out


def rms_normalize(h: torch.Tensor) -> torch.Tensor:
    return h / (h.square().mean(dim=1, keepdim=True).sqrt() + RMS_EPS)


class StraightReLU(torch.autograd.Function):
    """relu forward; backward as the identity, so a unit gets a gradient even when it is off."""

    @staticmethod
    def forward(ctx, z: torch.Tensor) -> torch.Tensor:
        return z.clamp_min(0.0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad


class FFBestNet(nn.Module):
    """The FF layers, the linear head, and each layer's running mean activity (peer norm).

    The first layer never builds a labelled input: with x0 the image (label pixels zero) and L
    the label pixels, the input is x0 + L, its RMS is sqrt((||x0||^2 + ||L||^2) / 784), and
    W (x0 + L) = W x0 + W L, so W x0 is computed once per image and each label adds a column
    mix. The labelled variants of one image then cost one matrix product, forward and backward.
    """

    def __init__(self, sizes: tuple[int, ...]):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Linear(n_in, n_out) for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True)
        )
        for layer in self.layers:
            nn.init.normal_(layer.weight, 0.0, layer.out_features**-0.5)
            nn.init.zeros_(layer.bias)
        self.head = nn.Linear(sum(sizes[2:]), N_CLASSES, bias=False)
        nn.init.zeros_(self.head.weight)
        for i, width in enumerate(sizes[1:]):
            self.register_buffer(f"mean_activity_{i}", torch.full((width,), 0.5))

    def first_layer(self, base: torch.Tensor, sq: torch.Tensor, label: torch.Tensor):
        """Pre-activation of layer 1 for inputs x0 + L: base = x0 W^T, sq = ||x0||^2, label =
        the rows of L (n, 10) or one row for all."""
        first = self.layers[0]
        label_sq = label.square().sum(dim=-1)
        scale = torch.rsqrt((sq + label_sq) / first.in_features)
        label_part = label @ first.weight[:, :N_CLASSES].T
        return torch.addcmul(first.bias, scale[:, None], base + label_part)

    def upper(self, a: torch.Tensor) -> list[torch.Tensor]:
        """Activities of layers 2.. from layer 1's, each on its RMS-normalised (detached) input."""
        out = []
        for layer in self.layers[1:]:
            a = StraightReLU.apply(layer(rms_normalize(a.detach())))
            out.append(a)
        return out

    @torch.no_grad()
    def neutral_features(self, base: torch.Tensor, sq: torch.Tensor) -> torch.Tensor:
        """The head's input: RMS-normalised activities of layers 2.. for the neutral label."""
        neutral = torch.full((N_CLASSES,), NEUTRAL, device=base.device)
        a = self.first_layer(base, sq, neutral).clamp_min(0.0)
        return torch.cat([rms_normalize(h) for h in self.upper(a)], dim=1)

    @torch.no_grad()
    def goodness_per_label(self, x0: torch.Tensor) -> torch.Tensor:
        """(N, 10): goodness summed over layers 2.. with each label on the image."""
        out = []
        eye = torch.eye(N_CLASSES, device=x0.device)
        for base, sq in self.first_layer_inputs(x0):
            scores = []
            for k in range(N_CLASSES):
                a = self.first_layer(base, sq, eye[k]).clamp_min(0.0)
                scores.append(sum(goodness(h) for h in self.upper(a)))
            out.append(torch.stack(scores, dim=1))
        return torch.cat(out)

    @torch.no_grad()
    def head_logits(self, x0: torch.Tensor) -> torch.Tensor:
        chunks = self.first_layer_inputs(x0)
        return torch.cat([self.head(self.neutral_features(base, sq)) for base, sq in chunks])

    def first_layer_inputs(self, x0: torch.Tensor):
        """(x0 W^T, ||x0||^2) of unlabelled images, chunk by chunk, for `first_layer`."""
        for s in range(0, len(x0), PREDICT_CHUNK):
            xc = x0[s : s + PREDICT_CHUNK]
            yield xc @ self.layers[0].weight.T, xc.square().sum(dim=1)


def peer_penalty(net: FFBestNet, i: int, a_pos: torch.Tensor) -> torch.Tensor:
    """Variance over units of each unit's running mean activity on positive data; the running
    mean is updated here, and only this batch's share of it carries a gradient."""
    name = f"mean_activity_{i}"
    running = getattr(net, name) * PEER_MOMENTUM + a_pos.mean(dim=0) * (1 - PEER_MOMENTUM)
    setattr(net, name, running.detach())
    return (running - running.mean()).square().mean()


@register
class FFBest(Method):
    """The training of FF_best (see the module docstring); the epoch loop drives it like the
    other methods. `readouts` names the second prediction, recorded beside the first."""

    name = "ff_best"
    reads = Method.reads | {"loss", "theta", "stable_loss", "negatives"}
    negatives, losses = (Negatives.hard.value, Negatives.wrong_label.value), FF_LOSSES

    @classmethod
    def flops_per_sample(cls, exp: Experiment) -> int:
        return flops_per_sample(exp.sizes)

    def __init__(self, exp: Experiment, data: MNIST, device: torch.device):
        self.exp, self.data = exp, data
        self.model = FFBestNet(exp.sizes).to(device)
        ff_params = [p for layer in self.model.layers for p in layer.parameters()]
        head = {"params": self.model.head.parameters(), "lr_scale": HEAD_SCALE,
                "weight_decay": exp.weight_decay * HEAD_SCALE}  # fmt: skip
        groups = [{"params": ff_params}, head]
        self.optimizers = [make_optimizer(exp, groups, device)]
        self.x0_train = self.images(data.x_train)
        self.sq_train = self.x0_train.square().sum(dim=1)

    def readouts(self) -> dict:
        return {"head": lambda x: self.model.head_logits(self.images(x)).argmax(dim=1)}

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] as the first layer takes them: on the row's pixel scale, label
        pixels zero."""
        return unlabelled(pixel_values(x, self.exp.pixels))

    def negative_labels(self, logits: torch.Tensor, y: torch.Tensor, gen) -> torch.Tensor:
        """A wrong label per sample: the head's favourite ones (`hard`), or uniformly drawn."""
        if self.exp.negatives == Negatives.hard:
            return self.hard_negative_labels(logits, y, gen)
        shift = torch.randint(1, N_CLASSES, y.shape, device=y.device, generator=gen)
        return (y + shift) % N_CLASSES

    def hard_negative_labels(self, logits: torch.Tensor, y: torch.Tensor, gen) -> torch.Tensor:
        """A wrong label per sample, drawn in proportion to the head's probability for it: the
        argmax of p_k / E_k with E_k ~ Exp(1) independent is k with probability p_k / sum(p)
        (the exponential race), with no host sync, where torch.multinomial may wait for the
        device on every call."""
        p = torch.softmax(logits.detach(), dim=1).scatter(1, y[:, None], 0.0)
        p = p + 1e-6 * (1.0 - F.one_hot(y, N_CLASSES).to(p.dtype))  # never all zero
        race = torch.empty_like(p).exponential_(generator=gen)
        return (p / race).argmax(dim=1)

    def step_loss(self, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """All losses of one batch: FF + peer per layer, and the head's cross-entropy."""
        net, exp = self.model, self.exp
        x0, sq, y = self.x0_train[idx], self.sq_train[idx], self.data.y_train[idx]
        b = len(idx)
        base = x0 @ net.layers[0].weight.T
        features = net.neutral_features(base.detach(), sq)
        logits = net.head(features)
        head_loss = F.cross_entropy(logits, y)
        y_neg = self.negative_labels(logits, y, gen)
        labels = F.one_hot(torch.cat([y, y_neg]), N_CLASSES).to(x0.dtype)
        z1 = net.first_layer(torch.cat([base, base]), torch.cat([sq, sq]), labels)
        acts = [StraightReLU.apply(z1)] + net.upper(StraightReLU.apply(z1))
        loss = head_loss
        for i, a in enumerate(acts):
            g = goodness(a)
            loss = loss + ff_loss(exp.loss, g[:b], g[b:], exp.theta, exp.stable_loss)
            loss = loss + PEER_WEIGHT * peer_penalty(net, i, a[:b])
        return loss

    def train_epoch(self, phase, batch: int, gen: torch.Generator) -> torch.Tensor:
        n = len(self.x0_train)
        perm = torch.randperm(n, device=self.x0_train.device, generator=gen)
        (opt,) = self.optimizers
        total = torch.zeros((), dtype=torch.float64, device=self.x0_train.device)
        seen = 0
        for s, b in batch_slices(n, batch, self.exp.batching):
            opt.zero_grad(set_to_none=True)
            loss = self.step_loss(perm[s : s + b], gen)
            loss.backward()
            opt.step()
            total += loss.detach() * b
            seen += b
        return total / seen

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """FF's own prediction: the label with the most goodness above the first layer."""
        return self.model.goodness_per_label(self.images(x)).argmax(dim=1)
