"""Running a planned matrix on this machine: one after another in this process, or `jobs` at a
time in worker processes, each with 1/N of the threads, the longest runs first; one progress
display and one line per run that ends."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import queue
import signal
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

import torch

from ffbench import methods, rows
from ffbench.core import data as mnist
from ffbench.core.data import FULL_TRAIN
from ffbench.core.schedules import batch_slices, schedule
from ffbench.core.settings import Experiment
from ffbench.runner import RunOptions
from ffbench.runner.loop import denormals_note
from ffbench.runner.plan import BadRequest, Matrix, run_labels
from ffbench.runner.progress import EpochProgress, Screen
from ffbench.runner.store import (
    Outcome,
    ResumeRefused,
    RunTaken,
    check_writable,
    execute,
    failed_result,
    record_failure,
    run_dir,
)


class LaunchError(Exception):
    """A run could not go on; the message names the fix. `code` is the exit code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def device_of(device: str) -> torch.device:
    """`auto` is the GPU where there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_device(device: str) -> torch.device:
    if device not in ("auto", "cpu", "cuda"):
        raise BadRequest(f"device {device!r} is not auto, cpu or cuda", "--device")
    if device == "cuda" and not torch.cuda.is_available():
        raise BadRequest("no CUDA GPU is available here; use --device cpu or auto", "--device")
    return device_of(device)


def writable(runs_dir) -> None:
    try:
        check_writable(runs_dir)
    except OSError as e:
        raise BadRequest(str(e), "--runs-dir") from None


def run_matrix(matrix: Matrix, options: RunOptions, screen: Screen) -> list[Outcome]:
    """Run a planned matrix into `options.runs_dir`: here one after another, or `options.jobs`
    at a time in worker processes (CPU only). Returns each run's outcome, in the matrix's order.
    Raises BadRequest before anything is written, LaunchError when a run cannot go on."""
    dev = resolve_device(options.device)
    if options.jobs > 1 and dev.type == "cuda":
        raise BadRequest("runs at once would share one GPU; use --jobs 1, or `ffbench sweep` on "
                         "a cluster", "--jobs")  # fmt: skip
    if note := next(filter(None, (denormals_note(exp, dev) for exp, _ in matrix)), None):
        screen.err.print(note, highlight=False)
    writable(options.runs_dir)
    data_dir = Path(options.data_dir or mnist.default_data_dir()).resolve()
    options = dataclasses.replace(options, data_dir=data_dir, device=dev.type)
    if options.jobs > 1 and len(matrix) > 1:
        return run_parallel(screen, matrix, options)
    return run_serial(screen, matrix, options)


def run_serial(ui: Screen, matrix: Matrix, options: RunOptions) -> list[Outcome]:
    """The runs one after another in this process; their outcomes in the matrix's order."""
    dev = torch.device(options.device)
    loaded = {}  # train_subset -> MNIST on `dev`, read once
    labels = run_labels(matrix)
    outcomes = []
    for exp, s in matrix:
        label = labels[exp, s]
        try:
            if exp.train_subset not in loaded:
                loaded[exp.train_subset] = mnist.load(options.data_dir, dev, exp.train_subset,
                                                      log=ui.err.print)  # fmt: skip
        except mnist.DataError as e:
            raise LaunchError(str(e)) from None
        try:
            with EpochProgress(ui.out, {label: epochs_in_all(exp)}) as progress:
                out = execute(exp, s, loaded[exp.train_subset], dev, options, rows.overrides(exp),
                              on_epoch=progress.for_run(label))  # fmt: skip
        except (RunTaken, ResumeRefused) as e:
            raise LaunchError(str(e)) from None
        except KeyboardInterrupt:
            raise LaunchError(f"{label} interrupted; `ffbench run ... --resume` continues it",
                              code=130) from None  # fmt: skip
        ui.report(label, out)
        outcomes.append(out)
    return outcomes


def epochs_in_all(exp: Experiment) -> int:
    return methods.get(exp.method).epochs_in_all(exp)


def run_parallel(ui: Screen, matrix: Matrix, options: RunOptions) -> list[Outcome]:
    """The runs `options.jobs` at a time in worker processes; their outcomes in the matrix's
    order. A run another process holds, or whose worker died, is reported, comes back failed,
    and the others go on."""
    try:
        mnist.fetch(options.data_dir, log=ui.err.print)  # once here, not racing in every worker
    except mnist.DataError as e:
        raise LaunchError(str(e)) from None
    options = dataclasses.replace(options, runs_dir=Path(options.runs_dir).resolve())
    labels = run_labels(matrix)
    dev = torch.device(options.device)
    outcomes: dict[tuple[Experiment, int], Outcome] = {}
    with EpochProgress(ui.out, {labels[e, s]: epochs_in_all(e) for e, s in matrix}) as progress:

        def on_done(exp: Experiment, seed: int, future: Future) -> None:
            label = labels[exp, seed]
            try:
                out = future.result()
            except (RunTaken, ResumeRefused) as e:
                out = _failed(exp, seed, dev, options, str(e))
                ui.err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            except Exception as e:  # the worker itself died (killed, out of memory)
                out = _failed(exp, seed, dev, options, f"its worker failed: {e!r}")
                ui.err.print(f"[bold red]error:[/] {label}: its worker failed: {e!r}; `ffbench "
                             "run ... --resume` continues it", highlight=False)  # fmt: skip
            else:
                ui.report(label, out)
            outcomes[exp, seed] = out

        try:
            run_pool(matrix, options, lambda e, s, r: progress(labels[e, s], r), on_done)
        except KeyboardInterrupt:
            raise LaunchError("interrupted; `ffbench run ... --resume` continues the unfinished "
                              "runs", code=130) from None  # fmt: skip
    return [outcomes[run] for run in matrix]


def _failed(exp: Experiment, seed: int, dev, options: RunOptions, error: str) -> Outcome:
    """The outcome of a run that never reached its run directory's result.json."""
    path = run_dir(options.runs_dir, exp, seed, dev.type)
    return Outcome(path, failed_result(exp, seed, dev, error))


def run_job(exp: Experiment, seed: int, overrides: dict, method, options: RunOptions,
            log: Callable[[dict], None]) -> Outcome:  # fmt: skip
    """One (experiment, seed) run in a fresh process (a pool worker, a SLURM job): its
    method class travels with it (a method registered by a notebook or a test is not registered
    there). A run that cannot start (no GPU in the job, no data) leaves a failed result."""
    dev = device_of(options.device)
    try:
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("this job sees no CUDA GPU; give the jobs GPUs or use --device cpu")
        data = mnist.load(options.data_dir, dev, exp.train_subset)
    except Exception as e:  # the job could not start: say so in its run directory
        return record_failure(options.runs_dir, exp, seed, dev, e, overrides)
    return execute(exp, seed, data, dev, options, overrides, log, method)


_events = _stop = None  # in a pool worker: the queue its epochs go to, the event that ends it


def _start_worker(threads: int, events, stop) -> None:
    global _events, _stop
    _events, _stop = events, stop
    torch.set_num_threads(threads)
    signal.signal(signal.SIGTERM, _interrupt)  # ends the run as Ctrl-C does: resumable
    signal.signal(signal.SIGINT, _interrupt)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def job_of(exp: Experiment, seed: int, options: RunOptions) -> tuple:
    """What a run in a fresh process needs, computed here where the registries are: its row,
    seed, overrides, method class and options (`run_job`'s arguments but the log)."""
    return exp, seed, rows.overrides(exp), methods.get(exp.method), options


def _pool_job(exp: Experiment, seed: int, overrides: dict, method, options: RunOptions):
    if _stop.is_set():  # queued before the pool was interrupted: never start it
        raise KeyboardInterrupt
    return run_job(exp, seed, overrides, method, options, lambda r: _events.put((exp, seed, r)))


# The dispatch of one training step (zero_grad, a few dozen small kernels, autograd, the
# optimizer) on a CPU, in FLOP-equivalents: about as long as a batch-50 FF step's matrix
# products (`ffbench bench` measures both).
STEP_OVERHEAD_FLOP = 3e8


def expected_cost(exp: Experiment) -> float:
    """A run's work in FLOP-equivalents: its method's essential matrix FLOPs for every epoch's
    samples plus a fixed dispatch cost per optimizer step. Only its order matters: it ranks
    runs, longest first."""
    n = exp.train_subset or FULL_TRAIN
    plan = schedule(exp.batch_start, exp.batch_final, exp.epochs, exp.lr, exp.batch_growth,
                    exp.lr_scaling, n_train=n)  # fmt: skip
    steps = sum(len(batch_slices(n, batch, exp.batching)) for batch, _ in plan)
    flops = methods.get(exp.method).flops_per_sample(exp)
    return epochs_in_all(exp) * n * flops + steps * STEP_OVERHEAD_FLOP


def longest_first(matrix: Matrix) -> Matrix:
    """The order to start runs in when N run at once: longest first, so that the runs left at
    the end, while other workers have nothing more to take, are the short ones (the longest-
    processing-time rule)."""
    return sorted(matrix, key=lambda run: expected_cost(run[0]), reverse=True)


def run_pool(
    matrix: Matrix,
    options: RunOptions,
    on_epoch: Callable[[Experiment, int, dict], None],
    on_done: Callable[[Experiment, int, Future], None],
) -> None:
    """Run the matrix `options.jobs` at a time, longest first, in fresh processes, splitting
    this process's threads among them (two one-thread runs get more from two cores than one
    two-thread run: the small batches early in a schedule keep one thread busy with dispatch,
    not arithmetic). Calls `on_epoch(exp, seed, record)` for every epoch and `on_done` as each
    run ends. Ctrl-C or SIGTERM interrupts every running job (each leaves a resumable run) and
    re-raises."""
    jobs = min(options.jobs, len(matrix))
    threads = max(1, torch.get_num_threads() // jobs)
    ctx = multiprocessing.get_context("spawn")  # fork after torch's threads start is unsafe
    events, stop = ctx.Queue(), ctx.Event()
    pool = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_start_worker,
                               initargs=(threads, events, stop))  # fmt: skip
    try:
        pending = {pool.submit(_pool_job, *job_of(exp, seed, options)): (exp, seed)
                   for exp, seed in longest_first(matrix)}  # fmt: skip
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
