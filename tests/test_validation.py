"""`--validation N`: N training images held out, seeded by the run's seed (ffbench/data.py)."""

import json

import pytest
import torch
from typer.testing import CliRunner

from ffbench.cli import app
from ffbench.core import data

runner = CliRunner()


def test_the_held_out_images_are_training_images_disjoint_from_the_rest(mnist_small):
    split = data.hold_out(mnist_small, 300, seed=0)
    assert len(split.x_val) == 300 and len(split.x_train) == 2000 - 300
    held = data.validation_indices(2000, 300, seed=0)
    assert torch.equal(split.x_val, mnist_small.x_train[held])
    assert torch.equal(split.y_val, mnist_small.y_train[held])
    rest = sorted(set(range(2000)) - set(held.tolist()))
    assert torch.equal(split.x_train, mnist_small.x_train[rest])  # the others, in their order
    assert split.x_test is mnist_small.x_test and split.y_test is mnist_small.y_test  # untouched
    as_rows = {tuple(x.tolist()) for x in split.x_train}
    assert not any(tuple(x.tolist()) in as_rows for x in split.x_val[:50] if x.any())


def test_the_same_seed_holds_out_the_same_images_another_seed_others():
    a, b = data.validation_indices(60000, 5000, 0), data.validation_indices(60000, 5000, 0)
    c = data.validation_indices(60000, 5000, 1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len(set(a.tolist())) == 5000 and int(a.max()) < 60000
    assert data.digest(a) == data.digest(b) != data.digest(c)


@pytest.mark.parametrize("n", [0, 2000, 2001])
def test_a_split_that_leaves_nothing_is_refused(n):
    with pytest.raises(ValueError, match="must hold out between 1 and 1999"):
        data.validation_indices(2000, n, 0)


def test_a_run_reports_validation_beside_test_and_records_the_split(tmp_path, mnist_root):
    runs = tmp_path / "runs"
    args = ["run", "DNN_base", "--validation", "500", "--train-subset", "2000", "--epochs", "2",
            "--batch-final", "50", "--eval-every", "1", "--runs-dir", str(runs)]  # fmt: skip
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    (path,) = (runs / "code" / "DNN_base").iterdir()
    result = json.loads((path / "result.json").read_text())
    config = json.loads((path / "config.json").read_text())
    assert 0 < result["validation_accuracy"] < 1 and 0 < result["test_accuracy"] < 1
    assert config["validation"] == 500
    split = config["validation_split"]
    assert split["held_out"] == 500 and split["of"] == 2000 and split["seed"] == 0
    assert split["indices_sha1"] == data.digest(data.validation_indices(2000, 500, 0))
    metrics = (path / "metrics.csv").read_text().splitlines()
    assert "validation_accuracy" in metrics[0] and len(metrics) == 3
    table = runner.invoke(app, ["table", "--runs-dir", str(runs), "--format", "markdown"])
    assert "Val %" in table.output
    assert f"{100 * result['validation_accuracy']:.2f}" in table.output


def test_holding_out_every_training_image_is_an_error_before_anything_runs(tmp_path):
    out = runner.invoke(app, ["run", "DNN_base", "--validation", "2000", "--train-subset", "2000",
                              "--runs-dir", str(tmp_path / "runs")])  # fmt: skip
    assert out.exit_code == 2 and "--validation" in out.output and "hold out fewer" in out.output
    assert not (tmp_path / "runs").exists()
