"""The plan of a command: (row, seed) for every run it asks for, each row under its reading with
the settings asked for, checked against its method before anything is written."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ffbench import methods, rows
from ffbench.core.data import FULL_TRAIN
from ffbench.core.settings import Experiment, SettingError, check_setting, settings_text
from ffbench.rows import UnknownExperiment, readings


class BadRequest(ValueError):
    """A request that cannot run: an unknown row or reading, a bad setting, no GPU, a runs dir
    that cannot be written. The message names the problem and the fix; `param` is the
    command-line option it came from."""

    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


# The command line's own options for some settings; the others come with --set.
FLAGS = {k: "--" + k.replace("_", "-") for k in (
    "epochs", "train_subset", "batch_start", "batch_final", "lr", "batch_growth", "lr_scaling",
    "theta", "layer_order", "validation")} | {"stable_loss": "--stable-loss/--literal-loss",
                                "normalize_input": "--normalize-input/--raw-input"}  # fmt: skip

Matrix = list[tuple[Experiment, int]]


def check_reading(reading: str) -> None:
    try:
        readings.get(reading)
    except readings.UnknownReading as e:
        raise BadRequest(str(e), "--reading") from None


def plan(
    names: Sequence[str | Experiment],
    seeds: Sequence[int],
    reading: str = readings.DEFAULT,
    settings: dict | None = None,
) -> Matrix:
    """(row with `settings` changed, seed) for every run asked for: a row by name is the
    registered one under `reading`, an Experiment runs as it is. A setting goes to the rows whose
    method reads it, and is refused when none does; a row its method cannot train as set is
    refused. A row named twice is one run, not a second run racing the first for its directory."""
    if not names:
        raise BadRequest("name at least one experiment, or pass --paper", "NAMES")
    check_reading(reading)
    typed = {}
    for key, value in (settings or {}).items():
        try:
            typed[key] = check_setting(key, value)
        except SettingError as e:
            raise BadRequest(str(e), FLAGS.get(key, "--set")) from None
    exps = []
    for row in names:
        try:  # a name is the registered row under the reading; an Experiment is taken as is
            exp = row if isinstance(row, Experiment) else rows.under(rows.get(row), reading)
            method = methods.get(typed.get("method", exp.method))
        except (UnknownExperiment, methods.UnknownMethod) as e:
            raise BadRequest(str(e), "NAMES") from None
        exps.append(check(dataclasses.replace(exp, **{
            k: v for k, v in typed.items() if k in method.reads})))  # fmt: skip
    for key in typed:
        if not any(key in methods.get(exp.method).reads for exp in exps):
            message = rows.unread("no experiment named reads", key, FLAGS.get(key))
            raise BadRequest(message, FLAGS.get(key, "--set"))
    return list(dict.fromkeys((exp, s) for exp in exps for s in seeds))


def check(exp: Experiment) -> Experiment:
    """`exp`, or BadRequest naming why it cannot be trained as set and the fix."""
    if exp.batch_final < exp.batch_start:
        raise BadRequest(f"the final batch ({exp.batch_final}) is smaller than the start batch "
                         f"({exp.batch_start}); pass --batch-final >= --batch-start",
                         "--batch-final")  # fmt: skip
    if exp.validation >= (exp.train_subset or FULL_TRAIN):
        n = exp.train_subset or FULL_TRAIN
        raise BadRequest(f"--validation {exp.validation} leaves no training images of {n}; "
                         "hold out fewer", "--validation")  # fmt: skip
    if why := methods.get(exp.method).check(exp):
        raise BadRequest(why, "--set")
    return exp


def ablation(matrix: Matrix, toward: str) -> Matrix:
    """The planned runs of one row, then once more with each switch its method reads flipped to
    the reading `toward`'s choice, one at a time."""
    check_reading(toward)
    exp = matrix[0][0]
    if exp.name not in rows.PAPER_ROWS or exp.base is not None:
        raise BadRequest(f"{exp.name} is not a row of the notes' table, and readings apply to "
                         f"those only; ablate one of {', '.join(rows.PAPER_ROWS)}",
                         "NAME")  # fmt: skip
    flipped = [check(dataclasses.replace(exp, **{sw.name: value}))
               for sw, value in readings.flips(exp, toward)]  # fmt: skip
    if not flipped:
        raise BadRequest(f"{exp.name} reads no switch that differs between {exp.reading} and "
                         f"{toward}; pick another --toward", "--toward")  # fmt: skip
    return matrix + [(e, s) for e in flipped for _, s in matrix]


def run_labels(matrix: Matrix) -> dict[tuple[Experiment, int], str]:
    """How each run is named in progress and messages (the progress display's key): the row and
    the seed, and where that is not unique (an ablation), the settings that differ."""
    names = [f"{exp.name} seed {seed}" for exp, seed in matrix]
    labels = {}
    for (exp, seed), name in zip(matrix, names, strict=True):
        if names.count(name) > 1:
            name += f" [{settings_text(rows.overrides(exp))}]"
        labels[exp, seed] = name
    return labels
