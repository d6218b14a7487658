import math

import pytest

from ffbench.experiments import PAPER, PAPER_ROWS, REGISTRY, Method, UnknownExperiment, get
from ffbench.losses import Loss


def test_every_row_of_the_notes_table_is_registered_with_its_settings():
    assert PAPER_ROWS == [
        "DNN_base", "FFA0", "FFA1", "adj_FFA0_0", "adj_FFA0_1", "adj_FFA1_0", "adj_FFA1_1",
        "adj_FFA1_2", "adj_FFA0_2", "adj_FFA1_3",
    ]  # fmt: skip
    for name in PAPER_ROWS:
        exp, paper = REGISTRY[name], PAPER[name]
        assert (exp.optimizer, exp.epochs, exp.lr) == (paper.optimizer, paper.epochs, paper.lr)
        assert (exp.batch_start, exp.batch_final) == (paper.batch_start, paper.batch_final)
        assert exp.sizes == (784, 800, 10)
    assert get("adj_FFA1_1").lr == 5e-4 and get("adj_FFA0_0").batch_final == 3200
    assert get("adj_FFA0_2").optimizer.value == "adam"
    assert get("DNN_base").method == Method.backprop and get("FFA1").loss == Loss.L1
    assert {get(n).loss for n in PAPER_ROWS if n.startswith("adj_FFA0")} == {Loss.adj_L0}


def test_paper_numbers_are_kept_as_printed():
    assert PAPER["DNN_base"].accuracy == 97.73
    assert PAPER["DNN_base"].time_s == 24
    assert PAPER["adj_FFA0_0"].time_s == 4 * 60 + 23
    assert math.isnan(PAPER["FFA0"].accuracy)
    assert sum(math.isnan(p.accuracy) for p in PAPER.values()) == 4


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UnknownExperiment) as e:
        get("adj_FFA0_l")
    assert "adj_FFA0_1" in e.value.close
    assert "did you mean" in str(e.value)
    with pytest.raises(UnknownExperiment, match="see `ffbench list`"):
        get("resnet")


def test_overrides_are_the_settings_that_differ_from_the_registry():
    import dataclasses

    exp = dataclasses.replace(get("FFA0"), epochs=3, theta=2.0, stable_loss=True)
    assert exp.overrides() == {"epochs": 3, "stable_loss": True}
    assert get("FFA0").overrides() == {}
