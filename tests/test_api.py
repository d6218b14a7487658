"""The Python API (ffbench/api.py): what a notebook calls, and what the CLI is a layer over."""

import dataclasses
import json

import pandas as pd
import pytest

import ffbench
from ffbench.rows import REGISTRY, overrides

TINY = dict(epochs=1, train_subset=500, batch_final=50)


def test_run_returns_a_result_and_table_returns_its_row(tmp_path, mnist_root):
    """The issue's acceptance line: ffbench.run(...).test_accuracy, then ffbench.table(dir)."""
    r = ffbench.run("DNN_base", epochs=1, train_subset=2000, runs_dir=tmp_path, progress=False)
    assert isinstance(r, ffbench.RunResult) and r.status == "finished" and not r.skipped
    assert 0.0 < r.test_accuracy < 1.0 and r.train_seconds > 0
    assert r.path == tmp_path / "code" / "DNN_base" / r.path.name
    assert list(r.records.epoch) == [1] and r.records.test_accuracy[0] == r.test_accuracy
    assert r.config["train_subset"] == 2000 and r.config["reading"] == "code"
    t = ffbench.table(tmp_path)
    assert isinstance(t, pd.DataFrame) and list(t.experiment) == ["DNN_base"]
    assert t.n[0] == 1 and t.accuracy[0] == pytest.approx(100 * r.test_accuracy)
    assert t.paper_accuracy[0] == 97.73
    runs = ffbench.load_runs(tmp_path)
    assert list(runs.seed) == [0] and runs.test_accuracy[0] == r.test_accuracy
    again = ffbench.run("DNN_base", epochs=1, train_subset=2000, runs_dir=tmp_path, progress=False)
    assert again.skipped and again.test_accuracy == r.test_accuracy


def test_several_seeds_give_a_list_in_seed_order(tmp_path, mnist_root):
    out = ffbench.run("adj_FFA0_1", seeds=[1, 0], runs_dir=tmp_path, progress=False, **TINY)
    assert [r.seed for r in out] == [1, 0] and all(r.experiment == "adj_FFA0_1" for r in out)
    assert ffbench.table(tmp_path).n[0] == 2


def test_experiments_lists_the_rows_under_a_reading():
    code, text = ffbench.experiments("code"), ffbench.experiments("text")
    assert set(code) >= {"DNN_base", "adj_FFA0_1", "FF_best"}
    assert code["adj_FFA0_1"].goodness.value == "mean" and code["adj_FFA0_1"].theta == 0.5
    assert text["adj_FFA0_1"].goodness.value == "sum" and text["adj_FFA0_1"].theta == 2.0
    assert code["FF_best"] == text["FF_best"]  # beyond the notes: its own recipe


def test_a_defined_row_runs_keeps_its_reading_and_says_where_it_came_from(tmp_path, mnist_root):
    name = "api_theta1"
    try:
        exp = ffbench.define(name, base="adj_FFA0_1", reading="code", theta=1.0)
        assert ffbench.experiments("text")[name] == exp  # a defined row keeps its reading
        r = ffbench.run(name, reading="text", runs_dir=tmp_path, progress=False, **TINY)
    finally:
        REGISTRY.pop(name, None)
    assert r.reading == "code" and r.path.parent == tmp_path / "code" / name
    assert r.config["base"] == "adj_FFA0_1" and r.config["source"] == "python"
    assert r.config["goodness"] == "mean" and r.config["theta"] == 1.0
    row = ffbench.table(tmp_path).iloc[0]
    assert row.experiment == name and "theta=1.0" in row.overrides


def test_an_experiment_object_runs_directly_and_quietly(tmp_path, mnist_root, capsys):
    exp = dataclasses.replace(ffbench.experiments()["DNN_base"], lr=0.01)
    r = ffbench.run(exp, runs_dir=tmp_path, progress=False, **TINY)
    assert r.status == "finished" and r.config["lr"] == 0.01
    assert capsys.readouterr().out == ""
    ffbench.run(exp, runs_dir=tmp_path, force=True, **TINY)
    assert "DNN_base seed 0 epoch 1/1" in capsys.readouterr().out  # a log: plain lines


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda d: ffbench.run("DNN_bse", runs_dir=d), "did you mean DNN_base"),
        (lambda d: ffbench.run("DNN_base", runs_dir=d, epochs=0), "epochs must be >= 1"),
        (lambda d: ffbench.run("DNN_base", runs_dir=d, thetaa=1), "did you mean theta?"),
        (lambda d: ffbench.run("DNN_base", runs_dir=d, stable_loss=1), "takes true or false"),
        (lambda d: ffbench.run("DNN_base", runs_dir=d, reading="txt"), "unknown reading"),
        (lambda d: ffbench.run("DNN_base", runs_dir=d, seeds=-1), "integer >= 0"),
        (lambda d: ffbench.run("DNN_base", runs_dir=d, device="tpu"), "auto, cpu or cuda"),
        (lambda d: ffbench.run("DNN_base", runs_dir=d, theta=1.0), "reads --theta"),
        (lambda d: ffbench.run("FFA0", runs_dir=d, negatives="hard"), "no hard negatives"),
        (lambda d: ffbench.run("FF_best", runs_dir=d, negatives="other_image"), "=hard or"),
        (lambda d: ffbench.run("FF_best", runs_dir=d, layer_order="greedy"), "only ff rows"),
        (lambda d: ffbench.define("DNN_base", base="FFA0"), "registered already"),
        (lambda d: ffbench.define("x_new", base="FFA9"), "unknown experiment 'FFA9'"),
    ],
)
def test_bad_requests_raise_one_clear_error_and_write_nothing(tmp_path, call, message):
    with pytest.raises(ffbench.BadRequest, match=message):
        call(tmp_path / "runs")
    assert not (tmp_path / "runs").exists() and "x_new" not in REGISTRY


def test_a_row_registered_in_a_notebook_runs_in_worker_processes(tmp_path, mnist_root):
    """`jobs=2` starts fresh processes, where only the package's rows are registered: the
    notebook's row travels with the jobs."""
    row = dataclasses.replace(ffbench.experiments()["DNN_base"], name="api_nb_row", lr=0.01)
    ffbench.register(row)
    try:
        out = ffbench.run("api_nb_row", seeds=[0, 1], jobs=2, runs_dir=tmp_path, progress=False,
                          device="cpu", **TINY)  # fmt: skip
    finally:
        REGISTRY.pop("api_nb_row")
    assert [r.status for r in out] == ["finished", "finished"]
    config = json.loads((out[0].path / "config.json").read_text())
    assert config["name"] == "api_nb_row" and config["lr"] == 0.01


def test_progress_is_one_bar_or_few_lines_in_a_notebook_and_none_when_quiet(monkeypatch):
    """rich's console in Jupyter is no terminal: plain lines there would be 400 a run."""
    import io

    from rich.console import Console

    from ffbench.runner import progress as progress_module
    from ffbench.runner.progress import EpochProgress

    record = dict(batch=50, rate=0.1, loss=1.0, seconds=1.0)

    def lines(console, total=40):
        with EpochProgress(console, {"run": total}) as p:
            for epoch in range(1, total + 1):
                p("run", record | {"epoch": epoch})
            return p.bar, console.file.getvalue().splitlines()

    bar, shown = lines(Console(file=io.StringIO(), force_terminal=False, force_jupyter=False))
    assert bar is None and len(shown) == 40  # a log: every epoch
    quiet = Console(file=io.StringIO(), quiet=True)
    assert lines(quiet) == (None, [])
    monkeypatch.setattr(progress_module.importlib.util, "find_spec", lambda name: None)
    notebook, shown = Console(file=io.StringIO(), force_jupyter=True), []
    monkeypatch.setattr(notebook, "print", lambda text, **kw: shown.append(text))
    assert lines(notebook)[0] is None  # no ipywidgets: no live bar, but ...
    assert len(shown) == 10 and shown[-1].startswith("run epoch 40/40")  # a line a tenth


def test_an_experiment_object_keeps_its_switches_a_name_takes_the_reading():
    from ffbench.api import plan

    mine = dataclasses.replace(ffbench.experiments("code")["adj_FFA0_1"], goodness="sum")
    ((exp, _),) = plan([mine], [0], reading="code")
    assert exp.goodness.value == "sum" and overrides(exp) == {"goodness": "sum"}
    ((exp, _),) = plan(["adj_FFA0_1"], [0], reading="code", settings={"theta": "1"})
    assert exp.goodness.value == "mean" and exp.theta == 1.0
