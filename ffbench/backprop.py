"""Backprop for DNN_base: the reading's loss on a ReLU MLP, every layer from one backward pass."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ffbench.data import MNIST, pixel_values
from ffbench.experiment import DnnOutput, Experiment
from ffbench.models import MLP, N_CLASSES, chunk_size
from ffbench.optimizers import make_optimizer
from ffbench.schedules import batch_slices


def mse_on_softmax(out: torch.Tensor, y: torch.Tensor, b: int) -> torch.Tensor:
    """The authors' DNN loss (FFA/FFA.ipynb cell 3): MSELoss between softmax(output) and the
    one-hot label, a mean over the b x 10 entries of the batch (this chunk's share of it)."""
    target = F.one_hot(y, N_CLASSES).to(out.dtype)
    return F.mse_loss(F.softmax(out, dim=1), target, reduction="sum") / (b * N_CLASSES)


DNN_LOSSES = {
    DnnOutput.logits_ce: lambda out, y, b: F.cross_entropy(out, y, reduction="sum") / b,
    DnnOutput.softmax_mse: mse_on_softmax,
}


class BackpropTask:
    """DNN_base: a ReLU MLP, every layer from one backward pass of the reading's loss
    (cross-entropy on the logits, or the authors' MSE on the softmax).

    The loss is a mean over samples, so a batch larger than `chunk` is taken in chunks whose
    gradients add up before the one optimizer step: the same update, activations in cache."""

    def __init__(
        self, exp: Experiment, data: MNIST, device: torch.device, chunk: int | None = None
    ):
        self.exp = exp
        self.data = data
        self.chunk = chunk or chunk_size(device, 4096)
        self.x_train = pixel_values(data.x_train, exp.pixels)
        self.model = MLP(exp.sizes, bias=exp.bias).to(device)
        self.optimizers = [make_optimizer(exp.optimizer, self.model.parameters(), exp.lr, device)]
        self.phases: list[int | None] = [None]
        self.loss_of = DNN_LOSSES[exp.dnn_output]

    def train_epoch(self, phase, batch: int, gen: torch.Generator) -> torch.Tensor:
        n = len(self.x_train)
        perm = torch.randperm(n, device=self.x_train.device, generator=gen)
        x, y = self.x_train[perm], self.data.y_train[perm]
        (opt,) = self.optimizers
        total = torch.zeros((), device=x.device)
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
        total = torch.zeros((), device=x.device)
        for c in range(0, b, self.chunk):
            loss = self.loss_of(self.model(x[c : c + self.chunk]), y[c : c + self.chunk], b)
            loss.backward()
            total += loss.detach()
        return total

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.predict(pixel_values(x, self.exp.pixels))
