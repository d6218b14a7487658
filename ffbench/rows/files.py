"""Rows from a TOML file (`ffbench run --config my_rows.toml`, README 'Rows from a file'): one
table per row, its header the row's name, with `base = "ROW"` (a registered row), optionally
`reading` and `description`, and any setting its method reads as TOML values. Each row is
`ffbench.rows.derive`d: its config.json records `base` and `source` (this file)."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

from ffbench.core.settings import Experiment, SettingError
from ffbench.methods import UnknownMethod
from ffbench.rows import REGISTRY, UnknownExperiment, derive, readings

ROW_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")  # a directory name on every system


class ConfigError(ValueError):
    """A config file that cannot be read or defines a bad row; the message names the file, the
    row and the fix."""


def load_rows(path: Path, reading: str = readings.DEFAULT) -> list[Experiment]:
    """The rows of the TOML file at `path`, in the file's order; `reading` is theirs unless a
    row names its own."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path} ({e.strerror}); give a TOML file "
                          "of rows (README, 'Rows from a file')") from None  # fmt: skip
    try:
        tables = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML ({e}); fix the file") from None
    if not tables:
        raise ConfigError(f'{path} defines no rows; add one, e.g. [my_row] with base = "FFA0"')
    return [_row(path, name, table, reading) for name, table in tables.items()]


def _row(path: Path, name: str, table: object, reading: str) -> Experiment:
    where = f"{path} [{name}]"
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: '{name} = ...' is not a row; write [{name}] and under it "
                          "base = \"ROW\" and the settings it changes")  # fmt: skip
    if not ROW_NAME.fullmatch(name):
        raise ConfigError(f"{where}: a row's name is a directory name: letters, digits and "
                          "_ . + - (not first); rename it")  # fmt: skip
    if name in REGISTRY:
        raise ConfigError(f"{where}: {name} is a registered row; give the new row its own name")
    settings = dict(table)
    base = settings.pop("base", None)
    if not isinstance(base, str):
        raise ConfigError(f"{where}: base = \"ROW\" is missing; name the registered row it "
                          "starts from (`ffbench list`)")  # fmt: skip
    row_reading = settings.pop("reading", reading)
    description = settings.pop("description", "")
    try:
        readings.get(row_reading)
        return derive(name, base, row_reading, settings, str(path), str(description))
    except (SettingError, UnknownExperiment, UnknownMethod, readings.UnknownReading) as e:
        raise ConfigError(f"{where}: {e}") from None
