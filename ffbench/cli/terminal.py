"""What the command line prints: results on stdout, errors and warnings on stderr, plain
lines when not a terminal; the one-line error of a bad request."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from ffbench import api

console = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    err.print(f"warning: {message}", highlight=False, soft_wrap=True)


def asked(e: api.BadRequest) -> typer.BadParameter:
    """An API's bad request as the command line says it: one line naming the option."""
    return typer.BadParameter(str(e), param_hint=e.param)
