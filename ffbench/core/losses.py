"""Goodness and the Forward-Forward losses of the notes (eqs 3.5, 3.13, 3.16, 4.1, 4.2), and the
two losses of DNN_base (cross-entropy, or the authors' MSE on the softmax).

With s = (g+ - theta) (+) (theta - g-), the concatenation over positive and negative samples,

    L0     = -E[ln sigma(s)]          (3.13)   adjusted: -E[ln(1 + sigma(s))]   (4.1)
    L1     =  E[ln sigma(-s)]         (3.16)   adjusted:  E[ln(1 + sigma(-s))]  (4.2)

E is the mean over all n + m terms. The paper's rows take ln(sigma(.)) literally, so sigma
underflowing to 0 gives ln 0 = -inf and a NaN gradient; `stable=True` uses log-sigmoid instead.

The authors' code (`LossForm.code`, core/FFALayer.py:26-28 and 57-59 of pho-ices-ml) computes
its adjusted rows as mean(log(1 + exp(-s))) and -mean(log(1 + exp(s))), which are eqs 3.13 and
3.16 themselves (-ln sigma(s) = ln(1 + e^-s)), written with exp so that it overflows to inf past
s = 88; its plain rows are the same without the "1 +", ln(exp(-s)) and -ln(exp(s)): both are
mean(-s), one objective linear in g.
"""

from __future__ import annotations

from enum import Enum

import torch
import torch.nn.functional as F


class Loss(str, Enum):
    cross_entropy = "cross_entropy"  # backprop baseline
    L0 = "L0"  # eq 3.13
    L1 = "L1"  # eq 3.16
    adj_L0 = "adj_L0"  # eq 4.1
    adj_L1 = "adj_L1"  # eq 4.2


FF_LOSSES = (Loss.L0, Loss.L1, Loss.adj_L0, Loss.adj_L1)


class LossForm(str, Enum):
    text = "text"  # eqs 3.13, 3.16, 4.1, 4.2 as printed
    code = "code"  # the authors' code: log(1 + exp(.)) for adj, its argument alone for plain


class DnnOutput(str, Enum):
    logits_ce = "logits_ce"  # cross-entropy on the logits
    softmax_mse = "softmax_mse"  # MSE between softmax(output) and the one-hot label


def goodness(a: torch.Tensor) -> torch.Tensor:
    """g = ||a||^2, the sum of squared activations of each sample (eqs 3.5, 3.25)."""
    return a.square().sum(dim=-1)


def margins(g_pos: torch.Tensor, g_neg: torch.Tensor, theta: float) -> torch.Tensor:
    """s = (g+ - theta) (+) (theta - g-): positive when a sample is on the right side of theta."""
    return torch.cat([g_pos - theta, theta - g_neg])


def _ln_sigmoid(x: torch.Tensor, stable: bool) -> torch.Tensor:
    return F.logsigmoid(x) if stable else torch.log(torch.sigmoid(x))


def ff_loss_terms(
    kind: Loss, g_pos: torch.Tensor, g_neg: torch.Tensor, theta: float, stable: bool = False
) -> torch.Tensor:
    """The n + m terms whose mean is the FF loss `kind`: -ln sigma(s) for L0, ln sigma(-s) for L1,
    and the ln(1 + .) forms for the adjusted losses."""
    s = margins(g_pos, g_neg, theta)
    if kind == Loss.L0:
        return -_ln_sigmoid(s, stable)
    if kind == Loss.L1:
        return _ln_sigmoid(-s, stable)
    if kind == Loss.adj_L0:
        return -torch.log1p(torch.sigmoid(s))
    if kind == Loss.adj_L1:
        return torch.log1p(torch.sigmoid(-s))
    raise ValueError(f"{kind} is not a Forward-Forward loss")


def code_loss_terms(
    kind: Loss, g_pos: torch.Tensor, g_neg: torch.Tensor, theta: float, stable: bool = False
) -> torch.Tensor:
    """The terms the authors' code averages (core/FFALayer.py:26-28, 57-59): log(1 + exp(-s))
    for adj_L0, -log(1 + exp(s)) for adj_L1, and for the plain rows the same without "1 +",
    which is -s for both: the figures pFFA0/pFFA1 start at loss 0 and fall without bound.
    Computed literally, as the authors' code would: once one sample's |s| passes 88.7, exp(s)
    overflows float32 (or 1/exp(-s) does, in the gradient) and the gradient is inf or NaN,
    however small the mean loss. `stable` is not read."""
    s = margins(g_pos, g_neg, theta)
    if kind == Loss.adj_L0:
        return torch.log(1 + torch.exp(-s))
    if kind == Loss.adj_L1:
        return -torch.log(1 + torch.exp(s))
    if kind == Loss.L0:  # ln(exp(-s)): -s, until exp(-s) or its reciprocal leaves float32
        return torch.log(torch.exp(-s))
    if kind == Loss.L1:  # -ln(exp(s)): -s too
        return -torch.log(torch.exp(s))
    raise ValueError(f"{kind} is not a Forward-Forward loss")


LOSS_FORMS = {LossForm.text: ff_loss_terms, LossForm.code: code_loss_terms}


def ff_loss(
    kind: Loss, g_pos: torch.Tensor, g_neg: torch.Tensor, theta: float, stable: bool = False
) -> torch.Tensor:
    """The FF loss `kind` of one layer: E over the positive and negative terms (eqs 3.13-4.2)."""
    return ff_loss_terms(kind, g_pos, g_neg, theta, stable).mean()


def mse_on_softmax(out: torch.Tensor, y: torch.Tensor, b: int) -> torch.Tensor:
    """The authors' DNN loss (FFA/FFA.ipynb cell 3): MSELoss between softmax(output) and the
    one-hot label, a mean over the b x 10 entries of the batch (this chunk's share of it)."""
    target = F.one_hot(y, out.shape[1]).to(out.dtype)
    return F.mse_loss(F.softmax(out, dim=1), target, reduction="sum") / (b * out.shape[1])


# The DNN losses of a chunk of a batch of b samples: its share of the batch's mean.
DNN_LOSSES = {
    DnnOutput.logits_ce: lambda out, y, b: F.cross_entropy(out, y, reduction="sum") / b,
    DnnOutput.softmax_mse: mse_on_softmax,
}
