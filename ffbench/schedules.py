"""Batch-size and learning-rate schedules (section 4 of the notes).

The notes give a Start and a Final batch size and say "the learning rate was increased along with
the batch size throughout training". Our reading, switchable: the batch grows geometrically from
Start (first epoch) to Final (last epoch), and the rate is scaled linearly with it,
rate_e = rate * batch_e / Start.
"""

from __future__ import annotations

import math
from enum import Enum


class BatchGrowth(str, Enum):
    geometric = "geometric"  # Start * (Final/Start)^(e/(E-1))
    linear = "linear"  # Start + (Final-Start) * e/(E-1)
    step = "step"  # doubles in equal stages, Start, 2*Start, ... Final


class LrScaling(str, Enum):
    linear = "linear"  # rate * batch/Start
    sqrt = "sqrt"  # rate * sqrt(batch/Start)
    none = "none"  # rate


def batch_sizes(start: int, final: int, epochs: int, growth: BatchGrowth) -> list[int]:
    """Batch size of every epoch: `start` in the first epoch, `final` in the last."""
    if epochs == 1:
        return [start]
    frac = [e / (epochs - 1) for e in range(epochs)]
    if growth == BatchGrowth.geometric:
        sizes = [start * (final / start) ** f for f in frac]
    elif growth == BatchGrowth.linear:
        sizes = [start + (final - start) * f for f in frac]
    else:
        doublings = math.ceil(math.log2(final / start)) if final > start else 0
        stage = [min(start * 2**k, final) for k in range(doublings + 1)]
        sizes = [stage[min(int(f * (doublings + 1)), doublings)] for f in frac]
    return [max(1, round(s)) for s in sizes]


def learning_rates(lr: float, batches: list[int], start: int, scaling: LrScaling) -> list[float]:
    """Rate of every epoch, grown along with its batch size."""
    if scaling == LrScaling.linear:
        return [lr * b / start for b in batches]
    if scaling == LrScaling.sqrt:
        return [lr * math.sqrt(b / start) for b in batches]
    return [lr for _ in batches]


def cooldown_factors(epochs: int, cooldown: float) -> list[float]:
    """Rate multiplier per epoch: 1, then down in equal steps over the last `cooldown` fraction of
    the epochs, (E - e + 1) / (cooldown * E) for epoch e, so the last epoch keeps one step's worth
    (the rate reaches 0 right after it)."""
    span = cooldown * epochs
    return [min(1.0, (epochs - e + 1) / span) if span > 0 else 1.0 for e in range(1, epochs + 1)]


def schedule(
    start: int,
    final: int,
    epochs: int,
    lr: float,
    growth: BatchGrowth,
    scaling: LrScaling,
    n_train: int | None = None,
    cooldown: float = 0.0,
) -> list[tuple[int, float]]:
    """(batch, rate) per epoch. A batch larger than the training set is clamped to it, and the
    rate follows the batch actually used, so a small subset keeps the schedule's shape. With
    `cooldown` the rate then falls linearly to zero over that last fraction of the epochs."""
    batches = batch_sizes(start, final, epochs, growth)
    if n_train is not None:
        batches = [min(b, n_train) for b in batches]
    rates = learning_rates(lr, batches, start, scaling)
    rates = [r * f for r, f in zip(rates, cooldown_factors(epochs, cooldown), strict=True)]
    return list(zip(batches, rates, strict=True))
