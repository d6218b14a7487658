"""The optimizers: torch's ASGD and Adam (the notes' table), and SGD with momentum."""

from __future__ import annotations

from enum import Enum

import torch


class Optimizer(str, Enum):
    asgd = "asgd"
    adam = "adam"
    sgd = "sgd"  # with `momentum`


def check_optimizer(kind: Optimizer, momentum: float) -> str | None:
    """Why `kind` cannot train with `momentum` (only SGD has one), or None."""
    if momentum and kind != Optimizer.sgd:
        return (
            f"momentum={momentum:g} is read by sgd only; add --set momentum=0 to use {kind.value}"
        )
    return None


def make_optimizer(exp, params, device: torch.device) -> torch.optim.Optimizer:
    """`exp.optimizer` over `params` (tensors, or param groups with their own settings) at
    `exp.lr` with `exp.weight_decay` (and SGD's `exp.momentum`). On a GPU, ASGD keeps its step
    counters on the device (`capturable`): otherwise every step reads them back to the host, a
    sync per step. Adam and SGD are torch's fused kernels, one pass over each parameter instead
    of about ten elementwise ops: the same updates, up to float rounding
    (tests/test_training.py)."""
    kind, common = exp.optimizer, {"lr": exp.lr, "weight_decay": exp.weight_decay}
    if kind == Optimizer.asgd:
        return torch.optim.ASGD(params, capturable=device.type == "cuda", **common)
    if kind == Optimizer.adam:
        return torch.optim.Adam(params, fused=True, **common)
    return torch.optim.SGD(params, momentum=exp.momentum, fused=True, **common)
