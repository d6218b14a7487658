"""The rows: every experiment registered by name (as timm registers models), the readings that
apply to the notes' rows, and the rows from a config file or a notebook derived from them.

The package's own rows are plain data: the notes' table as printed (ffbench/rows/paper.py) and
the rows beyond it (ffbench/rows/beyond.py).
"""

from __future__ import annotations

import dataclasses
from enum import Enum

from ffbench import methods
from ffbench.core.names import UnknownName, lookup
from ffbench.core.settings import Experiment, SettingError, check_setting
from ffbench.rows import readings

REGISTRY: dict[str, Experiment] = {}
PAPER_ROWS: list[str] = []  # the notes' rows, in the table's order (filled by paper.py)


def register(exp: Experiment) -> Experiment:
    """Add a row; its method must be registered and able to train it as set."""
    if exp.name in REGISTRY:
        raise ValueError(f"experiment {exp.name} is registered twice")
    if why := methods.get(exp.method).check(exp):
        raise ValueError(f"experiment {exp.name} cannot be trained: {why}")
    REGISTRY[exp.name] = exp
    return exp


class UnknownExperiment(UnknownName):
    kind, see = "experiment", "see `ffbench list`"


def get(name: str) -> Experiment:
    return lookup(REGISTRY, name, UnknownExperiment)


def under(exp: Experiment, reading: str) -> Experiment:
    """`exp` under the reading `reading` (ffbench/rows/readings.py) if it is a row of the notes'
    table; every other row (beyond the notes, from a file, from a notebook) keeps its own
    settings, a derived row its own reading."""
    reading_of = readings.get(reading)  # an unknown reading is an error for every row
    if exp.name not in PAPER_ROWS or exp.base is not None:
        return exp
    return reading_of.apply(exp)


def overrides(exp: Experiment) -> dict:
    """Settings of `exp` that differ from its row as registered (its base's, for a derived row)
    under its reading: what the table shows under Overrides, and what tells an ablation's runs
    apart; none for a row registered nowhere here."""
    return overrides_of(exp.config(), {})


def overrides_of(config: dict, recorded: dict | None) -> dict:
    """A run's settings (its config.json) that differ from its row as registered now; for a row
    not registered here, the overrides the run `recorded` (its result.json's). Read at table
    time: when a row changes (a rate chosen anew), its older runs show as overrides, not as the
    row."""
    name = config["base"] or config["name"]
    if name not in REGISTRY or config["reading"] not in readings.READINGS:
        return recorded or {}
    row = under(REGISTRY[name], config["reading"]).settings()
    return {k: config[k] for k, v in row.items() if config[k] != v}


def derive(name: str, base: str, reading: str, settings: dict, source: str = "python",
           description: str = "") -> Experiment:  # fmt: skip
    """A new row: the registered row `base` under `reading` with `settings` changed (typed and
    checked: each must be read by the row's method). It keeps its reading: readings apply to
    registered rows only."""
    settings = {k: check_setting(k, v) for k, v in settings.items()}
    exp = under(get(base), reading)
    method = methods.get(settings.get("method", exp.method))
    for key in settings:
        if key not in method.reads:
            raise SettingError(unread(f"{base}'s method {method.name} does not read", key))
    shown = {k: v.value if isinstance(v, Enum) else v for k, v in sorted(settings.items())}
    changes = ", ".join(f"{k}={v}" for k, v in shown.items()) or "no change"
    exp = dataclasses.replace(exp, name=name, base=base, source=source,
                              description=description or f"{base} ({reading}) with {changes}",
                              **settings)  # fmt: skip
    if why := method.check(exp):
        raise SettingError(why)
    return exp


def unread(subject: str, key: str, shown: str | None = None) -> str:
    """The message for a setting `key` (`shown` as its option) that is not read: `subject` (who
    does not), who does, and the fix."""
    readers = " and ".join(methods.readers(key)) or "no"
    return f"{subject} {shown or key} (only {readers} rows do); drop it"


# The package's rows, the notes' first (the rows beyond them start from DNN_base).
# isort: off
from ffbench.rows import paper  # noqa: E402, F401
from ffbench.rows import beyond  # noqa: E402, F401
# isort: on
