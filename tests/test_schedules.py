import math

import pytest

from ffbench.schedules import BatchGrowth, LrScaling, batch_sizes, learning_rates, schedule


@pytest.mark.parametrize("growth", list(BatchGrowth))
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
