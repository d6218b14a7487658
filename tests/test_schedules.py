import math

import pytest

from ffbench.core.schedules import (
    BatchGrowth,
    Batching,
    LrScaling,
    batch_sizes,
    batch_slices,
    learning_rates,
    schedule,
)


@pytest.mark.parametrize("growth", [g for g in BatchGrowth if g != BatchGrowth.dojo])
def test_batch_starts_at_start_ends_at_final_and_never_shrinks(growth):
    sizes = batch_sizes(50, 60000, 400, growth)
    assert len(sizes) == 400
    assert sizes[0] == 50 and sizes[-1] == 60000
    assert all(a <= b for a, b in zip(sizes, sizes[1:], strict=False))


def test_geometric_growth_has_a_constant_ratio():
    sizes = batch_sizes(50, 3200, 7, BatchGrowth.geometric)
    assert sizes == [50, 100, 200, 400, 800, 1600, 3200]
    mid = batch_sizes(50, 60000, 400, BatchGrowth.geometric)[200]
    assert mid == round(50 * 1200 ** (200 / 399))


def test_linear_and_step_growth_values():
    assert batch_sizes(100, 500, 5, BatchGrowth.linear) == [100, 200, 300, 400, 500]
    # step: doublings 50, 100, 200, 400, 800, 1000 spread over equal stages of the epochs
    steps = batch_sizes(50, 1000, 12, BatchGrowth.step)
    assert steps == [50, 50, 100, 100, 200, 200, 400, 400, 800, 800, 1000, 1000]


def test_one_epoch_and_constant_batch():
    assert batch_sizes(50, 60000, 1, BatchGrowth.geometric) == [50]
    assert batch_sizes(50, 50, 3, BatchGrowth.geometric) == [50, 50, 50]
    assert batch_sizes(50, 50, 3, BatchGrowth.step) == [50, 50, 50]


def test_rate_grows_with_the_batch():
    batches = [50, 100, 400, 60000]
    assert learning_rates(1e-3, batches, 50, LrScaling.linear) == pytest.approx(
        [1e-3, 2e-3, 8e-3, 1.2]
    )
    assert learning_rates(1e-3, batches, 50, LrScaling.sqrt) == pytest.approx(
        [1e-3 * math.sqrt(b / 50) for b in batches]
    )
    assert learning_rates(1e-3, batches, 50, LrScaling.none) == [1e-3] * 4


def test_batch_is_clamped_to_the_data_and_the_rate_follows_it():
    plan = schedule(50, 60000, 400, 1e-3, BatchGrowth.geometric, LrScaling.linear, n_train=5000)
    assert plan[0] == (50, pytest.approx(1e-3))
    assert plan[-1] == (5000, pytest.approx(0.1))
    assert max(b for b, _ in plan) == 5000


def test_cooldown_keeps_the_rate_then_falls_linearly_to_zero():
    plan = schedule(100, 100, 10, 0.1, BatchGrowth.geometric, LrScaling.none, cooldown=0.5)
    rates = [r for _, r in plan]
    assert rates[:5] == [0.1] * 5  # first half untouched
    assert rates[5:] == pytest.approx([0.1 * k / 5 for k in (5, 4, 3, 2, 1)])
    no_cooldown = schedule(100, 100, 10, 0.1, BatchGrowth.geometric, LrScaling.none)
    assert [r for _, r in no_cooldown] == [0.1] * 10


@pytest.mark.parametrize(
    "epoch, batch, rate",
    [
        (0, 50, 1e-3 * 50 / 2),  # f = 0: Start, the rate halved
        (79, 5970, 1e-3 * 5970 / 2),  # f = 0.1975 < 0.2: int(59950 * 0.09875) + 50
        (80, 12040, 1e-3 * 12040),  # f = 0.2: the fraction no longer halved, the jump
        (300, 45012, 1e-3 * 45012),  # f = 0.75: not yet tapered (f > 0.75 is)
        (399, 59850, 1e-3 * 59850 * (0.125 * (math.cos(0.99 * 0.6 * math.pi) + 1) + 0.75)),
    ],
)
def test_the_authors_schedule_by_hand(epoch, batch, rate):
    """core/dojo.py:18-35: batch int((Final - Start) f) + Start with f = e/E, halved below 0.2;
    LambdaLR multiplier = the batch, halved below 0.2, times a cosine taper above 0.75."""
    plan = schedule(50, 60000, 400, 1e-3, BatchGrowth.dojo, LrScaling.dojo, n_train=60000)
    assert plan[epoch][0] == batch
    assert plan[epoch][1] == pytest.approx(rate, rel=1e-12)
    assert plan[399][1] == pytest.approx(50.19, abs=0.01)  # "~50 at the end"


def test_windows_move_by_one_sample_and_disjoint_batches_cover_all():
    """core/dojo.py:62-69: n // B windows X[i:i+B]; ours otherwise: every sample once."""
    assert batch_slices(10, 3, Batching.windows) == [(0, 3), (1, 3), (2, 3)]
    assert batch_slices(10, 3, Batching.disjoint) == [(0, 3), (3, 3), (6, 3), (9, 1)]
    seen = {i for s, b in batch_slices(60000, 50, Batching.windows) for i in range(s, s + b)}
    assert seen == set(range(1249))  # at B = 50 an epoch sees 1249 of its 60000 samples
