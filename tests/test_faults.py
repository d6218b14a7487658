"""The fault table (runs/reference/pages/faults.md), one test (or more) per row, through the CLI
where it can be."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from ffbench.cli import app
from ffbench.runner.store import LOCK, RESULT

runner = CliRunner()
SMALL = ["--train-subset", "2000", "--batch-final", "50"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def result_of(runs, name, seed=0, reading="code"):
    (path,) = (runs / reading / name).glob(f"seed-{seed}-*")
    return json.loads((path / RESULT).read_text()), path


def start_run(runs, *extra):
    """`ffbench run` in its own process, its plain progress lines read as they come."""
    args = [sys.executable, "-m", "ffbench", "run", "adj_FFA0_1", "--epochs", "40", *SMALL,
            "--checkpoint-every", "1", "--runs-dir", str(runs), *extra]  # fmt: skip
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_epoch(proc, epoch):
    for line in proc.stdout:
        if f"epoch {epoch}/" in line:
            return
    raise AssertionError(f"the run ended before epoch {epoch}")


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "FFA2"], "did you mean"),
        (["run", "FFA0", "--train-subset", "1"], "--train-subset"),
        (["run", "FFA0", "--seed", "0", "--seeds", "2"], "not both"),
        (["run", "FFA0", "--seed", "a,b"], "not a seed list"),
        (["sweep", "FFA0", "--timeout-min", "0"], "--timeout-min"),
        (["run", "DNN_bse"], "did you mean DNN_base"),
        (["run", "DNN_base", "--epochs", "0"], "--epochs"),
        (["run", "DNN_base", "--batch-start", "0"], "--batch-start"),
        (["run", "DNN_base", "--batch-start", "100", "--batch-final", "50"], "final batch"),
        (["run", "DNN_base", "--lr", "-1"], "lr must be > 0"),
        (["run"], "--paper"),
        (["run", "DNN_base", "--raw-input"], "no experiment named reads --normalize-input/--raw"),
        (["run", "DNN_base", "--literal-loss"], "no experiment named reads --stable-loss"),
        (["run", "FF_best", "--set", "optimizer=adam"], "momentum=0.9 is read by sgd only"),
        (
            ["run", "FFA0", "--set", "loss=cross_entropy"],
            "trains no cross_entropy loss; --set loss=L0",
        ),
        (["run", "DNN_base", "--set", "goodness=mean"], "reads goodness (only ff rows do)"),
        (["run", "FFA0", "--set", "method=backprop", "--theta", "3"], "named reads --theta"),
        (["run", "FG_local", "--theta", "3"], "no experiment named reads --theta"),
        (["run", "DNN_base", "--reading", "cod"], "unknown reading 'cod': did you mean code?"),
        (["run", "DNN_base", "--set", "thetaa=1"], "did you mean theta?"),
        (["run", "DNN_base", "--set", "negatives=foo"], "takes other_image, wrong_label"),
        (["run", "DNN_base", "--set", "epochs=0"], "epochs must be >= 1"),
        (["sweep", "DNN_base", "--set", "bias"], "give KEY=VALUE"),
        (["ablate", "FF_best"], "FF_best is not a row of the notes' table"),
        (["ablate", "FFA0", "--reading", "text"], "FFA0 reads no switch that differs"),
        (["ablate", "adj_FFA0_1", "--toward", "txt"], "unknown reading 'txt'"),
        (["table", "--side-by-side", "--study", "depth"], "give one of --side-by-side, --study"),
        (["table", "--ablation", "FFA0", "--format", "csv"], "--ablation prints rich, markdown"),
        (["study", "dept"], "unknown study 'dept'"),
        (["run", "DNN_base", "--validation", "60000"], "hold out fewer"),
    ],
)
def test_bad_input_is_one_error_line_exit_2_and_nothing_written(tmp_path, args, message):
    """Unknown names, options out of range, bad combinations, readings and --set values."""
    runs = tmp_path / "runs"
    out = invoke(*args, "--runs-dir", runs)
    assert out.exit_code == 2, out.output
    assert message in out.output
    assert len([line for line in out.output.splitlines() if line.startswith("Error")]) == 1
    assert not runs.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu(tmp_path):
    out = invoke("run", "FFA0", "--device", "cuda", "--runs-dir", tmp_path / "runs")
    assert out.exit_code == 2 and "no CUDA GPU" in out.output
    assert not (tmp_path / "runs").exists()


def test_sigterm_leaves_an_interrupted_run_that_resume_finishes_exactly(tmp_path, mnist_root):
    runs = tmp_path / "runs"
    proc = start_run(runs)
    wait_for_epoch(proc, 3)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    (path,) = (runs / "code" / "adj_FFA0_1").iterdir()
    assert not (path / RESULT).exists()
    assert json.loads((path / LOCK).read_text())["interrupted"]
    dry = invoke("run", "adj_FFA0_1", "--epochs", 40, *SMALL, "--runs-dir", runs, "--dry-run")
    assert "interrupted after epoch" in dry.output and "resumable" in dry.output

    resumed = invoke("run", "adj_FFA0_1", "--epochs", 40, *SMALL, "--runs-dir", runs, "--resume")
    assert resumed.exit_code == 0, resumed.output
    fresh = invoke("run", "adj_FFA0_1", "--epochs", 40, *SMALL, "--runs-dir", tmp_path / "fresh")
    assert fresh.exit_code == 0
    a, a_path = result_of(runs, "adj_FFA0_1")
    b, b_path = result_of(tmp_path / "fresh", "adj_FFA0_1")
    assert a["resumed_from_epoch"] >= 3 and b["resumed_from_epoch"] is None
    assert a["test_accuracy"] == b["test_accuracy"]
    # The accuracy is exact; the losses agree to float32 precision. Since an epoch's loss is
    # summed in float64, two of forty epochs here have read apart by ~2e-9 between the resumed
    # run (its first epochs in another process) and the fresh one: below a batch loss's float32
    # step, and not yet traced.
    losses = [pd.read_csv(p / "metrics.csv").loss for p in (a_path, b_path)]
    assert losses[0].to_numpy() == pytest.approx(losses[1].to_numpy(), rel=1e-7, abs=0)
    assert not (a_path / "checkpoint.pt").exists()


def test_a_rerun_without_resume_starts_an_interrupted_run_again(tmp_path, mnist_root):
    runs = tmp_path / "runs"
    proc = start_run(runs)  # 40 epochs: still running when the signal comes, even on a busy CPU
    wait_for_epoch(proc, 2)
    # SIGTERM, which ffbench turns into Ctrl-C's KeyboardInterrupt: a SIGINT is ignored where
    # the tests run as a shell's background job (`cmd &` starts with SIGINT ignored)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 130
    (path,) = (runs / "code" / "adj_FFA0_1").iterdir()
    assert not (path / RESULT).exists()
    out = invoke("run", "adj_FFA0_1", "--epochs", 40, *SMALL, "--runs-dir", runs)
    assert out.exit_code == 0
    result, _ = result_of(runs, "adj_FFA0_1")
    assert result["status"] == "finished" and result["resumed_from_epoch"] is None


def test_two_processes_on_the_same_run(tmp_path, mnist_root):
    runs = tmp_path / "runs"
    proc = start_run(runs, "--epochs", "5000")  # long enough to still be running when asked
    try:
        wait_for_epoch(proc, 1)
        out = invoke("run", "adj_FFA0_1", "--epochs", 5000, *SMALL, "--runs-dir", runs)
        assert out.exit_code == 1 and "is taken by pid" in out.output
        assert str(proc.pid) in out.output
    finally:
        proc.terminate()
        proc.communicate(timeout=120)
    (path,) = (runs / "code" / "adj_FFA0_1").iterdir()
    assert (path / "metrics.csv").exists()  # the owner's directory was not clobbered


def test_malformed_result_json_is_warned_about_and_skipped(tmp_path, mnist_root):
    runs = tmp_path / "runs"
    assert (
        invoke("run", "DNN_base", "FFA0", "--epochs", 1, *SMALL, "--runs-dir", runs).exit_code == 0
    )
    _, path = result_of(runs, "FFA0")
    (path / RESULT).write_text('{"experiment": "FFA0", "status": "fini')
    out = invoke("table", "--runs-dir", runs, "--format", "csv")
    assert out.exit_code == 0
    lines = out.output.splitlines()
    assert lines[0].startswith("warning: skipping") and f"{path}/result.json" in lines[0]
    header = lines.index(next(line for line in lines if line.startswith("experiment,")))
    assert [line.split(",")[0] for line in lines[header + 1 :]] == ["DNN_base"]


def test_nan_during_training_is_a_diverged_row(tmp_path, mnist_root):
    runs = tmp_path / "runs"
    out = invoke("run", "FFA0", "--reading", "text", "--epochs", 3, *SMALL, "--lr", 50,
                 "--runs-dir", runs)  # fmt: skip
    assert out.exit_code == 0 and "diverged, test accuracy NAN" in out.output
    result, path = result_of(runs, "FFA0", reading="text")
    assert result["status"] == "diverged" and result["diverged_epoch"] == 1
    assert len((path / "metrics.csv").read_text().splitlines()) == 2
    md = invoke("table", "--runs-dir", runs, "--format", "markdown").output
    row = next(line for line in md.splitlines() if line.startswith("| FFA0"))
    assert "| NAN | NAN |" in row and "diverged" in row


def test_the_same_seed_twice_gives_the_same_run(tmp_path, mnist_root):
    for d in ("a", "b"):
        args = ["run", "adj_FFA1_2", "--epochs", 3, *SMALL, "--eval-every", 1]
        assert invoke(*args, "--runs-dir", tmp_path / d).exit_code == 0
    (a,) = (tmp_path / "a" / "code" / "adj_FFA1_2").iterdir()
    (b,) = (tmp_path / "b" / "code" / "adj_FFA1_2").iterdir()

    def curve(path):
        return pd.read_csv(path / "metrics.csv").drop(columns="seconds")

    pd.testing.assert_frame_equal(curve(a), curve(b))  # every column but the wall time
    assert {"loss", "margin_max", "test_accuracy"} <= set(curve(a).columns)


def test_read_only_runs_dir_fails_before_training(tmp_path):
    if os.geteuid() == 0:  # root writes through permission bits: use a path under a file
        (tmp_path / "file").write_text("")
        runs = tmp_path / "file" / "runs"
    else:
        runs = tmp_path / "ro"
        runs.mkdir()
        runs.chmod(0o500)
    start = time.perf_counter()
    out = invoke("run", "DNN_base", "--runs-dir", runs)
    assert out.exit_code == 2 and "not writable" in out.output
    assert time.perf_counter() - start < 5  # no data was loaded, nothing trained
