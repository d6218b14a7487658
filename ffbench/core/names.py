"""Things registered by name (rows, readings, studies), as timm registers models: a dict each,
and one error for a name none of them holds."""

from __future__ import annotations

import difflib
from collections.abc import Mapping


class UnknownName(KeyError):
    """A name that is not registered: the close names if there are any, else where to look;
    a short registry also lists what it holds."""

    kind = "name"
    see = ""

    def __init__(self, name: str, known: Mapping):
        self.name = name
        self.close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(self.close)}?" if self.close else self.see
        listed = f" (known: {', '.join(known)})" if len(known) <= 8 else ""
        super().__init__(f"unknown {self.kind} '{name}': {hint}{listed}")

    def __str__(self) -> str:
        return self.args[0]


def lookup(known: Mapping, name: str, error: type[UnknownName]):
    """known[name], or `error` saying what was meant."""
    try:
        return known[name]
    except KeyError:
        raise error(name, known) from None
