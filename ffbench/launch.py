"""Running a matrix of (experiment, seed) for `run` and `ablate`: one after another in this
process, or N at a time in worker processes (`--jobs`, `ffbench.sweep.run_pool`), with one
progress display and one line per run that ends."""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.console import Console

from ffbench import data as mnist
from ffbench.experiment import Experiment, LayerOrder, Method
from ffbench.progress import EpochProgress
from ffbench.runner import ResumeRefused, RunTaken, execute, run_labels


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

    def report(self, label: str, out) -> int:
        """One line for a run that ended (or was already done); 1 if it failed, else 0."""
        r = out.result
        what = "already done (use --force to re-run)" if out.skipped else r["status"]
        acc = r["test_accuracy"]
        acc_text = "NAN" if math.isnan(acc) else f"{acc:.4f}"
        self.out.print(
            f"{label}: {what}, test accuracy {acc_text}, "
            f"train {r.get('train_seconds', math.nan):.1f} s -> {out.path}",
            highlight=False,
        )
        if r["status"] == "failed":
            self.err.print(f"[red]{label} failed:[/] {r.get('error')}", highlight=False)
            return 1
        return 0


def epochs_in_all(exp: Experiment) -> int:
    """Progress steps of a run: greedy FF trains the layers one after another, each for all
    epochs."""
    if exp.method == Method.ff and exp.layer_order == LayerOrder.greedy:
        return exp.epochs * (len(exp.sizes) - 1)
    return exp.epochs


def run_serial(ui: Screen, matrix, root, dev, runs_dir, train_subset, eval_every, force, resume,
               checkpoint_every) -> int:  # fmt: skip
    """The runs one after another in this process; returns how many failed."""
    try:
        data = mnist.load(root, dev, train_subset, log=ui.err.print)
    except mnist.DataError as e:
        raise LaunchError(str(e)) from None
    labels = run_labels(matrix)
    failed = 0
    for exp, s in matrix:
        label = labels[exp, s]
        try:
            with EpochProgress(ui.out, {label: epochs_in_all(exp)}) as progress:
                out = execute(
                    exp, s, data, dev, runs_dir, eval_every, force, progress.for_run(label),
                    resume=resume, checkpoint_every=checkpoint_every,
                )  # fmt: skip
        except (RunTaken, ResumeRefused) as e:
            raise LaunchError(str(e)) from None
        except KeyboardInterrupt:
            raise LaunchError(f"{label} interrupted; `ffbench run ... --resume` continues it",
                              code=130) from None  # fmt: skip
        failed += ui.report(label, out)
    return failed


def run_parallel(ui: Screen, matrix, root, dev, runs_dir, jobs, eval_every, force, resume,
                 checkpoint_every) -> int:  # fmt: skip
    """The runs `jobs` at a time in worker processes (`ffbench.sweep.run_pool`); returns how
    many failed. A run another process holds is reported and the others go on."""
    from ffbench.sweep import run_pool

    try:
        mnist.fetch(root, log=ui.err.print)  # once here, not racing in every worker
    except mnist.DataError as e:
        raise LaunchError(str(e)) from None
    labels = run_labels(matrix)
    options = dict(
        runs_dir=runs_dir.resolve(), data_dir=root.resolve(), device=dev.type,
        eval_every=eval_every, force=force, resume=resume, checkpoint_every=checkpoint_every,
    )  # fmt: skip
    failed = 0
    totals = {labels[e, s]: epochs_in_all(e) for e, s in matrix}
    with EpochProgress(ui.out, totals) as progress:

        def on_epoch(exp: Experiment, seed: int, record: dict) -> None:
            progress(labels[exp, seed], record)

        def on_done(exp: Experiment, seed: int, future) -> None:
            nonlocal failed
            label = labels[exp, seed]
            try:
                failed += ui.report(label, future.result())
            except (RunTaken, ResumeRefused) as e:
                failed += 1
                ui.err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            except Exception as e:  # the worker itself died (killed, out of memory)
                failed += 1
                ui.err.print(f"[bold red]error:[/] {label}: its worker failed: {e!r}; "
                          "`ffbench run ... --resume` continues it", highlight=False)  # fmt: skip

        try:
            run_pool(matrix, options, jobs, on_epoch, on_done)
        except KeyboardInterrupt:
            raise LaunchError("interrupted; `ffbench run ... --resume` continues the unfinished "
                              "runs", code=130) from None  # fmt: skip
    return failed
