"""Many runs at once: `ffbench sweep` (submitit) and `ffbench run --jobs N` (a process pool).

On a cluster the jobs go out as one SLURM job array; `--executor local` runs them as local
processes (what the tests use). `run --jobs N` keeps N runs going on this machine, each with
1/N of its threads, and streams their epochs back for one progress display. Every job writes
its run directory into the shared runs dir, exactly as a lone `ffbench run` would, so
`ffbench table` aggregates them the same way.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ffbench import data as mnist
from ffbench.bench import dnn_flops_per_sample, ff_flops_per_sample
from ffbench.data import FULL_TRAIN
from ffbench.experiment import REGISTRY, Experiment, Method
from ffbench.runner import Outcome, execute, record_failure, run_labels
from ffbench.schedules import batch_slices, schedule

if TYPE_CHECKING:
    import submitit


class ExecutorKind(str, Enum):
    local = "local"
    slurm = "slurm"


def run_job(exp: Experiment, seed: int, options: dict, events=None) -> Outcome:
    """One (experiment, seed) run inside a job; returns its outcome (path, result.json). `options`:
    runs_dir, data_dir, device, eval_every, force, resume, checkpoint_every, and rows (a
    notebook's rows, registered here first). With `events` (a queue) every epoch's record goes
    there as (experiment, seed, record), else to stdout."""
    for row in options.get("rows", ()):
        REGISTRY.setdefault(row.name, row)
    device = options["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    try:
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("this job sees no CUDA GPU; give the jobs GPUs or use --device cpu")
        data = mnist.load(options["data_dir"], dev, exp.train_subset)
    except Exception as e:  # the job could not start: say so in its run directory
        return record_failure(options["runs_dir"], exp, seed, dev, e)

    def log(record: dict) -> None:
        if events is not None:
            events.put((exp, seed, record))
            return
        epoch = f"epoch {record['epoch']}/{exp.epochs}"
        print(f"{exp.name} seed {seed} {epoch} loss {record['loss']:.4f}", flush=True)

    out = execute(
        exp, seed, data, dev, options["runs_dir"], options["eval_every"], options["force"], log,
        resume=options["resume"], checkpoint_every=options["checkpoint_every"],
    )  # fmt: skip
    return out


def cluster_job(exp: Experiment, seed: int, options: dict) -> Outcome:
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
    try:
        return run_job(exp, seed, options)
    except KeyboardInterrupt:
        why = STOP_SIGNALS.get(stopped_by[0] if stopped_by else signal.SIGINT, "interrupted")
        raise JobInterrupted(f"{exp.name} seed {seed} was stopped by SLURM ({why}); its run "
                             "directory is resumable") from None  # fmt: skip


STOP_SIGNALS = {signal.SIGTERM: "SIGTERM: cancelled or killed",
                signal.SIGUSR2: "SIGUSR2: near its time limit, raise --timeout-min"}  # fmt: skip


class JobInterrupted(RuntimeError):
    """A cluster job that SLURM stopped before its run ended."""


def make_executor(
    kind: ExecutorKind,
    folder: Path,
    timeout_min: int,
    partition: str | None = None,
    gpus_per_node: int = 0,
    cpus_per_task: int | None = None,
) -> submitit.Executor:
    import submitit

    if kind == ExecutorKind.local:  # submitit hides every GPU from a local job given none
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=timeout_min, gpus_per_node=gpus_per_node)
        return executor
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params = {"timeout_min": timeout_min, "gpus_per_node": gpus_per_node, "name": "ffbench"}
    if partition:
        params["slurm_partition"] = partition
    if cpus_per_task:
        params["cpus_per_task"] = cpus_per_task
    executor.update_parameters(**params)
    return executor


def local_gpus(device: str) -> int:
    """GPUs to show a local job: all of this machine's unless it is to run on the CPU."""
    return 0 if device == "cpu" else torch.cuda.device_count()


class SweepError(Exception):
    """The jobs could not be submitted; the message says why and what to do."""


def submit(
    executor: submitit.Executor, matrix: list[tuple[Experiment, int]], options: dict
) -> list[submitit.Job]:
    """Submit the whole matrix at once (a job array on SLURM)."""
    exps, seeds = [exp for exp, _ in matrix], [seed for _, seed in matrix]
    try:
        return executor.map_array(cluster_job, exps, seeds, [options] * len(matrix))
    except Exception as e:  # sbatch missing, refused, or no cluster configured
        why = " ".join(str(e).split())[:300]
        raise SweepError(f"submitting the jobs failed: {why}; check that `sbatch` works here "
                         "(`sinfo` answers), or use --executor local") from None  # fmt: skip


def wait_for(
    matrix: list[tuple[Experiment, int]], jobs: list[submitit.Job], runs_dir: Path
) -> Iterator[tuple[str, Outcome | str]]:
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
            message = (
                f"{label}: job {job.job_id} ended {state} without a result ({why}); its run "
                f"under {runs_dir / exp.reading / exp.name} is kept: the same sweep with "
                f"--resume finishes it (job log: {job.paths.stderr})"
            )
            yield label, message


_events = _stop = None  # in a pool worker: the queue its epochs go to, the event that ends it


def _start_worker(threads: int, events, stop) -> None:
    global _events, _stop
    _events, _stop = events, stop
    torch.set_num_threads(threads)
    signal.signal(signal.SIGTERM, _interrupt)  # ends the run as Ctrl-C does: resumable
    signal.signal(signal.SIGINT, _interrupt)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


# The dispatch of one training step (zero_grad, a few dozen small kernels, autograd, the
# optimizer) on this 2-core CPU: a batch-50 FF step takes ~2.5 ms of which ~1.1 ms is matrix
# products (README, "How long make reproduce takes here"), so ~1.4 ms at ~2e11 FLOP/s.
STEP_OVERHEAD_FLOP = 3e8


def expected_cost(exp: Experiment) -> float:
    """A run's work in FLOP-equivalents: the essential matrix FLOPs of every epoch's samples
    (ffbench/bench.py's counts) plus a fixed dispatch cost per optimizer step. Only its order
    matters: it ranks runs, longest first."""
    n = exp.train_subset or FULL_TRAIN
    ff = exp.method in (Method.ff, Method.ff_best)
    per_sample = (ff_flops_per_sample if ff else dnn_flops_per_sample)(exp.sizes)
    plan = schedule(exp.batch_start, exp.batch_final, exp.epochs, exp.lr, exp.batch_growth,
                    exp.lr_scaling, n_train=n)  # fmt: skip
    steps = sum(len(batch_slices(n, batch, exp.batching)) for batch, _ in plan)
    return exp.epochs * n * per_sample + steps * STEP_OVERHEAD_FLOP


def longest_first(matrix: list[tuple[Experiment, int]]) -> list[tuple[Experiment, int]]:
    """The order to start runs in when N run at once: longest first, so that the runs left at
    the end, while other workers have nothing more to take, are the short ones (the longest-
    processing-time rule). In the notes' table order the two slowest rows came last."""
    return sorted(matrix, key=lambda run: expected_cost(run[0]), reverse=True)


def _pool_job(exp: Experiment, seed: int, options: dict) -> Outcome:
    if _stop.is_set():  # queued before the pool was interrupted: never start it
        raise KeyboardInterrupt
    return run_job(exp, seed, options, _events)


def run_pool(
    matrix: list[tuple[Experiment, int]],
    options: dict,
    jobs: int,
    on_epoch: Callable[[str, int, dict], None],
    on_done: Callable[[Experiment, int, Future], None],
) -> None:
    """Run the matrix `jobs` at a time, longest first, in fresh processes, splitting this
    process's threads among them (two one-thread runs get more from two cores than one
    two-thread run: the small batches early in a schedule keep one thread busy with dispatch,
    not arithmetic). Calls `on_epoch(exp, seed, record)` for every epoch and `on_done` as each
    run ends. Ctrl-C or SIGTERM interrupts every running job (each leaves a resumable run) and
    re-raises."""
    jobs = min(jobs, len(matrix))
    threads = max(1, torch.get_num_threads() // jobs)
    ctx = multiprocessing.get_context("spawn")  # fork after torch's threads start is unsafe
    events, stop = ctx.Queue(), ctx.Event()
    pool = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_start_worker,
                               initargs=(threads, events, stop))  # fmt: skip
    try:
        pending = {
            pool.submit(_pool_job, exp, seed, options): (exp, seed)
            for exp, seed in longest_first(matrix)
        }
        while pending:
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(events, on_epoch)
            for future in done:
                on_done(*pending.pop(future), future)
    except KeyboardInterrupt:
        stop.set()
        for proc in list(pool._processes.values()):  # no public handle on the workers
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    _drain(events, on_epoch)


def _drain(events, on_epoch) -> None:
    while True:
        try:
            on_epoch(*events.get_nowait())
        except queue.Empty:
            return
