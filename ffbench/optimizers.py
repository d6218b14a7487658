"""The optimizers of the notes' table: torch's ASGD and Adam."""

from __future__ import annotations

import torch

from ffbench.experiment import Optimizer


def make_optimizer(kind: Optimizer, params, lr: float, device: torch.device):
    """torch's ASGD or Adam with their defaults. On a GPU, ASGD keeps its step counters on the
    device (`capturable`): otherwise every step reads them back to the host, a sync per step.
    Adam is torch's fused kernel, one pass over each parameter instead of about ten elementwise
    ops (one thread, a 800x784 layer: about 1 ms a step against 2-4 ms). Same updates, up to
    float rounding (tests/test_training.py)."""
    if kind == Optimizer.asgd:
        return torch.optim.ASGD(params, lr=lr, capturable=device.type == "cuda")
    if kind == Optimizer.adam:
        return torch.optim.Adam(params, lr=lr, fused=True)
    raise ValueError(f"{kind.value}: only FF_best's task sets up SGD (momentum, weight decay)")
