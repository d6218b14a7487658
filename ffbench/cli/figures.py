"""`ffbench figure ...` and `ffbench plot`: the figures of the notes, the seeds and the studies
(ffbench/report/figures.py), as PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ffbench import api
from ffbench.cli import options as opt
from ffbench.cli.terminal import asked, console, err, fail, warn
from ffbench.report import figures

figure_app = typer.Typer(help="Figures of the notes and the seeds, as PNG files.")


def draw(make, *args) -> None:
    """Draw a figure with `make` and say where it went; a missing input is one line."""
    try:
        path = make(*args)
    except (api.DataError, ValueError) as e:  # no MNIST; no runs to draw (what to run)
        fail(str(e))
    console.print(f"wrote {path}", highlight=False)


def first_images(data_dir: Path | None):
    """MNIST's first 256 training images, on the CPU: the batch the cosine figures measure on."""
    try:
        data = api.load_data(data_dir, "cpu", 256, log=err.print)
    except api.DataError as e:
        fail(str(e))
    return data.x_train, data.y_train


def runs_of(runs_dir: Path, then: str):
    if not runs_dir.is_dir():
        fail(f"runs dir {runs_dir} does not exist; run `{then}` first")


@figure_app.command("losses")
def figure_losses(runs_dir: opt.RunsDir = Path("runs"), output: opt.FigureOutput = None) -> None:
    """L0, L1 and their adjusted forms against goodness, for theta = 0, 1, 2 (section 3.2)."""
    draw(figures.losses_figure, output or runs_dir / "figures" / "losses.png")


@figure_app.command("cosine")
def figure_cosine(runs_dir: opt.RunsDir = Path("runs"), output: opt.FigureOutput = None,
                  data_dir: opt.DataDir = None) -> None:  # fmt: skip
    """|cos| of random directions as n grows, and of forward gradients on our MLP."""
    path = output or runs_dir / "figures" / "cosine.png"
    draw(figures.cosine_figure, path, *first_images(data_dir))


@figure_app.command("variance")
def figure_variance(runs_dir: opt.RunsDir = Path("runs"), output: opt.FigureOutput = None,
                    data_dir: opt.DataDir = None) -> None:  # fmt: skip
    """Forward gradients' relative error and |cos| as the units per loss fall from a layer's 256
    to 8, masked and not, beside q + 1 (Ren et al. §3.4); its numbers in a CSV beside it."""
    path = output or runs_dir / "figures" / "variance.png"
    draw(figures.variance_figure, path, *first_images(data_dir))


@figure_app.command("depth")
def figure_depth(runs_dir: opt.RunsDir = Path("runs"), output: opt.FigureOutput = None,
                 data_dir: opt.DataDir = None) -> None:  # fmt: skip
    """The depth study: test error against depth per method (seeds as error bars), and the
    |cos| of each method's gradient estimate per layer at each depth."""
    runs_of(runs_dir, "ffbench study depth")
    path = output or runs_dir / "figures" / "depth.png"
    draw(figures.depth_figure, runs_dir, path, *first_images(data_dir))


@figure_app.command("ablation")
def figure_ablation(
    name: Annotated[str, typer.Argument(help="The ablated row, e.g. adj_FFA0_1.")],
    reading: opt.ReadingOpt = api.DEFAULT_READING,
    runs_dir: opt.RunsDir = Path("runs"),
    output: opt.FigureOutput = None,
) -> None:
    """`ffbench ablate`'s runs: each flipped switch's change in test accuracy (same seeds),
    beside the spread of the unflipped row's seeds."""
    try:
        api.check_reading(reading)
    except api.BadRequest as e:
        raise asked(e) from None
    runs_of(runs_dir, f"ffbench ablate {name}")
    target = output or runs_dir / "figures" / f"ablation_{name}_{reading}.png"
    draw(figures.ablation_figure, api.load_runs(runs_dir, warn), name, reading, target)


def plot_runs(
    runs: Annotated[
        list[Path], typer.Argument(help="Run directories (RUNS/<reading>/<name>/seed-...).")
    ],
    output: opt.FigureOutput = None,
    runs_dir: opt.RunsDir = Path("runs"),
) -> None:
    """Learning curves (loss, and test accuracy where recorded) of runs on one figure."""
    for run in runs:
        if not (run / "metrics.csv").is_file():
            raise typer.BadParameter(f"{run} has no metrics.csv; give run directories such as "
                                     f"{runs_dir}/code/DNN_base/seed-0-cpu-<hash>",
                                     param_hint="RUNS")  # fmt: skip
    draw(figures.learning_curves, runs, output or runs_dir / "figures" / "curves.png")
