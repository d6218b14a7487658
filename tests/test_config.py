"""Rows from a TOML file (`ffbench run --config`, ffbench/config.py)."""

import json

import pytest
from typer.testing import CliRunner

from ffbench.cli import app
from ffbench.rows.files import ConfigError, load_rows

runner = CliRunner()
TINY = ["--epochs", "1", "--train-subset", "500", "--batch-final", "50"]
ROWS = """\
# two new rows
[ffa0_theta1]
base = "adj_FFA0_1"
theta = 1.0
negatives = "other_image"

[wide_dnn]
base = "DNN_base"
reading = "text"
description = "a wider hidden layer"
sizes = [784, 64, 10]
"""


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_two_rows_from_a_file_run_and_the_table_shows_them(tmp_path, mnist_root):
    rows = tmp_path / "my_rows.toml"
    rows.write_text(ROWS)
    runs = tmp_path / "runs"
    out = invoke("run", "--config", rows, *TINY, "--runs-dir", runs)
    assert out.exit_code == 0, out.output
    (a,) = (runs / "code" / "ffa0_theta1").iterdir()
    (b,) = (runs / "text" / "wide_dnn").iterdir()
    config = json.loads((a / "config.json").read_text())
    assert config["source"] == str(rows) and config["base"] == "adj_FFA0_1"
    assert config["theta"] == 1.0 and config["negatives"] == "other_image"
    assert config["goodness"] == "mean"  # the base row under the code reading
    assert json.loads((b / "config.json").read_text())["sizes"] == [784, 64, 10]
    table = invoke("table", "--runs-dir", runs, "--format", "csv")
    lines = table.output.splitlines()
    assert len(lines) == 3
    assert any(line.startswith("ffa0_theta1,code,") and "theta=1.0" in line for line in lines)
    assert any(line.startswith("wide_dnn,text,") and "sizes=" in line for line in lines)


def test_naming_a_row_of_the_file_runs_only_that_row(tmp_path):
    rows = tmp_path / "rows.toml"
    rows.write_text(ROWS)
    out = invoke("run", "wide_dnn", "--config", rows, "--dry-run", "--runs-dir", tmp_path)
    assert out.exit_code == 0, out.output
    assert "wide_dnn" in out.output and "ffa0_theta1" not in out.output


def test_a_file_row_takes_the_commands_reading_unless_it_names_one(tmp_path):
    rows = tmp_path / "rows.toml"
    rows.write_text(ROWS)
    a, b = load_rows(rows, reading="text")
    assert a.reading == "text" and a.goodness.value == "sum" and a.theta == 1.0
    assert b.reading == "text" and b.description == "a wider hidden layer"


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "[r]\nbase = 'FFA0'\ntheta = 'high'",
            "[r]: theta=high is not valid; theta takes a number",
        ),
        ("[r]\nbase = 'FFA0'\nthetaa = 1.0", "did you mean theta?"),
        ("[r]\nbase = 'FFA0'\nepochs = 0", "epochs must be >= 1"),
        ("[r]\nbase = 'FFA0'\nnegatives = 'x'", "takes other_image, wrong_label"),
        ("[r]\ntheta = 1.0", 'base = "ROW" is missing'),
        ("[r]\nbase = 'FFA9'", "unknown experiment 'FFA9'"),
        ("[r]\nbase = 'FFA0'\nreading = 'txt'", "unknown reading 'txt'"),
        ("[FFA0]\nbase = 'FFA0'", "FFA0 is a registered row"),
        ("['a/b']\nbase = 'FFA0'", "a row's name is a directory name"),
        ("r = 1", "is not a row"),
        ("[r\nbase = 'FFA0'", "is not valid TOML"),
        ("", "defines no rows"),
    ],
)
def test_a_bad_file_is_one_error_line_exit_2_and_nothing_written(tmp_path, text, message):
    rows = tmp_path / "rows.toml"
    rows.write_text(text)
    with pytest.raises(ConfigError):
        load_rows(rows)
    runs = tmp_path / "runs"
    out = invoke("run", "--config", rows, "--runs-dir", runs)
    assert out.exit_code == 2 and message in " ".join(out.output.split()), out.output
    assert not runs.exists()


def test_a_missing_file_is_an_error_naming_it(tmp_path):
    out = invoke("run", "--config", tmp_path / "nope.toml", "--runs-dir", tmp_path / "runs")
    assert out.exit_code == 2 and "cannot read config file" in out.output
