"""Progress over epochs: a rich bar on a terminal, one plain line per epoch otherwise."""

from __future__ import annotations

import math
from collections.abc import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def describe(record: dict) -> str:
    text = f"batch {record['batch']} rate {record['rate']:.3g} loss {record['loss']:.4f}"
    if "layer" in record:
        text = f"layer {record['layer']} " + text
    if not math.isnan(record.get("test_accuracy", math.nan)):
        text += f" acc {record['test_accuracy']:.4f}"
    return text


class EpochProgress:
    """Use as a context manager over one run or several at once (`run --jobs`): one bar per run
    on a terminal, one plain line per epoch otherwise. `progress(label, record)` reports an epoch;
    `progress.for_run(label)` is that call for one run, as `execute` wants it."""

    def __init__(self, console: Console, runs: dict[str, int]):
        self.console, self.totals = console, runs  # label -> epochs in all
        self.bar: Progress | None = None
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> EpochProgress:
        if self.console.is_terminal:
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
        else:
            print(
                f"{label} epoch {record['epoch']}/{self.totals[label]} {describe(record)} "
                f"{record['seconds']:.1f}s",
                flush=True,
            )

    def for_run(self, label: str) -> Callable[[dict], None]:
        return lambda record: self(label, record)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
