"""The order `run --jobs N` starts runs in: longest first."""

import dataclasses

from ffbench.experiments import PAPER_ROWS, get
from ffbench.sweep import expected_cost, longest_first


def test_the_paper_rows_start_longest_first_and_dnn_base_last():
    """FF does twice DNN_base's matrix work a sample (a positive and a negative), and a row
    whose batch stops growing at 3200 takes more steps than one that grows to 60000."""
    order = [
        exp.name for exp, _ in longest_first([(get(n), s) for n in PAPER_ROWS for s in (0, 1)])
    ]
    assert len(order) == 2 * len(PAPER_ROWS)
    assert order[-2:] == ["DNN_base", "DNN_base"]
    assert set(order[:6]) == {"adj_FFA0_0", "adj_FFA1_0", "adj_FFA1_1"}
    assert expected_cost(get("adj_FFA0_0")) > expected_cost(get("adj_FFA0_1"))
    assert 1.5 < expected_cost(get("FFA0")) / expected_cost(get("DNN_base")) < 2.0


def test_a_subset_or_fewer_epochs_cost_less():
    exp = get("FFA0")
    assert expected_cost(dataclasses.replace(exp, train_subset=2000)) < expected_cost(exp) / 20
    assert expected_cost(dataclasses.replace(exp, epochs=2)) < expected_cost(exp) / 100
