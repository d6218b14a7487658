import math

import pytest

from ffbench.core.losses import Loss
from ffbench.rows import PAPER_ROWS, REGISTRY, UnknownExperiment, get, overrides
from ffbench.rows.paper import PAPER

# Section 4 of the notes, typed again here from the PDF text, not from ffbench's own copy:
# name, optimizer, epochs, rate, Start, Final, time in seconds, accuracy (None for NAN).
NOTES_TABLE = [
    ("DNN_base", "asgd", 400, 1e-3, 50, 60000, 24, 97.73),
    ("FFA0", "asgd", 400, 1e-3, 50, 60000, 82, None),
    ("FFA1", "asgd", 400, 1e-3, 50, 60000, 74, None),
    ("adj_FFA0_0", "asgd", 400, 1e-3, 50, 3200, 263, 50.67),
    ("adj_FFA0_1", "asgd", 400, 1e-3, 50, 60000, 83, 49.80),
    ("adj_FFA1_0", "asgd", 400, 1e-3, 50, 3200, 263, 19.24),
    ("adj_FFA1_1", "asgd", 400, 5e-4, 50, 3200, 263, 24.84),
    ("adj_FFA1_2", "asgd", 400, 1e-3, 50, 60000, 81, 21.38),
    ("adj_FFA0_2", "adam", 400, 1e-3, 50, 60000, 73, None),
    ("adj_FFA1_3", "adam", 400, 1e-3, 50, 60000, 78, None),
]
LOSSES = {"DNN_base": Loss.cross_entropy, "FFA0": Loss.L0, "FFA1": Loss.L1}


def test_every_row_of_the_notes_table_is_registered_with_its_settings():
    assert PAPER_ROWS == [row[0] for row in NOTES_TABLE]
    for name, opt, epochs, rate, start, final, seconds, accuracy in NOTES_TABLE:
        exp, paper = REGISTRY[name], PAPER[name]
        assert (exp.optimizer.value, exp.epochs, exp.lr) == (opt, epochs, rate)
        assert (exp.batch_start, exp.batch_final, exp.sizes) == (start, final, (784, 800, 10))
        assert paper.time_s == seconds
        assert math.isnan(paper.accuracy) if accuracy is None else paper.accuracy == accuracy
        want = LOSSES.get(name, Loss.adj_L0 if name.startswith("adj_FFA0") else Loss.adj_L1)
        assert exp.loss == want
        assert exp.method == ("backprop" if name == "DNN_base" else "ff")


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
    assert overrides(exp) == {"epochs": 3, "stable_loss": True}
    assert overrides(get("FFA0")) == {}
