"""ffbench from Python (a notebook, a script): the same runs, run directories and table as the
command line, which is a thin layer over these functions.

    import ffbench
    r = ffbench.run("adj_FFA0_1", epochs=20, train_subset=5000)   # one RunResult
    r.test_accuracy, r.train_seconds, r.records.tail()           # records: a DataFrame
    ffbench.define("wide", base="DNN_base", sizes=(784, 2000, 10))  # a new row, by name
    ffbench.run("wide", seeds=[0, 1, 2], epochs=20)               # a list of RunResults
    ffbench.table("runs")                                          # what `ffbench table` prints
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from rich.console import Console
from torch import device as torch_device

from ffbench import methods, rows
from ffbench.core import data as mnist
from ffbench.core.settings import (
    FIELDS,
    HINTS,
    Experiment,
    SettingError,
    parse_setting,
    settings_text,
)
from ffbench.methods import Method
from ffbench.report import document
from ffbench.report import table as tables
from ffbench.report.studies import study_table
from ffbench.rows import PAPER_ROWS, REGISTRY, UnknownExperiment, derive, readings, studies
from ffbench.rows.files import ConfigError, load_rows
from ffbench.rows.paper import PAPER
from ffbench.runner import RunOptions, slurm
from ffbench.runner.bench import bench
from ffbench.runner.local import LaunchError, resolve_device, run_matrix
from ffbench.runner.plan import FLAGS, BadRequest, Matrix, ablation, check_reading, plan
from ffbench.runner.progress import Screen
from ffbench.runner.store import (
    RESULT,
    Outcome,
    environment,
    read_json,
    run_dir,
    run_state,
    write_atomic,
    write_json,
)

DEFAULT_READING, overrides = readings.DEFAULT, rows.overrides
DEFAULT_OPTIONS, DEFAULT_SLURM = RunOptions(), slurm.SlurmOptions()


@dataclass(frozen=True)
class RunResult:
    """One run: what its result.json says, and where its files are."""

    experiment: str
    reading: str
    seed: int
    status: str  # finished, diverged or failed
    test_accuracy: float  # a fraction; NaN where the run did not finish
    train_seconds: float
    diverged_epoch: int | None
    error: str | None
    path: Path
    skipped: bool  # a finished run was already there (force=True runs it again)

    @classmethod
    def of(cls, out: Outcome) -> RunResult:
        r = out.result
        return cls(r["experiment"], r["reading"], r["seed"], r["status"],
                   float(r["test_accuracy"]), float(r.get("train_seconds", math.nan)),
                   r.get("diverged_epoch"), r.get("error"), out.path, out.skipped)  # fmt: skip

    @property
    def records(self) -> pd.DataFrame:
        """One row per epoch (metrics.csv): epoch, batch, rate, loss, test accuracy, seconds."""
        path = self.path / "metrics.csv"
        return pd.read_csv(path) if path.exists() else pd.DataFrame()

    @property
    def config(self) -> dict:
        """Every setting of the run (config.json), its reading and where its row came from."""
        return read_json(self.path / "config.json")


def experiments(reading: str = DEFAULT_READING) -> dict[str, Experiment]:
    """Every registered row by name, the paper's rows under `reading` (rows beyond the notes
    and derived rows keep their own)."""
    check_reading(reading)
    return {name: rows.under(exp, reading) for name, exp in REGISTRY.items()}


def register(exp: Experiment) -> Experiment:
    """Register a row built from scratch (it runs exactly as written)."""
    try:
        return rows.register(exp)
    except (ValueError, methods.UnknownMethod) as e:
        raise BadRequest(str(e), "NAMES") from None


def define(name: str, base: str, reading: str = DEFAULT_READING, description: str = "",
           **settings) -> Experiment:  # fmt: skip
    """Register a new row: the registered row `base` under `reading` with `settings` changed
    (any setting its method reads, e.g. theta=1.0, sizes=(784, 2000, 10)). `run(name)` then
    runs it; its run directories and table rows carry its name, and the table shows the settings
    that differ from `base` as overrides."""
    if name in REGISTRY:
        raise BadRequest(f"a row named {name} is registered already; pick another name", "name")
    check_reading(reading)
    try:
        exp = derive(name, base, reading, settings, source="python", description=description)
    except UnknownExperiment as e:
        raise BadRequest(str(e), "base") from None
    except SettingError as e:
        raise BadRequest(str(e), "--set") from None
    REGISTRY[name] = exp
    return exp


def select(names: Sequence[str | Experiment] = (), seeds: Sequence[int] = (0,),
           reading: str = DEFAULT_READING, settings: dict | None = None, sets: Sequence[str] = (),
           paper: bool = False, config: Path | None = None) -> Matrix:  # fmt: skip
    """`plan` of what a command names: the rows (`names`), the paper's with `paper`, and a config
    file's rows (all of them, or those named), with `settings` and the `sets` (KEY=VALUE text)
    applied."""
    check_reading(reading)
    asked: list[str | Experiment] = list(names) + (PAPER_ROWS if paper else [])
    if config is not None:
        try:
            from_file = {exp.name: exp for exp in load_rows(config, reading)}
        except ConfigError as e:
            raise BadRequest(str(e), "--config") from None
        named = [from_file.get(row, row) for row in asked]
        asked = named if any(r in from_file for r in asked) else named + list(from_file.values())
    settings = dict(settings or {})
    for assignment in sets:
        try:
            key, value = parse_setting(assignment)
        except SettingError as e:
            raise BadRequest(str(e), "--set") from None
        settings[key] = value
    return plan(asked, seeds, reading, settings)


def ablate(name: str, seeds: Sequence[int] = (0,), reading: str = DEFAULT_READING,
           toward: str = "text", settings: dict | None = None) -> Matrix:  # fmt: skip
    """`name` under `reading` and once more with each switch its method reads flipped to
    `toward`'s choice, one at a time (what each difference between the readings does)."""
    return ablation(plan([name], seeds, reading, settings), toward)


def study(name: str, seeds: Sequence[int] = (0,), settings: dict | None = None) -> Matrix:
    """A study's rows at each of its points x `seeds`; `settings` (--epochs, --train-subset)
    apply on top of every point."""
    chosen = find_study(name)
    return [run for point in chosen.settings()
            for run in plan(list(chosen.rows), seeds, DEFAULT_READING,
                            point | (settings or {}))]  # fmt: skip


def find_study(name: str) -> studies.Study:
    try:
        return studies.get(name)
    except studies.UnknownStudy as e:
        raise BadRequest(str(e), "NAME") from None


def execute(matrix: Matrix, options: RunOptions = DEFAULT_OPTIONS,
            screen: Screen | None = None) -> list[Outcome]:  # fmt: skip
    """Run a planned matrix: here one after another, or `options.jobs` at a time in worker
    processes (CPU only). Raises BadRequest before anything is written, LaunchError when a run
    cannot go on."""
    return run_matrix(matrix, options, screen or Screen(Console(), Console(stderr=True)))


def dry_run(matrix: Matrix, options: RunOptions) -> list[tuple[Experiment, int, Path, str]]:
    """(row, seed, run directory, its state) for each run of the matrix; nothing is written."""
    device = resolve_device(options.device).type
    paths = [run_dir(options.runs_dir, exp, s, device) for exp, s in matrix]
    return [(exp, s, path, run_state(path)) for (exp, s), path in zip(matrix, paths, strict=True)]


def sweep(matrix: Matrix, options: RunOptions = DEFAULT_OPTIONS,
          cluster: slurm.SlurmOptions = DEFAULT_SLURM, log=print) -> list:  # fmt: skip
    """Submit a planned matrix to SLURM as one job array (submitit), one job per run. Returns
    the submitit jobs in the matrix's order (`ffbench.api.slurm.wait_for` waits for them)."""
    return slurm.submit(matrix, options, cluster, log)


def run(experiment: str | Experiment | Sequence[str | Experiment], seeds: int | Sequence[int] = 0,
        reading: str = DEFAULT_READING, *, runs_dir: Path | str = "runs", device: str = "auto",
        jobs: int = 1, eval_every: int = 0, force: bool = False, resume: bool = False,
        checkpoint_every: int = 10, data_dir: Path | str | None = None, progress: bool = True,
        **settings) -> RunResult | list[RunResult]:  # fmt: skip
    """Train a row (by name, or an Experiment) or several, each seed into its own run
    directory under `runs_dir`, exactly as `ffbench run` does; a finished run already there is
    returned, not repeated (force=True repeats it). `settings` change any setting the rows'
    methods read (epochs=20, train_subset=5000, theta=1.0). One RunResult for one row and one
    seed, else a list in (row, seed) order. Progress: one bar (terminal, notebook) or one line
    per epoch; progress=False prints nothing but errors."""
    many = not isinstance(experiment, str | Experiment) or not isinstance(seeds, int)
    names = [experiment] if isinstance(experiment, str | Experiment) else list(experiment)
    seed_list = [seeds] if isinstance(seeds, int) else list(seeds)
    if not seed_list or any(not isinstance(s, int) or s < 0 for s in seed_list):
        raise BadRequest(f"seeds={seeds!r}: give an integer >= 0 or a list of them", "--seed")
    matrix = plan(names, seed_list, reading, settings)
    options = RunOptions(Path(runs_dir), Path(data_dir) if data_dir else None, device, jobs,
                         eval_every, force, resume, checkpoint_every)  # fmt: skip
    screen = Screen(Console(quiet=not progress), Console(stderr=True))
    found = [RunResult.of(out) for out in execute(matrix, options, screen)]
    return found if many else found[0]


def load_runs(runs_dir: Path | str = "runs", warn=print) -> pd.DataFrame:
    """One row per run directory with a result.json under `runs_dir`: experiment, reading,
    overrides, seed, status, test_accuracy (a fraction), train_seconds, settings, path."""
    if not Path(runs_dir).is_dir():
        raise BadRequest(f"runs dir {runs_dir} does not exist; run `ffbench run NAME` or pass "
                         "--runs-dir", "--runs-dir")  # fmt: skip
    return tables.load_runs(Path(runs_dir), warn)


def table(runs_dir: Path | str = "runs", reading: str | None = None) -> pd.DataFrame:
    """The table `ffbench table` prints: one row per experiment, reading, overrides and device
    type, with n, the accuracy's mean and std in percent, time, and the paper's numbers."""
    runs = load_runs(runs_dir)
    if reading is not None:
        check_reading(reading)
        runs = runs[runs.reading == reading]
    return tables.aggregate(runs)


VIEWS = {"rows": tables.display_rows, "side_by_side": tables.side_by_side}


def table_view(runs_dir: Path | str = "runs", view: str = "rows", reading: str | None = None,
               paper: bool = False, ablated: str | None = None, study_name: str | None = None,
               warn=print) -> tuple[str, list[str], list[list]] | pd.DataFrame | None:  # fmt: skip
    """What `ffbench table` shows: (title, header, rows) of a view of the runs, or the
    aggregated DataFrame for view="data"; None when no finished run matches."""
    if ablated is not None:
        try:
            rows.get(ablated)
        except UnknownExperiment as e:
            raise BadRequest(str(e), "--ablation") from None
    if reading is not None:
        check_reading(reading)
    chosen = find_study(study_name) if study_name is not None else None
    runs, title = load_runs(runs_dir, warn), f"ffbench results ({runs_dir})"
    if chosen is not None:
        title = f"study {chosen.name}: {chosen.column.replace('_', ' ')} % ({runs_dir})"
        return (title, *study_table(chosen, Path(runs_dir)))
    runs = runs[runs.reading == reading] if reading is not None else runs
    runs = runs[runs.experiment.isin(PAPER)] if paper else runs
    if runs.empty:
        return None
    if ablated:  # aggregates that row's runs itself
        return (title, *tables.ablation(runs, ablated))
    if view == "data":
        return tables.aggregate(runs)
    return (title, *VIEWS[view](tables.aggregate(runs)))


def report(runs_dir: Path | str = "runs", output: Path | str | None = None,
           readme: Path | str | None = None) -> tuple[list, list]:  # fmt: skip
    """Write the report of `runs_dir` (report.md, report/*.png, report.html) into `output`
    (default: `runs_dir`) from its files alone, and the README's generated blocks into
    `readme`; the files written and the sections left out."""
    if not Path(runs_dir).is_dir() or not any(Path(runs_dir).rglob(RESULT)):
        raise BadRequest(f"{runs_dir} holds no runs; run `ffbench run NAME` (or `make "
                         "reproduce`) first, or pass --runs-dir", "--runs-dir")  # fmt: skip
    try:
        return document.write(Path(runs_dir), Path(output or runs_dir), readme and Path(readme))
    except ValueError as e:  # no finished run among them
        raise BadRequest(str(e), "--runs-dir") from None


def readings_table() -> tuple[list[str], list[list[str]], str]:
    """Header, rows and caption of `ffbench readings`: every switch under every reading."""
    header, lines = readings.switch_table()
    caption = "".join(f"{r.name}: {r.description}.  " for r in readings.READINGS.values())
    return header, lines, caption


def listing(reading: str = DEFAULT_READING) -> tuple[list[str], list[list[str]]]:
    """Header and rows of `ffbench list`: each row's settings and the paper's numbers."""
    header = ["Name", "Net", "Method", "Loss", "Opt", "Rate", "Rate growth", "Epochs", "Batch",
              "Paper %", "Paper time"]  # fmt: skip
    lines = []
    for exp in experiments(reading).values():
        paper = PAPER.get(exp.name)
        acc = "" if paper is None else "NAN" if math.isnan(paper.accuracy) else f"{paper.accuracy}"
        cooled = f", cooled over the last {exp.cooldown:.0%}" if exp.cooldown else ""
        dnn = "dnn_output" in methods.get(exp.method).reads
        lines.append([
            exp.name, "-".join(map(str, exp.sizes)), exp.method,
            exp.dnn_output.value if dnn else exp.loss.value, exp.optimizer.value, f"{exp.lr:g}",
            exp.lr_scaling.value + cooled, str(exp.epochs), f"{exp.batch_start}→{exp.batch_final}",
            acc, paper.time if paper else "",
        ])  # fmt: skip
    return header, lines


def fetch_data(data_dir: Path | None = None, refetch: bool = False, log=print) -> Path:
    """Fetch MNIST into `data_dir` and verify the md5 of its four raw files."""
    return mnist.fetch(data_dir or mnist.default_data_dir(), refetch=refetch, log=log)


def load_data(data_dir: Path | None = None, device: str = "cpu", n: int | None = None, log=print):
    """MNIST on `device` (the first `n` training images), fetched if needed."""
    return mnist.load(data_dir or mnist.default_data_dir(), device, n, log=log)


def benchmark(device: str = "auto", batches: Sequence[int] = (3200, 60000),
              reading: str = DEFAULT_READING, data_dir: Path | None = None,
              log=print) -> list[dict]:  # fmt: skip
    """The measurements of `ffbench bench`, one dict per batch size."""
    dev = resolve_device(device)
    check_reading(reading)
    return bench(load_data(data_dir, dev, log=log), dev, list(batches), reading=reading)


def save_bench(rows: list[dict], runs_dir: Path | str) -> Path:
    """`ffbench bench`'s measurements as RUNS/bench/<time>-<device>-<reading>.json, with the
    machine they were made on (env.json's fields), for the report's speed section."""
    device = torch_device(rows[0]["device"])
    folder = Path(runs_dir) / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    path = folder / f"{stamp}-{device.type}-{rows[0]['reading']}.json"
    write_json(path, {"environment": environment(device), "rows": rows})
    return path


def write_text(path: Path, text: str) -> None:
    """`text` written whole to `path` (tmp + rename)."""
    write_atomic(path, text)


DataError = mnist.DataError
__all__ = ["BadRequest", "DataError", "Experiment", "FIELDS", "FLAGS", "HINTS", "LaunchError",
           "Matrix", "Method", "PAPER_ROWS", "RunOptions", "RunResult", "Screen",
           "define", "experiments", "load_runs", "overrides", "plan", "register", "run",
           "settings_text", "slurm", "table"]  # fmt: skip
