"""The authors' training loop, written plainly from reading it (pho-ices-ml at d04dcf3:
core/dojo.py, core/FFA.py, core/FFALayer.py, FFA/FFA.ipynb cell 3), in our words: the structure
of their loop, not their code. The `code` reading's fast path (ffbench/methods/ff.py) is held to it
in tests/test_readings.py.

Its loop, per epoch: shuffle; for i in range(n // B) take X[i:i+B]; normalise each image, draw a
wrong label per image, set the label pixels; then layer 1 computes its loss, zero_grad (zeros,
not None, in the torch of 2023), backward, the one ASGD steps every parameter; layer 2 trains on
layer 1's re-computed (updated) output. DNN: softmax output, MSE against the one-hot label.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ffbench.core.losses import Loss


class AuthorsLayer(nn.Linear):
    def __init__(self, n_in: int, n_out: int, kind: Loss, theta: float = 0.5):
        super().__init__(n_in, n_out, bias=False)
        self.kind, self.theta = kind, theta

    def forward(self, x):
        return torch.relu(torch.mm(x / (x.norm(2, 1, keepdim=True) + 1e-4), self.weight.T))

    def train_step(self, x_pos, x_neg, opt):
        g_pos = self.forward(x_pos).pow(2).mean(1)
        g_neg = self.forward(x_neg).pow(2).mean(1)
        t = self.theta
        one = 1 if self.kind in (Loss.adj_L0, Loss.adj_L1) else 0  # the plain rows: no "1 +"
        if self.kind in (Loss.adj_L0, Loss.L0):  # core/FFALayer.py:26-28
            loss = torch.log(one + torch.exp(torch.cat([t - g_pos, g_neg - t])))
        else:  # FFALayer1, core/FFALayer.py:57-59
            loss = -torch.log(one + torch.exp(torch.cat([g_pos - t, t - g_neg])))
        loss = loss.mean()
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()
        return self.forward(x_pos).detach(), self.forward(x_neg).detach(), loss.item()


class AuthorsFFA(nn.Module):
    def __init__(self, kind: Loss, sizes=(784, 800, 10)):
        super().__init__()
        self.layers = nn.ModuleList(
            AuthorsLayer(a, b, kind) for a, b in zip(sizes, sizes[1:], strict=False)
        )

    @staticmethod
    def join(x, labels):
        out = x.clone()
        out[:, :10] *= 0.0
        out[range(len(x)), labels] = 1.0
        return out

    def train_batch(self, x, labels, opt, gen):
        x = F.normalize(x)
        wrong = (torch.randint(1, 10, (len(x),), generator=gen) + labels) % 10
        pos, neg = self.join(x, labels), self.join(x, wrong)
        loss = 0.0
        for layer in self.layers:
            pos, neg, layer_loss = layer.train_step(pos, neg, opt)
            loss += layer_loss
        return loss

    @torch.no_grad()
    def predict(self, x):
        x = F.normalize(x)
        scores = []
        for label in range(10):
            h = self.join(x, torch.full((len(x),), label))
            total = 0
            for layer in self.layers:
                h = layer(h)
                total = total + h.pow(2).mean(1)
            scores.append(total)
        return torch.stack(scores, 1).argmax(1)


class AuthorsDNN(nn.Module):
    def __init__(self, sizes=(784, 800, 10)):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Linear(a, b, bias=False) for a, b in zip(sizes, sizes[1:], strict=False)
        )

    def forward(self, x):
        return F.softmax(self.layers[1](torch.relu(self.layers[0](x))), dim=1)

    def train_batch(self, x, labels, opt, gen):
        loss = F.mse_loss(self.forward(x), F.one_hot(labels, 10).float())
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()
        return loss.item()


def authors_epochs(net, x_raw, y, plan, gen):
    """Train `net` for the epochs of `plan` [(batch, rate), ...] as core/dojo.py does, on raw
    0-255 pixels; returns the epochs' mean batch losses."""
    opt = torch.optim.ASGD(net.parameters(), lr=plan[0][1])
    losses = []
    n = len(x_raw)
    for batch, rate in plan:
        for group in opt.param_groups:
            group["lr"] = rate
        idx = torch.randperm(n, generator=gen)
        xs, ys = x_raw[idx], y[idx]
        batch_losses = [net.train_batch(xs[i : i + batch], ys[i : i + batch], opt, gen)
                        for i in range(n // batch)]  # fmt: skip
        losses.append(sum(batch_losses) / len(batch_losses))
    return losses
