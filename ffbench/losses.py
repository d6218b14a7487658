"""Goodness and the Forward-Forward losses of the notes (eqs 3.5, 3.13, 3.16, 4.1, 4.2).

With s = (g+ - theta) (+) (theta - g-), the concatenation over positive and negative samples,

    L0     = -E[ln sigma(s)]          (3.13)   adjusted: -E[ln(1 + sigma(s))]   (4.1)
    L1     =  E[ln sigma(-s)]         (3.16)   adjusted:  E[ln(1 + sigma(-s))]  (4.2)

E is the mean over all n + m terms. The paper's rows take ln(sigma(.)) literally, so sigma
underflowing to 0 gives ln 0 = -inf and a NaN gradient, as the authors' code would; `stable=True`
uses log-sigmoid instead.
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


def ff_loss(
    kind: Loss, g_pos: torch.Tensor, g_neg: torch.Tensor, theta: float, stable: bool = False
) -> torch.Tensor:
    """The FF loss `kind` of one layer: E over the positive and negative terms (eqs 3.13-4.2)."""
    return ff_loss_terms(kind, g_pos, g_neg, theta, stable).mean()
