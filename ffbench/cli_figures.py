"""`ffbench figure ...` and `ffbench plot`: the figures of the notes, the seeds and the studies
(ffbench/figures.py), as PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ffbench import data as mnist
from ffbench import options as opt
from ffbench import readings, results
from ffbench.terminal import check_reading, console, err, fail, warn

figure_app = typer.Typer(help="Figures of the notes and the seeds, as PNG files.")


def first_images(data_dir: Path | None) -> mnist.MNIST:
    """MNIST's first 256 training images, on the CPU: the batch the cosine figures measure on."""
    try:
        return mnist.load(data_dir or mnist.default_data_dir(), "cpu", 256, log=err.print)
    except mnist.DataError as e:
        fail(str(e))


@figure_app.command("losses")
def figure_losses(runs_dir: opt.RunsDir = Path("runs"), output: opt.FigureOutput = None) -> None:
    """L0, L1 and their adjusted forms against goodness, for theta = 0, 1, 2 (section 3.2)."""
    from ffbench.figures import losses_figure

    path = losses_figure(output or runs_dir / "figures" / "losses.png")
    console.print(f"wrote {path}", highlight=False)


@figure_app.command("cosine")
def figure_cosine(
    runs_dir: opt.RunsDir = Path("runs"),
    output: opt.FigureOutput = None,
    data_dir: opt.DataDir = None,
) -> None:
    """|cos| of random directions as n grows, and of forward gradients on our MLP."""
    from ffbench.figures import cosine_figure

    data = first_images(data_dir)
    path = cosine_figure(output or runs_dir / "figures" / "cosine.png", data.x_train, data.y_train)
    console.print(f"wrote {path}", highlight=False)


@figure_app.command("depth")
def figure_depth(
    runs_dir: opt.RunsDir = Path("runs"),
    output: opt.FigureOutput = None,
    data_dir: opt.DataDir = None,
) -> None:
    """The depth study: test error against depth per method (seeds as error bars), and the
    |cos| of each method's gradient estimate per layer at each depth."""
    from ffbench.figures import depth_figure

    if not runs_dir.is_dir():
        fail(f"runs dir {runs_dir} does not exist; run `ffbench study depth` first")
    data = first_images(data_dir)
    path = depth_figure(runs_dir, output or runs_dir / "figures" / "depth.png", data.x_train,
                        data.y_train)  # fmt: skip
    console.print(f"wrote {path}", highlight=False)


@figure_app.command("ablation")
def figure_ablation(
    name: Annotated[str, typer.Argument(help="The ablated row, e.g. adj_FFA0_1.")],
    reading: opt.ReadingOpt = readings.DEFAULT,
    runs_dir: opt.RunsDir = Path("runs"),
    output: opt.FigureOutput = None,
) -> None:
    """`ffbench ablate`'s runs: each flipped switch's change in test accuracy (same seeds),
    beside the spread of the unflipped row's seeds."""
    from ffbench.figures import ablation_figure

    check_reading(reading)
    if not runs_dir.is_dir():
        fail(f"runs dir {runs_dir} does not exist; run `ffbench ablate {name}` first")
    runs = results.load_runs(runs_dir, warn=warn)
    target = output or runs_dir / "figures" / f"ablation_{name}_{reading}.png"
    try:
        path = ablation_figure(runs, name, reading, target)
    except ValueError as e:
        fail(str(e))
    console.print(f"wrote {path}", highlight=False)


def plot_runs(
    runs: Annotated[list[Path], typer.Argument(help="Run directories (RUNS/<name>/seed-<S>...).")],
    output: opt.FigureOutput = None,
    runs_dir: opt.RunsDir = Path("runs"),
) -> None:
    """Learning curves (loss, and test accuracy where recorded) of runs on one figure."""
    from ffbench.figures import learning_curves

    for run in runs:
        if not (run / "metrics.csv").is_file():
            raise typer.BadParameter(
                f"{run} has no metrics.csv; give run directories such as "
                f"{runs_dir}/DNN_base/seed-0",
                param_hint="RUNS",
            )
    path = learning_curves(runs, output or runs_dir / "figures" / "curves.png")
    console.print(f"wrote {path}", highlight=False)
