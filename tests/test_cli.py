import csv
import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ffbench.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


def test_list_shows_every_paper_row():
    out = invoke("list")
    assert out.exit_code == 0
    for name in ("DNN_base", "FFA0", "FFA1", "adj_FFA0_2", "adj_FFA1_3"):
        assert name in out.output
    assert "97.73" in out.output and "NAN" in out.output
    header = next(line for line in out.output.splitlines() if "Name" in line)
    fg_weight = next(line for line in out.output.splitlines() if "FG_weight" in line)
    assert header.count("┃") == fg_weight.count("│")  # every row fills every column
    assert "none" in fg_weight and "Rate growth" in header


def test_module_entry_point_works():
    out = subprocess.run(
        [sys.executable, "-m", "ffbench", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "table" in out.stdout


def test_run_then_table(tmp_path, mnist_root):
    runs = str(tmp_path / "runs")
    args = ["--epochs", "1", "--train-subset", "500", "--batch-final", "50", "--lr", "0.1"]
    out = invoke("run", "DNN_base", "adj_FFA0_1", *args, "--runs-dir", runs)
    assert out.exit_code == 0, out.output
    assert "DNN_base seed 0 epoch 1/1" in out.output  # plain progress lines off a terminal
    again = invoke("run", "DNN_base", *args, "--runs-dir", runs)
    assert "already done" in again.output
    csv = invoke("table", "--runs-dir", runs, "--format", "csv")
    assert csv.exit_code == 0
    lines = csv.output.splitlines()
    assert lines[0].startswith("experiment,") and len(lines) == 3
    assert lines[1].startswith("DNN_base,") and ",97.73," in lines[1]
    md = invoke("table", "--runs-dir", runs, "--format", "markdown")
    assert md.output.startswith("| Experiment |") and "adj_FFA0_1" in md.output


def test_table_of_a_missing_runs_dir_is_an_error(tmp_path):
    out = invoke("table", "--runs-dir", str(tmp_path / "nope"))
    assert out.exit_code == 1 and "does not exist" in out.output


def test_seeds_aggregate_in_the_table(tmp_path, mnist_root):
    runs = tmp_path / "runs"
    args = [
        "--epochs",
        "1",
        "--train-subset",
        "500",
        "--batch-final",
        "50",
        "--runs-dir",
        str(runs),
    ]
    assert invoke("run", "DNN_base", "--seeds", "2", *args).exit_code == 0
    assert invoke("run", "DNN_base", "--seed", "5,7", *args).exit_code == 0
    seeds = sorted(p.name.split("-")[1] for p in (runs / "code" / "DNN_base").iterdir())
    assert seeds == ["0", "1", "5", "7"]
    out = invoke("table", "--runs-dir", str(runs), "--format", "csv").output
    row = next(csv.DictReader(io.StringIO(out)))  # a quoted field may hold commas (predicts)
    assert row["n"] == "4" and float(row["accuracy_std"]) > 0


def test_a_name_given_twice_is_one_run(tmp_path):
    out = invoke("run", "FFA0", "FFA0", "--dry-run", "--runs-dir", str(tmp_path))
    assert out.exit_code == 0 and "(1 runs under" in out.output


def test_an_option_some_named_rows_use_is_accepted(tmp_path):
    out = invoke("run", "--paper", "--raw-input", "--dry-run", "--runs-dir", str(tmp_path))
    assert out.exit_code == 0 and "normalize_input=False" in out.output


def test_dry_run_lists_the_matrix_and_writes_nothing(tmp_path):
    runs = tmp_path / "runs"
    out = invoke("run", "DNN_base", "FFA1", "--seeds", "3", "--dry-run", "--runs-dir", str(runs))
    assert out.exit_code == 0
    assert out.output.count("missing") == 6 and "FFA1" in out.output
    assert not runs.exists()


def test_dry_run_finds_the_rows_run_by_its_settings_alone(tmp_path, monkeypatch):
    """A run at the rate a row had before (its own name, the hash of that rate) is not the row's
    run now: the dry run shows the row's run missing, and that one done once asked for."""
    from ffbench.rows import get
    from ffbench.runner.store import RESULT, run_dir, write_json

    monkeypatch.chdir(tmp_path)  # a short run dir, so the table's columns are not wrapped
    old = dataclasses.replace(get("DNN_base"), lr=3e-4)
    path = run_dir(Path("r"), old, 0)
    path.mkdir(parents=True)
    write_json(path / "config.json", old.config())
    write_json(path / RESULT, {"experiment": "DNN_base", "status": "finished"})
    out = invoke("run", "DNN_base", "--reading", "text", "--dry-run", "--runs-dir", "r")
    assert out.exit_code == 0 and "missing" in out.output and path.name not in out.output
    out = invoke("run", "DNN_base", "--reading", "text", "--lr", "3e-4", "--dry-run",
                 "--runs-dir", "r")  # fmt: skip
    assert out.exit_code == 0 and "finished" in out.output and path.name in out.output


@pytest.mark.parametrize("fmt", ["latex", "json", "markdown", "csv", "rich"])
def test_table_exports_to_a_file(tmp_path, fmt):
    from test_results import fake_run

    runs = tmp_path / "runs"
    fake_run(runs, "DNN_base", 0, "finished", 0.97, 10.0)
    fake_run(runs, "FFA0", 0, "diverged", float("nan"), 5.0)
    target = tmp_path / f"table.{fmt}"
    out = invoke("table", "--runs-dir", str(runs), "--format", fmt, "--output", str(target))
    assert out.exit_code == 0
    text = target.read_text()
    assert "DNN" in text and "97" in text
    if fmt == "latex":
        assert text.startswith("\\begin{tabular}") and "DNN\\_base" in text and "NAN" in text
    if fmt == "json":
        import json

        rows = json.loads(text)
        assert rows[0]["experiment"] == "DNN_base" and rows[1]["accuracy"] is None


def test_a_local_sweep_points_to_run_jobs(tmp_path):
    out = invoke("sweep", "DNN_base", "--executor", "local", "--runs-dir", str(tmp_path / "r"))
    assert out.exit_code == 2 and "`ffbench run --jobs N`" in out.output
    assert not (tmp_path / "r").exists()


def test_jobs_run_rows_in_parallel_processes_like_one_after_another(tmp_path, mnist_root):
    args = ["--epochs", "2", "--train-subset", "2000"]
    args += ["--device", "cpu"]  # processes at once are refused on a GPU
    out = invoke("run", "DNN_base", "adj_FFA1_2", *args, "--jobs", "2", "--runs-dir",
                 str(tmp_path / "par"))  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "DNN_base seed 0: finished" in out.output and "adj_FFA1_2 seed 0: finished" in out.output
    for name in ("DNN_base", "adj_FFA1_2"):
        (par,) = (tmp_path / "par" / "code" / name).glob("seed-0*")
        assert json.loads((par / "env.json").read_text())["threads"] == max(
            1, torch.get_num_threads() // 2
        )
        assert (par / "metrics.csv").read_text().count("\n") == 3  # header + 2 epochs
        assert json.loads((par / "result.json").read_text())["status"] == "finished"
    again = invoke("run", "DNN_base", "adj_FFA1_2", *args, "--jobs", "2", "--runs-dir",
                   str(tmp_path / "par"))  # fmt: skip
    assert again.output.count("already done") == 2


def test_readings_show_each_switch_under_each_reading():
    out = invoke("readings", "--format", "markdown")
    assert out.exit_code == 0
    lines = out.output.splitlines()
    assert lines[0].startswith("| Switch | What | text | code |")
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in lines[2:]}
    assert rows["theta"][2:4] == ["2.0", "0.5"]
    assert rows["batching"][2:4] == ["disjoint", "windows"]
    assert "core/dojo.py" in rows["batching"][5]
    assert rows["denormals"][2:4] == ["flush", "keep"]  # the CPU's flush; the authors' GPU


def test_a_set_setting_lands_in_the_run_and_the_table_groups_by_reading(tmp_path, mnist_root):
    runs = str(tmp_path / "runs")
    args = ["--epochs", "1", "--train-subset", "500", "--runs-dir", runs]
    for reading in ("code", "text"):
        out = invoke("run", "adj_FFA0_1", "--reading", reading, "--set", "theta=1.5", *args)
        assert out.exit_code == 0, out.output
    (path,) = (tmp_path / "runs" / "code" / "adj_FFA0_1").iterdir()
    config = json.loads((path / "config.json").read_text())
    assert config["reading"] == "code" and config["theta"] == 1.5 and config["bias"] is False
    rows = list(csv.DictReader(io.StringIO(invoke("table", "--runs-dir", runs, "--format",
                                                 "csv").output)))  # fmt: skip
    assert sorted(r["reading"] for r in rows) == ["code", "text"]
    only = invoke("table", "--runs-dir", runs, "--format", "csv", "--reading", "text")
    assert len(only.output.splitlines()) == 2


def test_ablate_flips_one_switch_per_run(tmp_path):
    out = invoke("ablate", "DNN_base", "--dry-run", "--runs-dir", str(tmp_path))
    assert out.exit_code == 0
    for flipped in ("pixels=unit", "bias=True", "batching=disjoint", "dnn_output=logits_ce",
                    "denormals=flush"):  # fmt: skip
        assert flipped in out.output
    assert "8 runs" in out.output  # the base run and seven flips


def test_table_paper_keeps_the_notes_rows_only(tmp_path):
    from test_results import fake_run

    fake_run(tmp_path / "code", "DNN_base", 0, "finished", 0.976, 500.0, reading="code")
    fake_run(tmp_path / "text", "FG_weight", 0, "finished", 0.86, 200.0)
    out = invoke("table", "--runs-dir", str(tmp_path), "--paper", "--format", "csv")
    assert out.exit_code == 0, out.output
    assert "DNN_base" in out.output and "FG_weight" not in out.output
    both = invoke("table", "--runs-dir", str(tmp_path), "--format", "csv")
    assert "FG_weight" in both.output
