"""The order `run --jobs N` starts runs in (longest first), and jobs in fresh processes."""

import dataclasses
import json
import os
import signal
import threading
import time

import pytest
import torch

from ffbench import methods
from ffbench.rows import PAPER_ROWS, get, under
from ffbench.runner import RunOptions
from ffbench.runner.local import expected_cost, longest_first, run_job
from ffbench.runner.slurm import STOP_SIGNALS, JobInterrupted, cluster_job


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


def test_a_job_that_cannot_start_leaves_a_failed_result(tmp_path, monkeypatch):
    """A job asked for CUDA where it sees none fails before `execute`: its run directory
    still gets a result.json that says why."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    options = RunOptions(tmp_path, tmp_path / "data", "cuda")
    out = run_job(get("DNN_base"), 0, {}, methods.get("backprop"), options, print)
    assert out.path.parent == tmp_path / "text" / "DNN_base"
    assert out.path.name.startswith("seed-0-cuda-")
    result = json.loads((out.path / "result.json").read_text())
    assert result["status"] == "failed" and "sees no CUDA GPU" in result["error"]


def test_a_cluster_job_warned_of_its_time_limit_leaves_a_resumable_run(tmp_path, mnist_root):
    """SLURM's SIGUSR2 (submitit's warning before the time limit) or SIGTERM (scancel) inside a
    job: the run stops as Ctrl-C stops it, its directory marked interrupted, and the job fails
    with an error naming the signal, not with a `failed` result.json that hides the run."""
    exp = dataclasses.replace(under(get("adj_FFA0_1"), "code"), epochs=400, train_subset=2000,
                              batch_final=50)  # fmt: skip
    options = RunOptions(tmp_path, mnist_root, "cpu", checkpoint_every=1)

    def warn_when_training():
        deadline = time.time() + 120
        while not list(tmp_path.glob("code/adj_FFA0_1/*/metrics.csv")):
            if time.time() > deadline:
                return
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGUSR2)

    handlers = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    threading.Thread(target=warn_when_training, daemon=True).start()
    try:
        with pytest.raises(JobInterrupted, match="near its time limit"):
            cluster_job(exp, 0, {}, methods.get(exp.method), options)
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
    (path,) = (tmp_path / "code" / "adj_FFA0_1").iterdir()
    assert not (path / "result.json").exists() and (path / "checkpoint.pt").exists()
    assert json.loads((path / "lock").read_text())["interrupted"]
