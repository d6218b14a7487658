"""Running a matrix of (experiment, seed) for `run` and `ablate`: one after another in this
process, or N at a time in worker processes (`--jobs`, `ffbench.sweep.run_pool`), with one
progress display and one line per run that ends."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from ffbench import data as mnist
from ffbench.experiment import Experiment, LayerOrder, Method
from ffbench.progress import EpochProgress
from ffbench.runner import (
    Outcome,
    ResumeRefused,
    RunDiffers,
    RunTaken,
    execute,
    failed_result,
    run_dir,
    run_labels,
)


class LaunchError(Exception):
    """A run could not go on; the message names the fix. `code` is the exit code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


@dataclass
class Screen:
    """Where progress and results go (`out`) and where errors go (`err`)."""

    out: Console
    err: Console

    def report(self, label: str, out: Outcome) -> None:
        """One line for a run that ended (or was already done), and why it failed."""
        r = out.result
        what = "already done (use --force to re-run)" if out.skipped else r["status"]
        acc = r["test_accuracy"]
        acc_text = "NAN" if math.isnan(acc) else f"{acc:.4f}"
        self.out.print(
            f"{label}: {what}, test accuracy {acc_text}, "
            f"train {r.get('train_seconds', math.nan):.1f} s -> {out.path}",
            highlight=False,
            soft_wrap=True,
        )
        if r["status"] == "failed":
            self.err.print(f"[red]{label} failed:[/] {r.get('error')}", highlight=False)


def epochs_in_all(exp: Experiment) -> int:
    """Progress steps of a run: greedy FF trains the layers one after another, each for all
    epochs."""
    if exp.method == Method.ff and exp.layer_order == LayerOrder.greedy:
        return exp.epochs * (len(exp.sizes) - 1)
    return exp.epochs


def run_serial(ui: Screen, matrix, root, dev, runs_dir, options: dict) -> list[Outcome]:
    """The runs one after another in this process; their outcomes in the matrix's order.
    `options`: eval_every, force, resume, checkpoint_every."""
    loaded = {}  # train_subset -> MNIST on `dev`, read once
    labels = run_labels(matrix)
    outcomes = []
    for exp, s in matrix:
        label = labels[exp, s]
        try:
            if exp.train_subset not in loaded:
                loaded[exp.train_subset] = mnist.load(root, dev, exp.train_subset,
                                                      log=ui.err.print)  # fmt: skip
        except mnist.DataError as e:
            raise LaunchError(str(e)) from None
        data = loaded[exp.train_subset]
        try:
            with EpochProgress(ui.out, {label: epochs_in_all(exp)}) as progress:
                out = execute(exp, s, data, dev, runs_dir, on_epoch=progress.for_run(label),
                              **options)  # fmt: skip
        except (RunTaken, ResumeRefused, RunDiffers) as e:
            raise LaunchError(str(e)) from None
        except KeyboardInterrupt:
            raise LaunchError(f"{label} interrupted; `ffbench run ... --resume` continues it",
                              code=130) from None  # fmt: skip
        ui.report(label, out)
        outcomes.append(out)
    return outcomes


def run_parallel(ui: Screen, matrix, root, dev, runs_dir, jobs, options: dict,
                 rows: list[Experiment]) -> list[Outcome]:  # fmt: skip
    """The runs `jobs` at a time in worker processes (`ffbench.sweep.run_pool`); their outcomes
    in the matrix's order. A run another process holds, or whose worker died, is reported, comes
    back failed, and the others go on. `rows`: rows the workers must register (a notebook's)."""
    from ffbench.sweep import run_pool

    try:
        mnist.fetch(root, log=ui.err.print)  # once here, not racing in every worker
    except mnist.DataError as e:
        raise LaunchError(str(e)) from None
    labels = run_labels(matrix)
    options = dict(options, runs_dir=Path(runs_dir).resolve(), data_dir=Path(root).resolve(),
                   device=dev.type, rows=rows)  # fmt: skip
    outcomes: dict[tuple[Experiment, int], Outcome] = {}
    totals = {labels[e, s]: epochs_in_all(e) for e, s in matrix}
    with EpochProgress(ui.out, totals) as progress:

        def on_epoch(exp: Experiment, seed: int, record: dict) -> None:
            progress(labels[exp, seed], record)

        def on_done(exp: Experiment, seed: int, future) -> None:
            label = labels[exp, seed]
            try:
                out = future.result()
            except (RunTaken, ResumeRefused, RunDiffers) as e:
                out = _failed(exp, seed, dev, runs_dir, str(e))
                ui.err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            except Exception as e:  # the worker itself died (killed, out of memory)
                out = _failed(exp, seed, dev, runs_dir, f"its worker failed: {e!r}")
                ui.err.print(f"[bold red]error:[/] {label}: its worker failed: {e!r}; "
                          "`ffbench run ... --resume` continues it", highlight=False)  # fmt: skip
            else:
                ui.report(label, out)
            outcomes[exp, seed] = out

        try:
            run_pool(matrix, options, jobs, on_epoch, on_done)
        except KeyboardInterrupt:
            raise LaunchError("interrupted; `ffbench run ... --resume` continues the unfinished "
                              "runs", code=130) from None  # fmt: skip
    return [outcomes[run] for run in matrix]


def _failed(exp: Experiment, seed: int, dev, runs_dir, error: str) -> Outcome:
    """The outcome of a run that never reached its run directory's result.json."""
    return Outcome(run_dir(runs_dir, exp, seed, dev.type), failed_result(exp, seed, dev, error))
