"""The `ffbench` command line, a thin layer over `ffbench.api`: list, readings, run, ablate,
sweep, study, table, data, bench; figure and plot are in ffbench/cli/figures.py."""

from __future__ import annotations

import io
import json
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ffbench import api
from ffbench.cli import options as opt
from ffbench.cli.figures import figure_app, plot_runs
from ffbench.cli.terminal import asked, console, err, fail, warn
from ffbench.report import formats

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click errors: one line naming the problem and the fix
    help="Reproduce and extend the MNIST table of the Notes on the Forward-Forward Algorithm.",
)


def planned(make, *args, **kwargs) -> api.Matrix:
    """The matrix an api planner gives, or its bad request as a usage error."""
    try:
        return make(*args, **kwargs)
    except api.BadRequest as e:
        raise asked(e) from None


def show(header: list[str], rows: list[list[str]], title: str, caption: str = "",
         lines: bool = False, right: set[str] | None = None) -> None:  # fmt: skip
    console.print(formats.rich_table(header, rows, title, caption, lines, right))


@app.command("list")
def list_experiments(reading: opt.ReadingOpt = api.DEFAULT_READING) -> None:
    """The registered experiments under a reading, with their settings and the paper's numbers."""
    header, rows = planned(api.listing, reading)
    show(header, rows, f"ffbench experiments ({reading} reading for the paper rows)")


@app.command("readings")
def show_readings(
    fmt: Annotated[
        formats.TableFormat, typer.Option("--format", help="rich or markdown.")
    ] = formats.TableFormat.rich,
) -> None:
    """The readings side by side: every interpretation switch, its value under each reading,
    and where the notes and the authors' code stand (file:line)."""
    header, rows, caption = api.readings_table()
    if fmt == formats.TableFormat.markdown:
        sys.stdout.write(formats.markdown(header, rows))
        return
    if fmt != formats.TableFormat.rich:
        raise typer.BadParameter("readings prints rich or markdown", param_hint="--format")
    show(header, rows, "ffbench readings", caption, lines=True)


@app.command()
@opt.uses(opt.SELECT, opt.SETTINGS, opt.RUN)
def run(dry_run: opt.DryRun = False, *, selection: dict, settings: dict,
        options: api.RunOptions) -> None:  # fmt: skip
    """Train experiments (x seeds), each into its own run directory, `--jobs` at a time."""
    launch(select(selection, settings), dry_run, options)


def select(selection: dict, settings: dict) -> api.Matrix:
    return planned(api.select, settings=settings, **selection)


@app.command()
@opt.uses(opt.SELECT.only("reading", "seed", "seeds"), opt.SETTINGS.only("epochs", "train_subset"),
          opt.RUN)  # fmt: skip
def ablate(
    name: Annotated[str, typer.Argument(help="The row, e.g. adj_FFA0_1.")],
    toward: Annotated[str, typer.Option(help="The reading each switch is flipped to.")] = "text",
    dry_run: opt.DryRun = False, *, selection: dict, settings: dict, options: api.RunOptions,
) -> None:  # fmt: skip
    """NAME under --reading, and once more with each switch it reads flipped to --toward's
    choice, one at a time: what each difference between the readings does (`ffbench table`
    shows the flipped switch under Overrides)."""
    matrix = planned(api.ablate, name, selection["seeds"], selection["reading"], toward, settings)
    launch(matrix, dry_run, options)


def launch(matrix: api.Matrix, dry_run: bool, options: api.RunOptions) -> None:
    """Run a matrix of (experiment, seed) with `ffbench.api`, or show it (`--dry-run`); exit 1
    when a run failed."""
    try:
        if dry_run:
            show_matrix(matrix, options)
            return
        outcomes = api.execute(matrix, options, api.Screen(console, err))
    except api.BadRequest as e:
        raise asked(e) from None
    except api.LaunchError as e:
        fail(str(e), e.code)
    if any(out.result["status"] == "failed" for out in outcomes):
        raise typer.Exit(1)


def show_matrix(matrix: api.Matrix, options: api.RunOptions) -> None:
    """The runs a command would do, and what state each is in; nothing is written."""
    rows = [[exp.name, str(s), api.settings_text(api.overrides(exp)), str(path), state]
            for exp, s, path, state in api.dry_run(matrix, options)]  # fmt: skip
    show(["Experiment", "Seed", "Overrides", "Run dir", "State"], rows,
         f"run matrix ({len(matrix)} runs under {options.runs_dir})")  # fmt: skip


class Executor(str, Enum):
    slurm = "slurm"
    local = "local"  # replaced by `ffbench run --jobs N`: refused with a pointer


@app.command()
@opt.uses(opt.SELECT, opt.SETTINGS, opt.RUN)
def sweep(
    executor: Annotated[Executor, typer.Option(help="Where the jobs run.")] = Executor.slurm,
    partition: Annotated[str | None, typer.Option(help="SLURM partition.")] = None,
    gpus_per_node: Annotated[int, typer.Option(min=0, help="GPUs per job.")] = 0,
    cpus_per_task: Annotated[int | None, typer.Option(min=1, help="SLURM CPUs per job.")] = None,
    timeout_min: Annotated[int, typer.Option(min=1, help="Time limit of each job.")] = 120,
    wait: Annotated[bool, typer.Option(help="Wait for the jobs to finish.")] = False,
    *, selection: dict, settings: dict, options: api.RunOptions,
) -> None:  # fmt: skip
    """Submit one SLURM job per (experiment, seed) with submitit, as one job array."""
    if executor == Executor.local:
        raise typer.BadParameter("runs here at once are `ffbench run --jobs N` now; give it the "
                                 "same rows and options", param_hint="--executor")  # fmt: skip
    matrix = select(selection, settings)
    cluster = api.slurm.SlurmOptions(timeout_min, partition, gpus_per_node, cpus_per_task)
    try:
        jobs = api.sweep(matrix, options, cluster, log=err.print)
    except api.BadRequest as e:
        raise asked(e) from None
    except (api.slurm.SweepError, api.DataError) as e:
        fail(str(e))
    runs = options.runs_dir.resolve()
    ids = " ".join(j.job_id for j in jobs)
    console.print(f"submitted {len(jobs)} jobs (slurm): {ids}; logs in {runs / '.submitit'}",
                  highlight=False)  # fmt: skip
    if not wait:
        console.print("then `ffbench table`, or `--wait` to wait for them", highlight=False)
        return
    failed, screen = 0, api.Screen(console, err)
    for job, (label, outcome) in zip(jobs, api.slurm.wait_for(matrix, jobs, runs), strict=True):
        if isinstance(outcome, str):  # the job ended without a result: cancelled, killed
            failed += 1
            err.print(f"[bold red]error:[/] {outcome}", highlight=False, soft_wrap=True)
            continue
        failed += outcome.result["status"] == "failed"
        screen.report(label, outcome, f"job {job.job_id} ")
    if failed:
        raise typer.Exit(1)


@app.command("study")
@opt.uses(opt.SELECT.only("seed", "seeds"), opt.SETTINGS.only("epochs", "train_subset"), opt.RUN)
def run_study(
    name: Annotated[str, typer.Argument(help=f"The study: {', '.join(api.studies.STUDIES)}.")],
    dry_run: opt.DryRun = False, *, selection: dict, settings: dict, options: api.RunOptions,
) -> None:  # fmt: skip
    """Run a study: each of its rows at each of its points (settings), x seeds; then `ffbench
    table --study NAME` and, for depth, `ffbench figure depth`."""
    launch(planned(api.study, name, selection["seeds"], settings), dry_run, options)


@app.command("table")
def show_table(
    runs_dir: opt.RunsDir = Path("runs"),
    reading: Annotated[str | None, typer.Option(
        "--reading", help="Only runs of this reading (default: all).")] = None,
    side: Annotated[bool, typer.Option("--side-by-side", help="One row per experiment, each "
                    "reading's result beside the paper's.")] = False,
    ablated: Annotated[str | None, typer.Option(
        "--ablation", help="One row's runs (`ffbench ablate NAME`) and each change.")] = None,
    study: Annotated[str | None, typer.Option("--study", help="A study's runs (`ffbench study "
                     "NAME`): rows x points, test error % (mean ± std, n).")] = None,
    paper: Annotated[bool, typer.Option("--paper", help="Only the rows of the notes' table.")]
    = False,
    fmt: opt.Format = formats.TableFormat.rich,
    output: Annotated[Path | None, typer.Option(
        "--output", help="Write to this file instead of stdout.")] = None,
) -> None:  # fmt: skip
    """Aggregate every finished run under the runs dir, beside the paper's numbers."""
    views = [flag for flag, given in (("--side-by-side", side), ("--ablation", ablated),
                                      ("--study", study)) if given]  # fmt: skip
    if len(views) > 1:
        raise typer.BadParameter(f"give one of {', '.join(views)}", param_hint=views[1])
    data = fmt in formats.DATA_FORMATS
    if views and data:
        raise typer.BadParameter(f"{views[0]} prints rich, markdown or latex",
                                 param_hint="--format")  # fmt: skip
    view = "data" if data else "side_by_side" if side else "rows"
    try:
        shown = api.table_view(runs_dir, view, reading, paper, ablated, study, warn=warn)
    except api.BadRequest as e:
        if e.param == "--runs-dir":
            fail(str(e))
        raise asked(e) from None
    if shown is None:
        err.print(f"no finished runs under {runs_dir}; run `ffbench run NAME` first")
        return
    if data:
        emit(formats.DATA_FORMATS[fmt](shown), output)
        return
    title, header, rows = shown
    if fmt in formats.TEXT_FORMATS:
        emit(formats.TEXT_FORMATS[fmt](header, rows), output)
        return
    table = formats.rich_table(header, rows, title)
    if output is None:
        console.print(table)
        return
    buffer = io.StringIO()
    Console(file=buffer, width=200).print(table)
    emit(buffer.getvalue(), output)


@app.command("report")
def write_report(
    runs_dir: opt.RunsDir = Path("runs"),
    output: Annotated[Path | None, typer.Option(
        "--output", help="Folder of report.md, report.html and report/ (default: the runs dir).")]
    = None,
    readme: Annotated[Path | None, typer.Option(
        "--readme", help="Also write the README's generated blocks (the headline table, the "
        "timing), each between its markers.")]
    = None,
) -> None:  # fmt: skip
    """The report of a runs directory from its files alone: Markdown and a self-contained HTML
    page, its tables and figures."""
    try:
        written, left_out = api.report(runs_dir, output, readme)
    except api.BadRequest as e:
        raise asked(e) from None
    console.print(f"wrote {written[-2]} and {written[-1]} ({len(written) - 2} figures)",
                  highlight=False)  # fmt: skip
    if left_out:
        err.print(f"left out: {'; '.join(left_out)}", highlight=False, soft_wrap=True)


def emit(text: str, output: Path | None) -> None:
    """`text` to stdout, or written whole to `output` (tmp + rename)."""
    if output is None:
        sys.stdout.write(text)
        return
    try:
        api.write_text(output, text)
    except OSError as e:
        fail(f"cannot write {output} ({e.strerror}); pass another --output")
    err.print(f"wrote {output}", highlight=False)


@app.command("data")
def fetch_data(
    data_dir: opt.DataDir = None,
    refetch: Annotated[bool, typer.Option(help="Delete and fetch the raw files again.")] = False,
) -> None:
    """Fetch MNIST and verify the md5 of its four raw files."""
    try:
        path = api.fetch_data(data_dir, refetch, log=err.print)
    except api.DataError as e:
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
    reading: opt.ReadingOpt = api.DEFAULT_READING,
    save: Annotated[bool, typer.Option("--save", help="Also write the measurements to "
                    "RUNS/bench/*.json, where `ffbench report` reads them.")] = False,
    runs_dir: opt.RunsDir = Path("runs"),
) -> None:  # fmt: skip
    """Training speed against this device's matmul peak, beside a plain reference loop."""
    try:
        rows = api.benchmark(device.value, batch or [3200, 60000], reading, data_dir, err.print)
    except api.BadRequest as e:
        raise asked(e) from None
    except api.DataError as e:
        fail(str(e))
    if save:
        err.print(f"wrote {api.save_bench(rows, runs_dir)}", highlight=False)
    if fmt == BenchFormat.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    first = rows[0]
    keys = [k for k in first if k not in ("device", "reading", "peak_gflops")]
    shown = [[str(r[k]) if isinstance(r[k], int) else f"{r[k]:.3g}" for k in keys] for r in rows]
    show(keys, shown, f"ffbench bench on {first['device']}, {reading} reading "
         f"(peak {first['peak_gflops']:.0f} GFLOP/s)", right=set(keys))  # fmt: skip


app.add_typer(figure_app, name="figure")  # ffbench/cli/figures.py
app.command("plot")(plot_runs)


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM ends a run the way Ctrl-C does: interrupted, resumable


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    app()
