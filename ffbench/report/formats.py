"""The table's output formats: rich (the terminal), markdown, LaTeX (as displayed), CSV and JSON
(every column, as numbers)."""

from __future__ import annotations

from enum import Enum

import pandas as pd
from rich.table import Table


class TableFormat(str, Enum):
    rich = "rich"
    markdown = "markdown"
    csv = "csv"
    latex = "latex"
    json = "json"


def markdown(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table; a "|" inside a cell is escaped."""
    cells = [[str(c).replace("|", "\\|") for c in row] for row in [header, *rows]]
    lines = ["| " + " | ".join(row) + " |" for row in cells]
    lines.insert(1, "|" + "---|" * len(header))
    return "\n".join(lines) + "\n"


NUMERIC = {"Epochs", "Rate", "Start", "Final", "n", "Accuracy %", "Paper %"}  # right-justified


def rich_table(header: list[str], rows: list[list[str]], title: str, caption: str = "",
               lines: bool = False, right: set[str] | None = None) -> Table:  # fmt: skip
    out = Table(title=title, caption=caption or None, show_lines=lines)
    for h in header:
        out.add_column(h, justify="right" if h in (right or NUMERIC) else "left")
    for row in rows:
        out.add_row(*row)
    return out


def to_csv(table: pd.DataFrame) -> str:
    return table.to_csv(index=False)


def to_json(table: pd.DataFrame) -> str:
    """One object per row; NaN (a diverged row's accuracy) becomes null."""
    return table.to_json(orient="records", indent=2) + "\n"


LATEX_ESCAPES = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#",
                 "±": r"$\pm$", "→": r"$\to$"}  # fmt: skip


def _latex(text: str) -> str:
    return "".join(LATEX_ESCAPES.get(c, c) for c in text)


def latex(header: list[str], rows: list[list[str]]) -> str:
    """A booktabs tabular."""
    lines = [r"\begin{tabular}{" + "l" * len(header) + "}", r"\toprule"]
    lines.append(" & ".join(_latex(h) for h in header) + r" \\")
    lines.append(r"\midrule")
    lines += [" & ".join(_latex(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


DATA_FORMATS = {TableFormat.csv: to_csv, TableFormat.json: to_json}  # every column, as numbers
TEXT_FORMATS = {TableFormat.markdown: markdown, TableFormat.latex: latex}  # as displayed
