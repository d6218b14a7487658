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
ReadingOpt = Annotated[
    str,
    typer.Option(
        "--reading",
        help="Interpretation of the notes for the paper rows: code (the authors' code, "
        "reproduces the table) or text (the equations as printed); see `ffbench readings`.",
    ),
]
DeviceOpt = Annotated[Device, typer.Option(help="auto: cuda when available, else cpu.")]
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
    "eval_every": (Annotated[int, typer.Option(
        min=0, help="Test accuracy every K epochs (0: after the last only).")], 0),
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

# Settings with an option of their own (any other setting: --set KEY=VALUE), typed by the
# settings schema; unset ones are left out, so the row's own value stays.
SETTING_HELP = {
    "epochs": "Epochs (registry: 400).",
    "train_subset": "Train on the first N samples only.",
    "batch_start": "Batch size of the first epoch.",
    "batch_final": "Batch size of the last epoch.",
    "lr": "Rate at the start batch size (> 0).",
    "batch_growth": "How the batch grows.",
    "lr_scaling": "How the rate follows the batch.",
    "theta": "FF goodness threshold (registry: 2.0).",
    "stable_loss": "FF: log-sigmoid, or ln(sigmoid) as written.",
    "layer_order": "FF: per-batch, sequential or greedy layers.",
    "normalize_input": "FF: L2-normalise the first layer's input too, or feed it the raw image.",
    "validation": "Hold out N training images (seeded by the run's seed); report their accuracy.",
}
SETTINGS = Group("settings", {
    key: (Annotated[api.HINTS[key] | None, typer.Option(
        api.FLAGS[key], min=api.FIELDS[key].metadata.get("at_least"), help=text)], None)
    for key, text in SETTING_HELP.items()
}, lambda values: {k: v for k, v in values.items() if v is not None})  # fmt: skip


def parse_seeds(seed: str | None, seeds: int | None) -> list[int]:
    if seeds is not None:
        if seed is not None:
            raise typer.BadParameter("give --seed or --seeds, not both", param_hint="--seeds")
        return list(range(seeds))
    try:
        out = [int(s) for s in (seed or "0").split(",")]
    except ValueError:
        out = []
    if not out or min(out) < 0 or len(set(out)) != len(out):
        raise typer.BadParameter(
            f"'{seed}' is not a seed list; give distinct integers >= 0 like 0 or 0,3,7",
            param_hint="--seed",
        )
    return out


def selection(values: dict) -> dict:
    """What a command names: the rows, the seeds (a list), the reading, ... (`api.select`)."""
    out = {k: v or [] if k in ("names", "sets") else v for k, v in values.items()}
    out["seeds"] = parse_seeds(out.pop("seed"), out.get("seeds"))
    return out


# What to run: rows x seeds (`ffbench.api.select`).
SELECT = Group("selection", {
    "names": (Annotated[list[str] | None, typer.Argument(
        help="Experiments to run (see `ffbench list`).")], None),
    "paper": (Annotated[bool, typer.Option("--paper", help="Run every row of the notes' table.")],
              False),
    "config": (Annotated[Path | None, typer.Option("--config", help="A TOML file of new rows "
               "(README, 'Rows from a file'): all of them, or those named.")], None),
    "reading": (ReadingOpt, api.DEFAULT_READING),
    "sets": (Annotated[list[str] | None, typer.Option("--set", help="Any setting the rows' "
             "methods read, KEY=VALUE (repeatable), e.g. --set theta=2 --set "
             "negatives=other_image; keys: `ffbench readings`, README.")], None),
    "seed": (Annotated[str | None, typer.Option(help="Seed, or several: 0,3,7 (default 0).")],
             None),
    "seeds": (Annotated[int | None, typer.Option(
        min=1, help="Seeds 0..K-1 (instead of --seed).")], None),
}, selection)  # fmt: skip
