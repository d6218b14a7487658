"""The command line's vocabulary: every option that several `ffbench` commands share, declared
once with `Annotated` (typer reads the type, the flag and the help from here)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ffbench import results
from ffbench.experiment import LayerOrder
from ffbench.schedules import BatchGrowth, LrScaling


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
Format = Annotated[results.TableFormat, typer.Option("--format", help="Output format.")]
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
        help="Any setting of the experiment, KEY=VALUE (repeatable), e.g. --set theta=2 "
        "--set negatives=other_image; keys: `ffbench readings`, README.",
    ),
]
Epochs = Annotated[int | None, typer.Option(min=1, help="Epochs (registry: 400).")]
Seed = Annotated[str | None, typer.Option(help="Seed, or several: 0,3,7 (default 0).")]
Seeds = Annotated[int | None, typer.Option(min=1, help="Seeds 0..K-1 (instead of --seed).")]
DeviceOpt = Annotated[Device, typer.Option(help="auto: cuda when available, else cpu.")]
TrainSubset = Annotated[int | None, typer.Option(min=2, help="Train on the first N samples only.")]
BatchStart = Annotated[int | None, typer.Option(min=1, help="Batch size of the first epoch.")]
BatchFinal = Annotated[int | None, typer.Option(min=1, help="Batch size of the last epoch.")]
Lr = Annotated[float | None, typer.Option(help="Rate at the start batch size (> 0).")]
Growth = Annotated[BatchGrowth | None, typer.Option(help="How the batch grows.")]
Scaling = Annotated[LrScaling | None, typer.Option(help="How the rate follows the batch.")]
Theta = Annotated[float | None, typer.Option(help="FF goodness threshold (registry: 2.0).")]
StableLoss = Annotated[
    bool | None,
    typer.Option(
        "--stable-loss/--literal-loss", help="FF: log-sigmoid, or ln(sigmoid) as written."
    ),
]
NormalizeInput = Annotated[
    bool | None,
    typer.Option(
        "--normalize-input/--raw-input",
        help="FF: L2-normalise the first layer's input too, or feed it the raw image.",
    ),
]
Order = Annotated[
    LayerOrder | None, typer.Option(help="FF: per-batch, sequential or greedy layers.")
]
Validation = Annotated[
    int | None,
    typer.Option(
        min=0, help="Hold out N training images (seeded by the run's seed); report their accuracy."
    ),
]
EvalEvery = Annotated[
    int, typer.Option(min=0, help="Test accuracy every K epochs (0: after the last only).")
]
Force = Annotated[bool, typer.Option("--force", help="Re-run even if a result exists.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue interrupted runs.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show the run matrix; run nothing.")]
CheckpointEvery = Annotated[int, typer.Option(min=1, help="Checkpoint every K epochs.")]
Jobs = Annotated[
    int, typer.Option(min=1, help="Runs at once, each with 1/N of the threads (CPU only).")
]
FigureOutput = Annotated[Path | None, typer.Option("--output", help="PNG file to write.")]
