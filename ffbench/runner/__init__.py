"""Running: the plan of a command (rows x seeds, checked against their methods), the epoch loop,
run directories, runs here (one after another or N processes at once) or on SLURM, and the
benchmark. `RunOptions` is how every run is to be done, built once by the CLI or the API."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunOptions:
    runs_dir: Path = Path("runs")
    data_dir: Path | None = None  # MNIST; None: $FFBENCH_DATA_DIR, else ~/.cache/ffbench
    device: str = "auto"  # auto, cpu or cuda
    jobs: int = 1  # runs at once, each in its own process (CPU only)
    eval_every: int = 0  # test accuracy every K epochs as well as after the last
    force: bool = False  # run again where a finished run is
    resume: bool = False  # continue an interrupted run from its checkpoint
    checkpoint_every: int = 10
