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

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from rich.console import Console

from ffbench import data as mnist
from ffbench import readings, results
from ffbench.data import FULL_TRAIN
from ffbench.experiment import (
    BUILTIN,
    PAPER_ROWS,
    REGISTRY,
    Experiment,
    Method,
    Negatives,
    SettingError,
    UnknownExperiment,
    check_setting,
    derive,
    get,
    under,
)
from ffbench.launch import Screen, run_parallel, run_serial
from ffbench.runner import Outcome, check_writable, read_json


class BadRequest(ValueError):
    """A request that cannot run: an unknown row or reading, a bad setting, no GPU, a runs dir
    that cannot be written. The message names the problem and the fix; `param` is the
    command-line option it came from."""

    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


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
        return cls(r["experiment"], r.get("reading", "text"), r["seed"], r["status"],
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


def experiments(reading: str = readings.DEFAULT) -> dict[str, Experiment]:
    """Every registered row by name, the paper's rows under `reading` (rows beyond the notes
    and derived rows keep their own)."""
    check_reading(reading)
    return {name: under(exp, reading) for name, exp in REGISTRY.items()}


def define(
    name: str,
    base: str,
    reading: str = readings.DEFAULT,
    description: str = "",
    **settings,
) -> Experiment:
    """Register a new row: the registered row `base` under `reading` with `settings` changed
    (any field of Experiment, e.g. theta=1.0, sizes=(784, 2000, 10)). `run(name)` then runs it;
    its run directories and table rows carry its name, and the settings that differ from
    `base` as overrides."""
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


def check_reading(reading: str) -> None:
    try:
        readings.get(reading)
    except readings.UnknownReading as e:
        raise BadRequest(str(e), "--reading") from None


def plan(
    rows: Sequence[str | Experiment],
    seeds: Sequence[int],
    reading: str = readings.DEFAULT,
    settings: dict | None = None,
) -> list[tuple[Experiment, int]]:
    """(row with `settings` changed, seed) for every run asked for: a row by name is the
    registered one under `reading`, an Experiment runs as it is. A row named twice is one run,
    not a second run racing the first for its directory."""
    if not rows:
        raise BadRequest("name at least one experiment, or pass --paper", "NAMES")
    check_reading(reading)
    typed = {}
    for key, value in (settings or {}).items():
        try:
            typed[key] = check_setting(key, value)
        except SettingError as e:
            raise BadRequest(str(e), FLAGS.get(key, "--set")) from None
    exps = []
    for row in rows:
        try:  # a name is the registered row under the reading; an Experiment is taken as is
            exp = row if isinstance(row, Experiment) else under(get(row), reading)
        except UnknownExperiment as e:
            raise BadRequest(str(e), "NAMES") from None
        exp = dataclasses.replace(exp, **typed)
        if exp.batch_final < exp.batch_start:
            raise BadRequest(
                f"the final batch ({exp.batch_final}) is smaller than the start batch "
                f"({exp.batch_start}); pass --batch-final >= --batch-start",
                "--batch-final",
            )
        if exp.validation >= (exp.train_subset or FULL_TRAIN):
            raise BadRequest(
                f"--validation {exp.validation} leaves no training images of "
                f"{exp.train_subset or FULL_TRAIN}; hold out fewer", "--validation",
            )  # fmt: skip
        drawn = NEGATIVES_OF.get(exp.method, (exp.negatives,))
        if exp.negatives not in drawn:
            raise BadRequest(
                f"{exp.name} draws no {exp.negatives.value} negatives; "
                f"--set negatives={' or '.join(n.value for n in drawn)}", "--set",
            )  # fmt: skip
        exps.append(exp)
    for key in typed.keys() & READ_ONLY_BY.keys():
        if not any(exp.method in READ_ONLY_BY[key] for exp in exps):
            readers = " and ".join(m.value for m in READ_ONLY_BY[key])
            raise BadRequest(f"no experiment named reads {FLAGS[key]} (only {readers} rows "
                             "do); drop it", FLAGS[key])  # fmt: skip
    return list(dict.fromkeys((exp, s) for exp in exps for s in seeds))


# The command line's own options for some settings; the others come with --set.
FLAGS = {k: "--" + k.replace("_", "-") for k in (
    "epochs", "train_subset", "batch_start", "batch_final", "lr", "batch_growth", "lr_scaling",
    "theta", "layer_order", "validation")} | {"stable_loss": "--stable-loss/--literal-loss",
                                "normalize_input": "--normalize-input/--raw-input"}  # fmt: skip


# The negatives each FF method can draw (ff.py NEGATIVES, ff_best.py negative_labels).
NEGATIVES_OF = {Method.ff: (Negatives.other_image, Negatives.wrong_label),
                Method.ff_best: (Negatives.hard, Negatives.wrong_label)}  # fmt: skip

# Settings only some methods read: asked of rows that all ignore it, the run would not change.
READ_ONLY_BY = {"theta": {Method.ff, Method.ff_best}, "stable_loss": {Method.ff},
                "layer_order": {Method.ff}, "normalize_input": {Method.ff}}  # fmt: skip


def resolve_device(device: str) -> torch.device:
    if device not in ("auto", "cpu", "cuda"):
        raise BadRequest(f"device {device!r} is not auto, cpu or cuda", "--device")
    if device == "cuda" and not torch.cuda.is_available():
        raise BadRequest("no CUDA GPU is available here; use --device cpu or auto", "--device")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def user_rows(matrix: list[tuple[Experiment, int]]) -> list[Experiment]:
    """Rows registered after import (a notebook's `register`): a worker process that starts
    fresh gets them with its job, since only the package's own rows are registered there."""
    names = {exp.name for exp, _ in matrix if exp.base is None and exp.name not in BUILTIN}
    return [REGISTRY[name] for name in sorted(names)]


def execute_matrix(
    matrix: list[tuple[Experiment, int]],
    runs_dir: Path | str = "runs",
    device: str = "auto",
    jobs: int = 1,
    eval_every: int = 0,
    force: bool = False,
    resume: bool = False,
    checkpoint_every: int = 10,
    data_dir: Path | str | None = None,
    screen: Screen | None = None,
) -> list[Outcome]:
    """Run a planned matrix into `runs_dir`: here one after another, or `jobs` at a time in
    worker processes (CPU only). Returns each run's outcome, in the matrix's order. Raises
    BadRequest before anything is written, LaunchError when a run cannot go on."""
    dev = resolve_device(device)
    if jobs > 1 and dev.type == "cuda":
        raise BadRequest(
            "runs at once would share one GPU; use --jobs 1, or `ffbench sweep` on a cluster",
            "--jobs",
        )
    runs_dir = Path(runs_dir)
    try:
        check_writable(runs_dir)
    except OSError as e:
        raise BadRequest(str(e), "--runs-dir") from None
    root = Path(data_dir) if data_dir else mnist.default_data_dir()
    screen = screen or Screen(Console(), Console(stderr=True))
    options = dict(eval_every=eval_every, force=force, resume=resume,
                   checkpoint_every=checkpoint_every)  # fmt: skip
    if jobs > 1 and len(matrix) > 1:
        return run_parallel(screen, matrix, root, dev, runs_dir, jobs, options,
                            user_rows(matrix))  # fmt: skip
    return run_serial(screen, matrix, root, dev, runs_dir, options)


def submit_sweep(
    matrix: list[tuple[Experiment, int]],
    executor: str = "local",
    *,
    runs_dir: Path | str = "runs",
    data_dir: Path | str | None = None,
    device: str = "auto",
    timeout_min: int = 120,
    partition: str | None = None,
    gpus_per_node: int = 0,
    cpus_per_task: int | None = None,
    eval_every: int = 0,
    force: bool = False,
    resume: bool = False,
    checkpoint_every: int = 10,
    log=print,
) -> list:
    """Submit a planned matrix with submitit, one job per run: local processes, or one SLURM
    job array (`executor="slurm"`). MNIST is fetched here once, not by every job. Returns the
    submitit jobs in the matrix's order (`sweep.wait_for` waits for them). Raises BadRequest,
    SweepError (sbatch refused) or DataError."""
    from ffbench.sweep import ExecutorKind, local_gpus, make_executor, submit

    kind = ExecutorKind(executor)
    if kind == ExecutorKind.local and device == "cuda":
        resolve_device(device)
    runs = Path(runs_dir).resolve()
    try:
        check_writable(runs)
    except OSError as e:
        raise BadRequest(str(e), "--runs-dir") from None
    root = Path(data_dir or mnist.default_data_dir()).resolve()
    mnist.fetch(root, log=log)
    if kind == ExecutorKind.local:
        gpus_per_node = gpus_per_node or local_gpus(device)
    ex = make_executor(kind, runs / ".submitit", timeout_min, partition, gpus_per_node,
                       cpus_per_task)  # fmt: skip
    options = dict(runs_dir=runs, data_dir=root, device=device, eval_every=eval_every,
                   force=force, resume=resume, checkpoint_every=checkpoint_every,
                   rows=user_rows(matrix))  # fmt: skip
    return submit(ex, matrix, options)


def run(
    experiment: str | Experiment | Sequence[str | Experiment],
    seeds: int | Sequence[int] = 0,
    reading: str = readings.DEFAULT,
    *,
    runs_dir: Path | str = "runs",
    device: str = "auto",
    jobs: int = 1,
    eval_every: int = 0,
    force: bool = False,
    resume: bool = False,
    checkpoint_every: int = 10,
    data_dir: Path | str | None = None,
    progress: bool = True,
    **settings,
) -> RunResult | list[RunResult]:
    """Train a row (by name, or an Experiment) or several, each seed into its own run
    directory under `runs_dir`, exactly as `ffbench run` does; a finished run already there is
    returned, not repeated (force=True repeats it). `settings` change any field of the row
    (epochs=20, train_subset=5000, theta=1.0). One RunResult for one row and one seed, else a
    list in (row, seed) order. Progress: one bar (terminal, notebook) or one line per epoch;
    progress=False prints nothing but errors."""
    many = not isinstance(experiment, str | Experiment) or not isinstance(seeds, int)
    rows = [experiment] if isinstance(experiment, str | Experiment) else list(experiment)
    seed_list = [seeds] if isinstance(seeds, int) else list(seeds)
    if not seed_list or any(not isinstance(s, int) or s < 0 for s in seed_list):
        raise BadRequest(f"seeds={seeds!r}: give an integer >= 0 or a list of them", "--seed")
    matrix = plan(rows, seed_list, reading, settings)
    screen = Screen(Console(quiet=not progress), Console(stderr=True))
    outcomes = execute_matrix(matrix, runs_dir, device, jobs, eval_every, force, resume,
                              checkpoint_every, data_dir, screen)  # fmt: skip
    found = [RunResult.of(out) for out in outcomes]
    return found if many else found[0]


def load_runs(runs_dir: Path | str = "runs") -> pd.DataFrame:
    """One row per run directory with a result.json under `runs_dir`: experiment, reading,
    overrides, seed, status, test_accuracy (a fraction), train_seconds, settings, path."""
    if not Path(runs_dir).is_dir():
        raise BadRequest(f"runs dir {runs_dir} does not exist; run something first", "--runs-dir")
    return results.load_runs(Path(runs_dir))


def table(runs_dir: Path | str = "runs", reading: str | None = None) -> pd.DataFrame:
    """The table `ffbench table` prints: one row per experiment, reading, overrides and device
    type, with n, the accuracy's mean and std in percent, time, and the paper's numbers."""
    runs = load_runs(runs_dir)
    if reading is not None:
        check_reading(reading)
        runs = runs[runs.reading == reading]
    return results.aggregate(runs)


__all__ = ["BadRequest", "PAPER_ROWS", "RunResult", "define", "experiments", "load_runs", "plan",
           "run", "table"]  # fmt: skip
