"""Backprop (DNN_base): the reading's loss on a ReLU MLP, every layer from one backward pass."""

from __future__ import annotations

import torch

from ffbench.core.data import MNIST, pixel_values
from ffbench.core.losses import DNN_LOSSES
from ffbench.core.models import MLP, check_groups, chunk_size, layer_groups
from ffbench.core.optimizers import make_optimizer
from ffbench.core.schedules import batch_slices
from ffbench.core.settings import Experiment
from ffbench.methods import Method, register


def pairs(sizes: tuple[int, ...]) -> list[tuple[int, int]]:
    return list(zip(sizes[:-1], sizes[1:], strict=True))


def weights(exp: Experiment) -> list[int]:
    """The number of weights of each layer: n_in * n_out, over its blocks in a grouped one."""
    blocks = layer_groups(exp.sizes, exp.linear_groups)
    return [a * b // g for (a, b), g in zip(pairs(exp.sizes), blocks, strict=True)]


@register
class Backprop(Method):
    """DNN_base: a ReLU MLP, every layer from one backward pass of the reading's loss
    (cross-entropy on the logits, or the authors' MSE on the softmax).

    The loss is a mean over samples, so a batch larger than `chunk` is taken in chunks whose
    gradients add up before the one optimizer step: the same update, activations in cache."""

    name = "backprop"
    reads = Method.reads | {"bias", "dnn_output", "layer_norm", "linear_groups"}

    @classmethod
    def check(cls, exp: Experiment) -> str | None:
        return check_groups(exp.sizes, exp.linear_groups) or super().check(exp)

    @classmethod
    def flops_per_sample(cls, exp: Experiment) -> int:
        """Forward and weight gradient of every layer, input gradient of all but the first
        (2 FLOPs per weight each; biases, norms and elementwise work not counted)."""
        layers = weights(exp)
        return sum(4 * w for w in layers) + sum(2 * w for w in layers[1:])

    def __init__(
        self, exp: Experiment, data: MNIST, device: torch.device, chunk: int | None = None
    ):
        self.exp = exp
        self.data = data
        self.chunk = chunk or chunk_size(device, 4096)
        self.x_train = pixel_values(data.x_train, exp.pixels)
        self.model = MLP(exp.sizes, exp.bias, exp.layer_norm, exp.linear_groups).to(device)
        self.optimizers = [make_optimizer(exp, self.model.parameters(), device)]
        self.loss_of = DNN_LOSSES[exp.dnn_output]

    def train_epoch(self, phase, batch: int, gen: torch.Generator) -> torch.Tensor:
        n = len(self.x_train)
        perm = torch.randperm(n, device=self.x_train.device, generator=gen)
        x, y = self.x_train[perm], self.data.y_train[perm]
        (opt,) = self.optimizers
        total = torch.zeros((), dtype=torch.float64, device=x.device)
        seen = 0
        for s, b in batch_slices(n, batch, self.exp.batching):
            opt.zero_grad(set_to_none=True)
            total += self.batch_gradients(x[s : s + b], y[s : s + b], gen) * b
            opt.step()
            seen += b
        return total / seen

    def batch_gradients(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
        """Set every parameter's .grad for one batch; returns the batch's mean loss (detached)."""
        b = len(x)
        total = torch.zeros((), dtype=torch.float64, device=x.device)
        for c in range(0, b, self.chunk):
            loss = self.loss_of(self.model(x[c : c + self.chunk]), y[c : c + self.chunk], b)
            loss.backward()
            total += loss.detach()
        return total

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.predict(pixel_values(x, self.exp.pixels))
