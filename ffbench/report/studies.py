"""A study's runs read back: rows x points, the choice a choosing study makes, its table."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ffbench.report.table import load_runs
from ffbench.rows import overrides_of
from ffbench.rows.studies import Study, point_label
from ffbench.runner.store import read_json


def study_runs(study: Study, runs_dir: Path) -> pd.DataFrame:
    """The study's finished or diverged runs under `runs_dir`, one row each: experiment,
    point (its label), depth, width, seed, status, test and validation error (percent)."""
    runs = load_runs(runs_dir, warn=lambda _: None)
    rows = []
    for r in runs[runs.experiment.isin(study.rows)].itertuples():
        config = read_json(Path(r.path) / "config.json")
        recorded = read_json(Path(r.path) / "result.json").get("overrides")
        point = study.point_of(config, overrides_of(config, recorded))
        if point is None:
            continue
        sizes = config["sizes"]
        rows.append({"experiment": r.experiment, "point": point_label(point),
                     "depth": len(sizes) - 2, "width": sizes[1], "seed": r.seed,
                     "status": r.status, "test_error": 100 * (1 - r.test_accuracy),
                     "validation_error": 100 * (1 - r.validation_accuracy)})  # fmt: skip
    return pd.DataFrame(rows, columns=["experiment", "point", "depth", "width", "seed",
                                       "status", "test_error", "validation_error"])  # fmt: skip


def choice(study: Study, runs_dir: Path, runs: pd.DataFrame | None = None) -> dict[str, dict]:
    """Each row's point with the lowest mean of the study's column (on validation), over the
    seeds that every point of the row ran (a point run with more seeds, as a chosen point
    is by the study that uses it, is not judged on other draws); a run that diverged counts
    as the worst. A row with no runs is left out. `runs`: as in `study_table`."""
    runs = study_runs(study, runs_dir) if runs is None else runs
    by_label = {point_label(p): p for p in study.settings()}
    chosen = {}
    for row, mine in runs.groupby("experiment"):
        seeds = set.intersection(*(set(g.seed) for _, g in mine.groupby("point")))
        at = mine[mine.seed.isin(seeds)] if seeds else mine
        means = at.fillna({study.column: math.inf}).groupby("point")[study.column].mean()
        chosen[row] = by_label[means.idxmin()]
    return {row: chosen[row] for row in study.rows if row in chosen}


def study_table(study: Study, runs_dir: Path, column: str | None = None,
                runs: pd.DataFrame | None = None) -> tuple[list[str], list[list]]:  # fmt: skip
    """Header and rows: one row per study row, one column per point, each cell the mean ±
    std over seeds of `column` (default: the study's; percent) and n. `runs`: the study's runs
    (`study_runs`) where they are read already."""
    runs = study_runs(study, runs_dir) if runs is None else runs
    column = column or study.column
    labels = [point_label(p) for p in study.settings()]
    rows = []
    for name in study.rows:
        row = [name]
        for label in labels:
            at = runs[(runs.experiment == name) & (runs.point == label)]
            cell = at[column].dropna()
            if cell.empty:  # not run, or every run diverged
                row.append(f"diverged (n={len(at)})" if len(at) else "-")
                continue
            std = f" ± {cell.std(ddof=1):.2f}" if len(cell) > 1 else ""
            row.append(f"{cell.mean():.2f}{std} (n={len(cell)})")
        rows.append(row)
    return ["Row"] + labels, rows
