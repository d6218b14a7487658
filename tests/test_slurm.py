"""`ffbench sweep --executor slurm` on a real SLURM cluster: the one-node test cluster that
`tests/slurm/up.sh` starts (`.ci/run` does), or any cluster whose SLURM_CONF and sacct this
environment has. Without one these tests skip, saying how to start it; with
FFBENCH_REQUIRE_SLURM=1 (CI) they fail instead."""

import csv
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm
STATE = Path(os.environ.get("FFBENCH_SLURM_DIR", "/tmp/ffbench-slurm"))
OUTER_TIMEOUT_S = 600  # a sweep that hangs fails the test instead of the whole suite


@pytest.fixture(scope="module")
def cluster_env(mnist_root):
    """The environment that reaches the test cluster (SLURM_CONF, the sacct stand-in)."""
    env = dict(os.environ)
    if (STATE / "env").exists():
        for line in (STATE / "env").read_text().splitlines():
            key, _, value = line.partition("=")
            env[key] = value
    try:
        up = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True,
                            text=True, timeout=20)  # fmt: skip
        ready = up.returncode == 0 and any(s in up.stdout for s in ("idle", "mix", "alloc"))
    except (OSError, subprocess.TimeoutExpired):
        ready = False
    if not ready:
        why = "no SLURM cluster answers here; `bash tests/slurm/up.sh` (root, Debian) starts one"
        if os.environ.get("FFBENCH_REQUIRE_SLURM") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return env


def ffbench(env, *args, timeout=OUTER_TIMEOUT_S):
    return subprocess.run([sys.executable, "-m", "ffbench", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def job_ids(stdout: str) -> list[str]:
    line = next(line for line in stdout.splitlines() if line.startswith("submitted"))
    return line.split(": ", 1)[1].split(";")[0].split()


def states(env, array_id: str, timeout: float = 60) -> dict[str, str]:
    """JobID -> State, as sacct reports it (the stand-in on the test cluster), once every task
    has left RUNNING and COMPLETING: the sweep returns on the jobs' results, which a task writes
    before SLURM has finished tearing it down."""
    deadline = time.time() + timeout
    while True:
        out = subprocess.run(["sacct", "-o", "JobID,State,NodeList", "--parsable2", "-j",
                              array_id], env=env, capture_output=True, text=True,
                             check=True).stdout  # fmt: skip
        found = {row.split("|")[0]: row.split("|")[1] for row in out.splitlines()[1:]}
        busy = {"PENDING", "RUNNING", "COMPLETING"} & set(found.values())
        if not busy or time.time() > deadline:
            return found
        time.sleep(0.5)


SMALL = ["--epochs", 1, "--train-subset", 500, "--batch-final", 50, "--device", "cpu",
         "--timeout-min", 5, "--cpus-per-task", 1, "--executor", "slurm"]  # fmt: skip


def test_a_sweep_runs_as_one_job_array_and_the_table_counts_its_seeds(tmp_path, cluster_env):
    runs = tmp_path / "runs"
    out = ffbench(cluster_env, "sweep", "DNN_base", "adj_FFA0_1", "--seeds", 2, *SMALL, "--wait",
                  "--runs-dir", runs)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    ids = job_ids(out.stdout)
    assert len(ids) == 4 and len({i.split("_")[0] for i in ids}) == 1  # one array, 4 tasks
    array = ids[0].split("_")[0]
    assert states(cluster_env, array) == {i: "COMPLETED" for i in ids}
    squeue = subprocess.run(["squeue", "--states=all", "-h", "-r", "-j", array, "-o", "%i %T %N"],
                            env=cluster_env, capture_output=True, text=True).stdout  # fmt: skip
    assert sorted(squeue.split("\n")[:-1]) == sorted(
        f"{i} COMPLETED {socket.gethostname().split('.')[0]}" for i in ids
    )
    for i in ids:
        assert f"job {i} finished" in out.stdout
    table = ffbench(cluster_env, "table", "--runs-dir", runs, "--format", "csv")
    rows = {r["experiment"]: r for r in csv.DictReader(io.StringIO(table.stdout))}
    assert set(rows) == {"DNN_base", "adj_FFA0_1"}
    assert all(r["n"] == "2" for r in rows.values())


def test_a_cancelled_job_is_an_error_and_resume_finishes_its_run(tmp_path, cluster_env):
    runs = tmp_path / "runs"
    args = ["sweep", "adj_FFA0_1", "--epochs", 60, "--train-subset", 2000, "--batch-final", 50,
            "--device", "cpu", "--timeout-min", 10, "--executor", "slurm", "--wait",
            "--checkpoint-every", 1, "--runs-dir", runs]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "ffbench", *map(str, args)], env=cluster_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        (job,) = job_ids(proc.stdout.readline())
        deadline = time.time() + 120
        while (
            not (found := list(runs.glob("code/adj_FFA0_1/seed-0-*/metrics.csv")))
            or len(found[0].read_text().splitlines()) <= 3
        ):
            assert time.time() < deadline and proc.poll() is None, "the job never trained"
            time.sleep(0.2)
        (metrics,) = found
        subprocess.run(["scancel", job], env=cluster_env, check=True)
        stdout, stderr = proc.communicate(timeout=120)  # never a hang
    finally:
        proc.kill()
    assert proc.returncode == 1
    message = " ".join(stderr.split())
    assert f"job {job} ended" in message and "--resume finishes it" in message
    assert "was stopped by SLURM (SIGTERM: cancelled or killed)" in message
    assert states(cluster_env, job.split("_")[0])[job] == "CANCELLED"
    path = metrics.parent
    assert not (path / "result.json").exists()
    assert json.loads((path / "lock").read_text())["interrupted"]

    again = ffbench(cluster_env, *args, "--resume")
    assert again.returncode == 0, again.stdout + again.stderr
    result = json.loads((path / "result.json").read_text())
    assert result["status"] == "finished" and result["resumed_from_epoch"] >= 3
    table = ffbench(cluster_env, "table", "--runs-dir", runs, "--format", "csv")
    assert len(table.stdout.splitlines()) == 2 and ",finished," in table.stdout
