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
    dojo = "dojo"  # the authors' code: int((Final-Start) * f) + Start, f = e/E, halved if < 0.2


class LrScaling(str, Enum):
    linear = "linear"  # rate * batch/Start
    sqrt = "sqrt"  # rate * sqrt(batch/Start)
    none = "none"  # rate
    dojo = "dojo"  # the authors' code: rate * batch, halved if f < 0.2, cosine taper if f > 0.75


class Batching(str, Enum):
    disjoint = "disjoint"  # slices [s, s+B) for s = 0, B, 2B, ...: every sample once
    windows = "windows"  # the authors' code: n // B windows [i, i+B) for i = 0, 1, 2, ...


# core/dojo.py:17-35 (pho-ices-ml at d04dcf3): the splits of the epoch fraction and the taper.
DOJO_EARLY, DOJO_LATE, DOJO_FINAL_RATE = 0.2, 0.75, 0.75


def batch_sizes(start: int, final: int, epochs: int, growth: BatchGrowth) -> list[int]:
    """Batch size of every epoch: `start` in the first epoch, `final` in the last."""
    if growth == BatchGrowth.dojo:  # core/dojo.py:18-21, f = epoch / epochs
        fracs = [e / epochs for e in range(epochs)]
        return [int((final - start) * (f / 2 if f < DOJO_EARLY else f)) + start for f in fracs]
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
    if scaling == LrScaling.dojo:
        return [lr * b * dojo_factor(e / len(batches)) for e, b in enumerate(batches)]
    return [lr for _ in batches]


def dojo_factor(f: float) -> float:
    """The authors' rate multiplier over the batch size at epoch fraction f (core/dojo.py:24-35):
    1/2 before 20 % of the epochs, then 1, then a cosine taper from 1 to about 0.84 (its last
    epoch) after 75 %; LambdaLR multiplies the base rate by batch * this."""
    if f < DOJO_EARLY:
        return 0.5
    if f > DOJO_LATE:
        x = (f - DOJO_LATE) / (1 - DOJO_LATE)
        return 0.5 * (1 - DOJO_FINAL_RATE) * (math.cos(x * math.pi * 0.6) + 1) + DOJO_FINAL_RATE
    return 1.0


def batch_slices(n: int, batch: int, batching: Batching) -> list[tuple[int, int]]:
    """(start, size) of every batch of an epoch over n shuffled samples. `disjoint` covers every
    sample once (the last batch may be short); `windows` is the authors' loop
    (core/dojo.py:62-69): n // B batches X[i:i+B] for i = 0, 1, 2, ..., windows that move by one
    sample, so an epoch at B = 50 sees only the first 1249 samples of its shuffle."""
    if batching == Batching.windows:
        return [(i, batch) for i in range(n // batch)]
    return [(s, min(batch, n - s)) for s in range(0, n, batch)]


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
