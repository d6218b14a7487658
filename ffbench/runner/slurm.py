"""`ffbench sweep`: one SLURM job per (row, seed), submitted with submitit as one job array.

Every job writes its run directory into the shared runs dir exactly as a lone `ffbench run`
would, so `ffbench table` aggregates them the same way. (Runs at once on this machine are
`ffbench run --jobs N`, ffbench/runner/local.py.)
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ffbench.core import data as mnist
from ffbench.core.settings import Experiment
from ffbench.runner import RunOptions
from ffbench.runner.local import job_of, run_job, writable
from ffbench.runner.plan import BadRequest, Matrix, run_labels
from ffbench.runner.store import Outcome

if TYPE_CHECKING:
    import submitit


@dataclass(frozen=True)
class SlurmOptions:
    timeout_min: int = 120
    partition: str | None = None
    gpus_per_node: int = 0
    cpus_per_task: int | None = None


def cluster_job(exp: Experiment, seed: int, overrides: dict, method, options: RunOptions):
    """`run_job` as a submitit job. SLURM warns a job near its time limit with SIGUSR2 (submitit
    asks for it, and for a plain function only logs it) and ends a cancelled or timed-out one
    with SIGTERM: either interrupts the run as Ctrl-C does, so the run directory is marked
    interrupted (`--resume` or a re-run finishes it, on any node), and the job ends with an
    error that the waiting sweep reads at once."""
    stopped_by = []

    def stop(signum, frame):
        stopped_by.append(signum)
        raise KeyboardInterrupt

    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)

    def log(record: dict) -> None:
        print(f"{exp.name} seed {seed} epoch {record['epoch']}/{exp.epochs} "
              f"loss {record['loss']:.4f}", flush=True)  # fmt: skip

    try:
        return run_job(exp, seed, overrides, method, options, log)
    except KeyboardInterrupt:
        why = STOP_SIGNALS.get(stopped_by[0] if stopped_by else signal.SIGINT, "interrupted")
        raise JobInterrupted(f"{exp.name} seed {seed} was stopped by SLURM ({why}); its run "
                             "directory is resumable") from None  # fmt: skip


STOP_SIGNALS = {signal.SIGTERM: "SIGTERM: cancelled or killed",
                signal.SIGUSR2: "SIGUSR2: near its time limit, raise --timeout-min"}  # fmt: skip


class JobInterrupted(RuntimeError):
    """A cluster job that SLURM stopped before its run ended."""


class SweepError(Exception):
    """The jobs could not be submitted; the message says why and what to do."""


def make_executor(folder: Path, slurm: SlurmOptions) -> submitit.Executor:
    import submitit

    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    given = {"slurm_partition": slurm.partition, "cpus_per_task": slurm.cpus_per_task}
    executor.update_parameters(timeout_min=slurm.timeout_min, gpus_per_node=slurm.gpus_per_node,
                               name="ffbench", **{k: v for k, v in given.items() if v})  # fmt: skip
    return executor


def submit(matrix: Matrix, options: RunOptions, slurm: SlurmOptions, log=print) -> list:
    """Submit the whole matrix as one job array; MNIST is fetched here once, not by every job.
    Returns the submitit jobs in the matrix's order. Raises BadRequest, SweepError (sbatch
    refused) or DataError."""
    if options.jobs != 1:
        raise BadRequest("a sweep runs one job per run; drop --jobs", "--jobs")
    runs = Path(options.runs_dir).resolve()
    writable(runs)
    root = Path(options.data_dir or mnist.default_data_dir()).resolve()
    mnist.fetch(root, log=log)
    options = dataclasses.replace(options, runs_dir=runs, data_dir=root)
    ex = make_executor(runs / ".submitit", slurm)
    args = [job_of(exp, seed, options) for exp, seed in matrix]
    try:
        return ex.map_array(cluster_job, *map(list, zip(*args, strict=True)))
    except Exception as e:  # sbatch missing, refused, or no cluster configured
        why = " ".join(str(e).split())[:300]
        raise SweepError(f"submitting the jobs failed: {why}; check that `sbatch` works here "
                         "(`sinfo` answers), or use `ffbench run --jobs N`") from None  # fmt: skip


def wait_for(matrix: Matrix, jobs: list, runs_dir: Path) -> Iterator[tuple[str, Outcome | str]]:
    """(label, outcome) for each job in the matrix's order, as each ends. A job that ended with
    no outcome (cancelled, killed, out of time or memory) comes as a message saying so and how
    to finish its run: it left its run directory interrupted, never half-written."""
    labels = run_labels(matrix)
    for (exp, seed), job in zip(matrix, jobs, strict=True):
        label = labels[exp, seed]
        try:
            yield label, job.result()
        except Exception as e:  # submitit's UncompletedJobError / FailedJobError
            lines = str(e).strip().splitlines() or ["no message"]  # a traceback: ours is last
            why = next((line.split(": ", 1)[-1] for line in reversed(lines)
                        if "JobInterrupted" in line), lines[0])[:200]  # fmt: skip
            state = job.state if hasattr(job, "state") else "FAILED"
            where, log = runs_dir / exp.reading / exp.name, job.paths.stderr
            yield label, (f"{label}: job {job.job_id} ended {state} without a result ({why}); "
                          f"its run under {where} is kept: the same sweep with --resume "
                          f"finishes it (job log: {log})")  # fmt: skip
