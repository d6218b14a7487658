"""`ffbench figure ...` and `ffbench plot`: the figures of the notes, the seeds and the studies
(ffbench/report/figures.py), as PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ffbench import api
from ffbench.cli import options as opt
from ffbench.cli.terminal import asked, console, err, fail, warn

figure_app = typer.Typer(help="Figures of the notes and the seeds, as PNG files.")


def draw(make, *args) -> None:
    """Draw a figure with `make` and say where it went; a bad request is one line."""
    try:
        path = make(*args)
    except api.BadRequest as e:
        if e.param in ("--runs-dir", "NAME"):
            fail(str(e))
        raise asked(e) from None
    except api.DataError as e:
        fail(str(e))
    console.print(f"wrote {path}", highlight=False)


@figure_app.command("losses")
def figure_losses(runs_dir: opt.RunsDir = Path("runs"), output: opt.FigureOutput = None) -> None:
    """L0, L1 and their adjusted forms against goodness, for theta = 0, 1, 2 (section 3.2)."""
    draw(api.figure_losses, output or runs_dir / "figures" / "losses.png")


@figure_app.command("cosine")
def figure_cosine(
    runs_dir: opt.RunsDir = Path("runs"),
    output: opt.FigureOutput = None,
    data_dir: opt.DataDir = None,
) -> None:
    """|cos| of random directions as n grows, and of forward gradients on our MLP."""
    draw(api.figure_cosine, output or runs_dir / "figures" / "cosine.png", data_dir, err.print)


@figure_app.command("depth")
def figure_depth(
    runs_dir: opt.RunsDir = Path("runs"),
    output: opt.FigureOutput = None,
    data_dir: opt.DataDir = None,
) -> None:
    """The depth study: test error against depth per method (seeds as error bars), and the
    |cos| of each method's gradient estimate per layer at each depth."""
    draw(api.figure_depth, runs_dir, output or runs_dir / "figures" / "depth.png", data_dir,
         err.print)  # fmt: skip


@figure_app.command("ablation")
def figure_ablation(
    name: Annotated[str, typer.Argument(help="The ablated row, e.g. adj_FFA0_1.")],
    reading: opt.ReadingOpt = api.DEFAULT_READING,
    runs_dir: opt.RunsDir = Path("runs"),
    output: opt.FigureOutput = None,
) -> None:
    """`ffbench ablate`'s runs: each flipped switch's change in test accuracy (same seeds),
    beside the spread of the unflipped row's seeds."""
    target = output or runs_dir / "figures" / f"ablation_{name}_{reading}.png"
    draw(api.figure_ablation, runs_dir, name, reading, target, warn)


def plot_runs(
    runs: Annotated[
        list[Path], typer.Argument(help="Run directories (RUNS/<reading>/<name>/...).")
    ],
    output: opt.FigureOutput = None,
    runs_dir: opt.RunsDir = Path("runs"),
) -> None:
    """Learning curves (loss, and test accuracy where recorded) of runs on one figure."""
    draw(api.plot, runs, output or runs_dir / "figures" / "curves.png")
