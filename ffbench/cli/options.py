"""The command line's vocabulary: every option that several `ffbench` commands share, declared
once with `Annotated` (typer reads the type, the flag and the help from here), and `uses`, which
gives a command a group of them packed into one value."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ffbench import api
from ffbench.report.formats import TableFormat


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


RunsDir = Annotated[
    Path, typer.Option("--runs-dir", envvar="FFBENCH_RUNS_DIR", help="Where run directories live.")
]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="MNIST folder (default: $FFBENCH_DATA_DIR, else ~/.cache/ffbench).",
        show_default=False,
    ),
]
Format = Annotated[TableFormat, typer.Option("--format", help="Output format.")]
Names = Annotated[list[str] | None, typer.Argument(help="Experiments to run (see `ffbench list`).")]
Paper = Annotated[bool, typer.Option("--paper", help="Run every row of the notes' table.")]
Config = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="A TOML file of new rows (README, 'Rows from a file'): all of them, or those named.",
    ),
]
ReadingOpt = Annotated[
    str,
    typer.Option(
        "--reading",
        help="Interpretation of the notes for the paper rows: code (the authors' code, "
        "reproduces the table) or text (the equations as printed); see `ffbench readings`.",
    ),
]
Sets = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Any setting the rows' methods read, KEY=VALUE (repeatable), e.g. --set theta=2 "
        "--set negatives=other_image; keys: `ffbench readings`, README.",
    ),
]
Seed = Annotated[str | None, typer.Option(help="Seed, or several: 0,3,7 (default 0).")]
Seeds = Annotated[int | None, typer.Option(min=1, help="Seeds 0..K-1 (instead of --seed).")]
DeviceOpt = Annotated[Device, typer.Option(help="auto: cuda when available, else cpu.")]
EvalEvery = Annotated[
    int, typer.Option(min=0, help="Test accuracy every K epochs (0: after the last only).")
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show the run matrix; run nothing.")]
FigureOutput = Annotated[Path | None, typer.Option("--output", help="PNG file to write.")]


@dataclass(frozen=True)
class Group:
    """Options several commands take, packed into the command's parameter `into` by `pack`."""

    into: str
    params: dict[str, tuple[object, object]]  # name -> (Annotated type, default)
    pack: Callable[[dict], object]

    def only(self, *names: str) -> Group:
        return Group(self.into, {n: self.params[n] for n in names}, self.pack)


def uses(*groups: Group):
    """Give a command the options of `groups`: typer sees each option as the command's own
    parameter, and the command receives each group packed, as its parameter `group.into`."""

    def decorate(fn):
        sig = inspect.signature(fn, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name not in {g.into for g in groups}]
        extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                   annotation=kind)
                 for g in groups for name, (kind, default) in g.params.items()]  # fmt: skip

        def command(**kwargs):
            for g in groups:
                kwargs[g.into] = g.pack({name: kwargs.pop(name) for name in g.params})
            return fn(**kwargs)

        command.__signature__ = sig.replace(parameters=own + extra)
        command.__annotations__ = {p.name: p.annotation for p in own + extra}
        command.__name__, command.__doc__ = fn.__name__, fn.__doc__
        return command

    return decorate


def run_options(values: dict) -> api.RunOptions:
    values = dict(values)
    values["device"] = values.get("device", Device.auto).value
    return api.RunOptions(**values)


# How runs are done (`ffbench.api.RunOptions`).
RUN = Group("options", {
    "device": (DeviceOpt, Device.auto),
    "eval_every": (EvalEvery, 0),
    "runs_dir": (RunsDir, Path("runs")),
    "data_dir": (DataDir, None),
    "force": (Annotated[bool, typer.Option("--force", help="Re-run even if a result exists.")],
              False),
    "resume": (Annotated[bool, typer.Option("--resume", help="Continue interrupted runs.")],
               False),
    "checkpoint_every": (Annotated[int, typer.Option(min=1, help="Checkpoint every K epochs.")],
                         10),
    "jobs": (Annotated[int, typer.Option(
        min=1, help="Runs at once, each with 1/N of the threads (CPU only).")], 1),
}, run_options)  # fmt: skip

# Settings with an option of their own (any other setting: --set KEY=VALUE); unset ones are
# left out, so the row's own value stays.
SETTINGS = Group("settings", {
    "epochs": (Annotated[int | None, typer.Option(min=1, help="Epochs (registry: 400).")], None),
    "train_subset": (Annotated[int | None, typer.Option(
        min=2, help="Train on the first N samples only.")], None),
    "batch_start": (Annotated[int | None, typer.Option(
        min=1, help="Batch size of the first epoch.")], None),
    "batch_final": (Annotated[int | None, typer.Option(
        min=1, help="Batch size of the last epoch.")], None),
    "lr": (Annotated[float | None, typer.Option(help="Rate at the start batch size (> 0).")],
           None),
    "batch_growth": (Annotated[api.BatchGrowth | None, typer.Option(
        help="How the batch grows.")], None),
    "lr_scaling": (Annotated[api.LrScaling | None, typer.Option(
        help="How the rate follows the batch.")], None),
    "theta": (Annotated[float | None, typer.Option(
        help="FF goodness threshold (registry: 2.0).")], None),
    "stable_loss": (Annotated[bool | None, typer.Option(
        "--stable-loss/--literal-loss", help="FF: log-sigmoid, or ln(sigmoid) as written.")],
        None),
    "layer_order": (Annotated[api.LayerOrder | None, typer.Option(
        help="FF: per-batch, sequential or greedy layers.")], None),
    "normalize_input": (Annotated[bool | None, typer.Option(
        "--normalize-input/--raw-input",
        help="FF: L2-normalise the first layer's input too, or feed it the raw image.")], None),
    "validation": (Annotated[int | None, typer.Option(
        min=0, help="Hold out N training images (seeded by the run's seed); report their "
        "accuracy.")], None),
}, lambda values: {k: v for k, v in values.items() if v is not None})  # fmt: skip

# What to run: rows x seeds (`ffbench.api.select`).
SELECT = Group("selection", {
    "names": (Names, None),
    "paper": (Paper, False),
    "config": (Config, None),
    "reading": (ReadingOpt, api.DEFAULT_READING),
    "sets": (Sets, None),
    "seed": (Seed, None),
    "seeds": (Seeds, None),
}, dict)  # fmt: skip
