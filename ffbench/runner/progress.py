"""What a run shows while it goes and when it ends: progress over epochs (a rich bar on a
terminal or in a notebook, one plain line per epoch otherwise: logs, CI), and one line per run
that ends."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ffbench.runner.store import Outcome


def describe(record: dict) -> str:
    text = f"batch {record['batch']} rate {record['rate']:.3g} loss {record['loss']:.4f}"
    if "layer" in record:
        text = f"layer {record['layer']} " + text
    if not math.isnan(record.get("test_accuracy", math.nan)):
        text += f" acc {record['test_accuracy']:.4f}"
    return text


class EpochProgress:
    """Use as a context manager over one run or several at once (`run --jobs`): one bar per run
    on a terminal or in a notebook with ipywidgets (rich's live display there), one plain line
    per epoch in a log, one line per tenth of the run in a notebook without ipywidgets, nothing
    on a quiet console. `progress(label, record)` reports an epoch; `progress.for_run(label)` is
    that call for one run, as `execute` wants it."""

    def __init__(self, console: Console, runs: dict[str, int]):
        self.console, self.totals = console, runs  # label -> epochs in all
        self.bar: Progress | None = None
        self.tasks: dict[str, int] = {}
        notebook = console.is_jupyter
        self.every = {
            label: max(1, total // 10) if notebook else 1 for label, total in runs.items()
        }

    def __enter__(self) -> EpochProgress:
        widgets = importlib.util.find_spec("ipywidgets") is not None
        if not self.console.quiet and (
            self.console.is_terminal or (self.console.is_jupyter and widgets)
        ):
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[status]}"),
                console=self.console,
            )
            self.bar.start()
            for label, total in self.totals.items():
                self.tasks[label] = self.bar.add_task(label, total=total, status="", start=False)
        return self

    def __call__(self, label: str, record: dict) -> None:
        if self.bar is not None:
            task = self.tasks[label]
            self.bar.start_task(task)
            self.bar.update(task, completed=record["epoch"], status=describe(record))
        elif record["epoch"] % self.every[label] == 0 or record["epoch"] == self.totals[label]:
            self.console.print(
                f"{label} epoch {record['epoch']}/{self.totals[label]} {describe(record)} "
                f"{record['seconds']:.1f}s",
                highlight=False, markup=False, soft_wrap=True,
            )  # fmt: skip

    def for_run(self, label: str) -> Callable[[dict], None]:
        return lambda record: self(label, record)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


@dataclass
class Screen:
    """Where progress and results go (`out`) and where errors go (`err`)."""

    out: Console
    err: Console

    def report(self, label: str, out: Outcome, how: str = "") -> None:
        """One line for a run that ended (or was already done), and why it failed."""
        r = out.result
        what = "already done (use --force to re-run)" if out.skipped else r["status"]
        acc = r["test_accuracy"]
        acc_text = "NAN" if math.isnan(acc) else f"{acc:.4f}"
        self.out.print(f"{label}: {how}{what}, test accuracy {acc_text}, "
                       f"train {r.get('train_seconds', math.nan):.1f} s -> {out.path}",
                       highlight=False, soft_wrap=True)  # fmt: skip
        if r["status"] == "failed":
            self.err.print(f"[red]{label} failed:[/] {r.get('error')}", highlight=False)
