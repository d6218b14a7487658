"""The `ffbench` command line, a thin layer over `ffbench.api`: list, readings, run, ablate,
sweep, study, table, data, bench; figure and plot are in ffbench/cli_figures.py."""

from __future__ import annotations

import dataclasses
import io
import math
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.console import Console

from ffbench import api, readings, results
from ffbench import data as mnist
from ffbench import options as opt
from ffbench.cli_figures import figure_app, plot_runs
from ffbench.config import ConfigError, load_rows
from ffbench.experiment import (
    PAPER,
    PAPER_ROWS,
    Experiment,
    Method,
    UnknownExperiment,
    get,
    parse_setting,
    settings_text,
)
from ffbench.launch import LaunchError, Screen
from ffbench.runner import changed_settings, run_dir, run_state, stray, write_atomic
from ffbench.sweep import ExecutorKind
from ffbench.terminal import asked, check_reading, console, err, fail, warn

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click errors: one line naming the problem and the fix
    help="Reproduce and extend the MNIST table of the Notes on the Forward-Forward Algorithm.",
)


def resolve_device(device: opt.Device) -> torch.device:
    try:
        return api.resolve_device(device.value)
    except api.BadRequest as e:
        raise asked(e) from None


def parse_seeds(seed: str | None, seeds: int | None) -> list[int]:
    if seeds is not None:
        if seed is not None:
            raise typer.BadParameter("give --seed or --seeds, not both", param_hint="--seeds")
        return list(range(seeds))
    if seed is None:
        return [0]
    try:
        out = [int(s) for s in seed.split(",")]
    except ValueError:
        out = []
    if not out or min(out) < 0 or len(set(out)) != len(out):
        raise typer.BadParameter(
            f"'{seed}' is not a seed list; give distinct integers >= 0 like 0 or 0,3,7",
            param_hint="--seed",
        )
    return out


@app.command("list")
def list_experiments(reading: opt.ReadingOpt = readings.DEFAULT) -> None:
    """The registered experiments under a reading, with their settings and the paper's numbers."""
    from rich.table import Table

    check_reading(reading)
    out = Table(title=f"ffbench experiments ({reading} reading for the paper rows)")
    columns = ["Name", "Net", "Method", "Loss", "Opt", "Rate", "Rate growth", "Epochs", "Batch",
               "Paper %", "Paper time"]  # fmt: skip
    for col in columns:
        out.add_column(col)
    for exp in api.experiments(reading).values():
        paper = PAPER.get(exp.name)
        acc = "" if paper is None else "NAN" if math.isnan(paper.accuracy) else f"{paper.accuracy}"
        growth = exp.lr_scaling.value + (
            f", cooled over the last {exp.cooldown:.0%}" if exp.cooldown else ""
        )
        out.add_row(
            exp.name, "-".join(map(str, exp.sizes)), exp.method.value,
            exp.dnn_output.value if exp.method == Method.backprop else exp.loss.value,
            exp.optimizer.value, f"{exp.lr:g}", growth, str(exp.epochs),
            f"{exp.batch_start}→{exp.batch_final}", acc, paper.time if paper else "",
        )  # fmt: skip
    console.print(out)


@app.command("readings")
def show_readings(
    fmt: Annotated[
        results.TableFormat, typer.Option("--format", help="rich or markdown.")
    ] = results.TableFormat.rich,
) -> None:
    """The readings side by side: every interpretation switch, its value under each reading,
    and where the notes and the authors' code stand (file:line)."""
    from rich.table import Table

    header, rows = readings.switch_table()
    if fmt == results.TableFormat.markdown:
        sys.stdout.write(results.markdown(header, rows))
        return
    if fmt != results.TableFormat.rich:
        raise typer.BadParameter("readings prints rich or markdown", param_hint="--format")
    out = Table(title="ffbench readings", show_lines=True)
    for h in header:
        out.add_column(h)
    for r in rows:
        out.add_row(*r)
    for reading in readings.READINGS.values():
        out.caption = (out.caption or "") + f"{reading.name}: {reading.description}.  "
    console.print(out)


@app.command()
def run(
    names: opt.Names = None,
    paper: opt.Paper = False,
    config: opt.Config = None,
    reading: opt.ReadingOpt = readings.DEFAULT,
    sets: opt.Sets = None,
    epochs: opt.Epochs = None,
    seed: opt.Seed = None,
    seeds: opt.Seeds = None,
    device: opt.DeviceOpt = opt.Device.auto,
    train_subset: opt.TrainSubset = None,
    batch_start: opt.BatchStart = None,
    batch_final: opt.BatchFinal = None,
    lr: opt.Lr = None,
    batch_growth: opt.Growth = None,
    lr_scaling: opt.Scaling = None,
    theta: opt.Theta = None,
    stable_loss: opt.StableLoss = None,
    layer_order: opt.Order = None,
    normalize_input: opt.NormalizeInput = None,
    validation: opt.Validation = None,
    eval_every: opt.EvalEvery = 0,
    runs_dir: opt.RunsDir = Path("runs"),
    data_dir: opt.DataDir = None,
    force: opt.Force = False,
    resume: opt.Resume = False,
    checkpoint_every: opt.CheckpointEvery = 10,
    jobs: opt.Jobs = 1,
    dry_run: opt.DryRun = False,
) -> None:
    """Train experiments (x seeds), each into its own run directory, `--jobs` at a time."""
    matrix = run_matrix(names, paper, config, reading, seed, seeds, sets, **flags(locals()))
    launch(matrix, dry_run, device, jobs, runs_dir, data_dir, eval_every, force, resume,
           checkpoint_every)  # fmt: skip


@app.command()
def ablate(
    name: Annotated[str, typer.Argument(help="The row, e.g. adj_FFA0_1.")],
    reading: opt.ReadingOpt = readings.DEFAULT,
    toward: Annotated[str, typer.Option(help="The reading each switch is flipped to.")] = "text",
    epochs: opt.Epochs = None,
    seed: opt.Seed = None,
    seeds: opt.Seeds = None,
    device: opt.DeviceOpt = opt.Device.auto,
    train_subset: opt.TrainSubset = None,
    eval_every: opt.EvalEvery = 0,
    runs_dir: opt.RunsDir = Path("runs"),
    data_dir: opt.DataDir = None,
    force: opt.Force = False,
    resume: opt.Resume = False,
    checkpoint_every: opt.CheckpointEvery = 10,
    jobs: opt.Jobs = 1,
    dry_run: opt.DryRun = False,
) -> None:
    """NAME under --reading, and once more with each switch it reads flipped to --toward's
    choice, one at a time: what each difference between the readings does (`ffbench table`
    shows the flipped switch under Overrides)."""
    check_reading(toward)
    base = run_matrix([name], False, None, reading, seed, seeds, epochs=epochs,
                      train_subset=train_subset)  # fmt: skip
    exp = base[0][0]
    flipped = [dataclasses.replace(exp, **{sw.name: value})
               for sw, value in readings.flips(exp, toward)]  # fmt: skip
    if not flipped:
        raise typer.BadParameter(
            f"{name} reads no switch that differs between {reading} and {toward}; "
            "pick another --toward",
            param_hint="--toward",
        )
    matrix = base + [(e, s) for e in flipped for _, s in base]
    launch(matrix, dry_run, device, jobs, runs_dir, data_dir, eval_every, force, resume,
           checkpoint_every)  # fmt: skip


def launch(matrix, dry_run, device, jobs, runs_dir, data_dir, eval_every, force, resume,
           checkpoint_every) -> None:  # fmt: skip
    """Run a matrix of (experiment, seed) with `ffbench.api`: here one after another, or `jobs`
    at a time; exit 1 when a run failed."""
    if dry_run:
        show_matrix(matrix, runs_dir, resolve_device(device).type)
        return
    try:
        outcomes = api.execute_matrix(
            matrix, runs_dir, device.value, jobs, eval_every, force, resume, checkpoint_every,
            data_dir, Screen(console, err),
        )  # fmt: skip
    except api.BadRequest as e:
        raise asked(e) from None
    except LaunchError as e:
        fail(str(e), e.code)
    if any(out.result["status"] == "failed" for out in outcomes):
        raise typer.Exit(1)


def flags(params: dict) -> dict:
    """A command's options that set a field of the row (`api.FLAGS`: --epochs, --lr, ...)."""
    return {key: value for key, value in params.items() if key in api.FLAGS}


def run_matrix(
    names: list[str] | None,
    paper: bool,
    config: Path | None,
    reading: str,
    seed: str | None,
    seeds: int | None,
    sets: list[str] | None = None,
    **options,
) -> list[tuple[Experiment, int]]:
    """(experiment under the reading, after --set and the other options, seed) for every run a
    command asks for: the named rows, the paper's with --paper, and a config file's rows (all of
    them, or those named)."""
    check_reading(reading)
    rows: list[str | Experiment] = list(names or []) + (PAPER_ROWS if paper else [])
    if config is not None:
        try:
            from_file = {exp.name: exp for exp in load_rows(config, reading)}
        except ConfigError as e:
            raise typer.BadParameter(str(e), param_hint="--config") from None
        named = [from_file.get(row, row) for row in rows]
        rows = named if any(r in from_file for r in rows) else named + list(from_file.values())
    settings = {k: v for k, v in options.items() if v is not None}
    for assignment in sets or []:
        try:
            key, value = parse_setting(assignment)
        except ValueError as e:
            raise typer.BadParameter(str(e), param_hint="--set") from None
        settings[key] = value
    try:
        return api.plan(rows, parse_seeds(seed, seeds), reading, settings)
    except api.BadRequest as e:
        raise asked(e) from None


def show_matrix(matrix: list[tuple[Experiment, int]], runs_dir: Path, device_type: str) -> None:
    """The runs a command would do, and what state each is in; nothing is written."""
    from rich.table import Table

    out = Table(title=f"run matrix ({len(matrix)} runs under {runs_dir})")
    for col in ["Experiment", "Seed", "Overrides", "Run dir", "State"]:
        out.add_column(col)
    for exp, s in matrix:
        path = run_dir(runs_dir, exp, s, device_type)
        state = run_state(path)
        if was := changed_settings(path, exp):  # runner.rehome moves it to its own name
            state = f"made with {settings_text(was)}: kept, run anew"
        if (was or not path.exists()) and (found := stray(runs_dir, exp, s, device_type)):
            state = (f"made with {settings_text(was)}: kept; " if was else "") + (
                f"done as {found.name}: moved here"
            )
        out.add_row(exp.name, str(s), settings_text(exp.overrides()), str(path), state)
    console.print(out)


@app.command()
def sweep(
    names: opt.Names = None,
    paper: opt.Paper = False,
    config: opt.Config = None,
    reading: opt.ReadingOpt = readings.DEFAULT,
    sets: opt.Sets = None,
    seeds: opt.Seeds = None,
    seed: opt.Seed = None,
    executor: Annotated[ExecutorKind, typer.Option(help="Where the jobs run.")] = (
        ExecutorKind.local
    ),
    partition: Annotated[str | None, typer.Option(help="SLURM partition.")] = None,
    gpus_per_node: Annotated[
        int, typer.Option(min=0, help="GPUs per job (local: default all, unless --device cpu).")
    ] = 0,
    cpus_per_task: Annotated[int | None, typer.Option(min=1, help="SLURM CPUs per job.")] = None,
    timeout_min: Annotated[int, typer.Option(min=1, help="Time limit of each job.")] = 120,
    wait: Annotated[bool, typer.Option(help="SLURM: wait for the jobs to finish.")] = False,
    epochs: opt.Epochs = None,
    device: opt.DeviceOpt = opt.Device.auto,
    train_subset: opt.TrainSubset = None,
    batch_start: opt.BatchStart = None,
    batch_final: opt.BatchFinal = None,
    lr: opt.Lr = None,
    batch_growth: opt.Growth = None,
    lr_scaling: opt.Scaling = None,
    theta: opt.Theta = None,
    stable_loss: opt.StableLoss = None,
    layer_order: opt.Order = None,
    normalize_input: opt.NormalizeInput = None,
    validation: opt.Validation = None,
    eval_every: opt.EvalEvery = 0,
    runs_dir: opt.RunsDir = Path("runs"),
    data_dir: opt.DataDir = None,
    force: opt.Force = False,
    resume: opt.Resume = False,
    checkpoint_every: opt.CheckpointEvery = 10,
) -> None:
    """Submit one job per (experiment, seed) with submitit: local processes or a SLURM array."""
    from ffbench.sweep import SweepError, wait_for

    matrix = run_matrix(names, paper, config, reading, seed, seeds, sets, **flags(locals()))
    runs = runs_dir.resolve()
    try:
        jobs = api.submit_sweep(
            matrix, executor.value, runs_dir=runs, data_dir=data_dir, device=device.value,
            timeout_min=timeout_min, partition=partition, gpus_per_node=gpus_per_node,
            cpus_per_task=cpus_per_task, eval_every=eval_every, force=force, resume=resume,
            checkpoint_every=checkpoint_every, log=err.print,
        )  # fmt: skip
    except api.BadRequest as e:
        raise asked(e) from None
    except (SweepError, mnist.DataError) as e:
        fail(str(e))
    ids = " ".join(j.job_id for j in jobs)
    console.print(f"submitted {len(jobs)} jobs ({executor.value}): {ids}; logs in "
                  f"{runs / '.submitit'}", highlight=False)  # fmt: skip
    if executor == ExecutorKind.slurm and not wait:
        console.print("then `ffbench table`, or `--wait` to wait for them", highlight=False)
        return
    failed = 0
    for job, (label, outcome) in zip(jobs, wait_for(matrix, jobs, runs), strict=True):
        if isinstance(outcome, str):  # the job ended without a result: cancelled, killed
            failed += 1
            err.print(f"[bold red]error:[/] {outcome}", highlight=False, soft_wrap=True)
            continue
        r = outcome.result
        failed += r["status"] == "failed"
        acc = "NAN" if math.isnan(r["test_accuracy"]) else f"{r['test_accuracy']:.4f}"
        console.print(f"{label}: job {job.job_id} {r['status']}, test accuracy {acc} -> "
                      f"{outcome.path}", highlight=False)  # fmt: skip
    if failed:
        raise typer.Exit(1)


def find_study(name: str):
    from ffbench import studies

    try:
        return studies.get(name)
    except studies.UnknownStudy as e:
        raise typer.BadParameter(str(e), param_hint="NAME") from None


@app.command("study")
def run_study(
    name: Annotated[
        str,
        typer.Argument(
            help="The study: depth, depth_rates, fg_rates, fg_rates_40, ff_best_recipe."
        ),
    ],
    epochs: opt.Epochs = None,
    seed: opt.Seed = None,
    seeds: opt.Seeds = None,
    device: opt.DeviceOpt = opt.Device.auto,
    train_subset: opt.TrainSubset = None,
    eval_every: opt.EvalEvery = 0,
    runs_dir: opt.RunsDir = Path("runs"),
    data_dir: opt.DataDir = None,
    force: opt.Force = False,
    resume: opt.Resume = False,
    checkpoint_every: opt.CheckpointEvery = 10,
    jobs: opt.Jobs = 1,
    dry_run: opt.DryRun = False,
) -> None:
    """Run a study: each of its rows at each of its points (settings), x seeds; then `ffbench
    table --study NAME` and, for depth, `ffbench figure depth`."""
    chosen = find_study(name)
    matrix = []
    for point in chosen.settings():
        given = {"epochs": epochs, "train_subset": train_subset}  # --epochs shortens any point
        settings = point | {k: v for k, v in given.items() if v is not None}
        matrix += run_matrix(list(chosen.rows), False, None, readings.DEFAULT, seed, seeds,
                             **settings)  # fmt: skip
    launch(matrix, dry_run, device, jobs, runs_dir, data_dir, eval_every, force, resume,
           checkpoint_every)  # fmt: skip


@app.command("table")
def show_table(
    runs_dir: opt.RunsDir = Path("runs"),
    reading: Annotated[
        str | None, typer.Option("--reading", help="Only runs of this reading (default: all).")
    ] = None,
    side: Annotated[
        bool,
        typer.Option(
            "--side-by-side",
            help="One row per experiment, each reading's result beside the paper's.",
        ),
    ] = False,
    ablated: Annotated[
        str | None,
        typer.Option("--ablation", help="One row's runs (`ffbench ablate NAME`) and each change."),
    ] = None,
    study: Annotated[
        str | None,
        typer.Option(
            "--study",
            help="A study's runs (`ffbench study NAME`): rows x points, "
            "test error % (mean ± std, n).",
        ),  # fmt: skip
    ] = None,
    paper: Annotated[
        bool, typer.Option("--paper", help="Only the rows of the notes' table.")
    ] = False,
    fmt: opt.Format = results.TableFormat.rich,
    output: Annotated[
        Path | None, typer.Option("--output", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Aggregate every finished run under the runs dir, beside the paper's numbers."""
    views = [flag for flag, given in (("--side-by-side", side), ("--ablation", ablated),
                                      ("--study", study)) if given]  # fmt: skip
    if len(views) > 1:
        raise typer.BadParameter(f"give one of {', '.join(views)}", param_hint=views[1])
    if views and fmt in results.DATA_FORMATS:
        raise typer.BadParameter(
            f"{views[0]} prints rich, markdown or latex", param_hint="--format"
        )
    if ablated is not None:
        try:
            get(ablated)
        except UnknownExperiment as e:
            raise typer.BadParameter(str(e), param_hint="--ablation") from None
    if reading is not None:
        check_reading(reading)
    if not runs_dir.is_dir():
        fail(f"runs dir {runs_dir} does not exist; run `ffbench run NAME` or pass --runs-dir")
    title = f"ffbench results ({runs_dir})"
    if study is not None:
        chosen = find_study(study)
        header, rows = chosen.table(runs_dir)
        title = f"study {study}: {chosen.column.replace('_', ' ')} % ({runs_dir})"
    else:
        runs = results.load_runs(runs_dir, warn=warn)
        if reading is not None:
            runs = runs[runs.reading == reading]
        if paper:
            runs = runs[runs.experiment.isin(PAPER)]
        if runs.empty:
            err.print(f"no finished runs under {runs_dir}; run `ffbench run NAME` first")
            return
        if ablated:  # aggregates that row's runs itself
            header, rows = results.ablation(runs, ablated)
        elif fmt in results.DATA_FORMATS:
            emit(results.DATA_FORMATS[fmt](results.aggregate(runs)), output)
            return
        else:
            view = results.side_by_side if side else results.display_rows
            header, rows = view(results.aggregate(runs))
    if fmt in results.TEXT_FORMATS:
        emit(results.TEXT_FORMATS[fmt](header, rows), output)
        return
    table = results.rich_table(header, rows, title)
    if output is None:
        console.print(table)
        return
    buffer = io.StringIO()
    Console(file=buffer, width=200).print(table)
    emit(buffer.getvalue(), output)


def emit(text: str, output: Path | None) -> None:
    """`text` to stdout, or written whole to `output` (tmp + rename)."""
    if output is None:
        sys.stdout.write(text)
        return
    try:
        write_atomic(output, text)
    except OSError as e:
        fail(f"cannot write {output} ({e.strerror}); pass another --output")
    err.print(f"wrote {output}", highlight=False)


@app.command("data")
def fetch_data(
    data_dir: opt.DataDir = None,
    refetch: Annotated[bool, typer.Option(help="Delete and fetch the raw files again.")] = False,
) -> None:
    """Fetch MNIST and verify the md5 of its four raw files."""
    root = data_dir or mnist.default_data_dir()
    try:
        path = mnist.fetch(root, refetch=refetch, log=err.print)
    except mnist.DataError as e:
        fail(str(e))
    console.print(f"MNIST ok: {path}", highlight=False)


class BenchFormat(str, Enum):
    rich = "rich"
    json = "json"


@app.command("bench")
def benchmark(
    device: opt.DeviceOpt = opt.Device.auto,
    batch: Annotated[
        list[int] | None, typer.Option(min=1, help="Batch size; repeat for several.")
    ] = None,
    fmt: Annotated[BenchFormat, typer.Option("--format", help="Output format.")] = BenchFormat.rich,
    data_dir: opt.DataDir = None,
    reading: opt.ReadingOpt = readings.DEFAULT,
) -> None:
    """Training speed against this device's matmul peak, beside a plain reference loop."""
    import json

    from rich.table import Table

    from ffbench.bench import bench

    dev = resolve_device(device)
    check_reading(reading)
    try:
        data = mnist.load(data_dir or mnist.default_data_dir(), dev, log=err.print)
    except mnist.DataError as e:
        fail(str(e))
    rows = bench(data, dev, batch or [3200, 60000], reading=reading)
    if fmt == BenchFormat.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    peak = rows[0]["peak_gflops"]
    out = Table(title=f"ffbench bench on {dev}, {reading} reading (peak {peak:.0f} GFLOP/s)")
    keys = [k for k in rows[0] if k not in ("device", "reading", "peak_gflops")]
    for k in keys:
        out.add_column(k, justify="right")
    for r in rows:
        out.add_row(*(str(r[k]) if isinstance(r[k], int) else f"{r[k]:.3g}" for k in keys))
    console.print(out)


app.add_typer(figure_app, name="figure")  # ffbench/cli_figures.py
app.command("plot")(plot_runs)


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM ends a run the way Ctrl-C does: interrupted, resumable


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    app()
