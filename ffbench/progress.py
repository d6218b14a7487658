"""Progress over epochs: a rich bar on a terminal, one plain line per epoch otherwise."""

from __future__ import annotations

import math

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
    """Use as a context manager; call it with each epoch's record."""

    def __init__(self, console: Console, label: str, total: int):
        self.console, self.label, self.total = console, label, total
        self.bar: Progress | None = None

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
            self.task = self.bar.add_task(self.label, total=self.total, status="")
        return self

    def __call__(self, record: dict) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=record["epoch"], status=describe(record))
        else:
            print(
                f"{self.label} epoch {record['epoch']}/{self.total} {describe(record)} "
                f"{record['seconds']:.1f}s",
                flush=True,
            )

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
