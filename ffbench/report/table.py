"""The results table: every finished run under a runs dir, aggregated with pandas, beside the
paper's own numbers (section 4 of the notes), and its views (per row and reading, side by side,
one row's ablation). Output formats: ffbench/report/formats.py."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ffbench.core.settings import settings_text
from ffbench.rows import PAPER_ROWS, overrides_of
from ffbench.rows.paper import PAPER
from ffbench.rows.readings import DEFAULT
from ffbench.runner.store import RESULT, read_json

RUN_COLUMNS = [
    "experiment", "reading", "overrides", "seed", "status", "test_accuracy",
    "validation_accuracy", "train_seconds",
    "device", "optimizer", "lr", "epochs", "batch_start", "batch_final", "diverged_epoch", "path",
    "predicted",
]  # fmt: skip


def load_runs(runs_dir: Path, warn: Callable[[str], None] = print) -> pd.DataFrame:
    """One row per run directory (RUNS/<reading>/<experiment>/seed-S-...) that holds a readable
    result.json (others are warned about); a run's overrides are its settings against its row as
    registered now (`overrides_of`)."""
    rows = []
    for path in sorted(Path(runs_dir).rglob(RESULT)):
        if any(part.startswith(".") for part in path.relative_to(runs_dir).parts[:-1]):
            continue  # a run moved aside while being replaced, or submitit's folder
        try:
            result = read_json(path)
            config = read_json(path.parent / "config.json")
            row = {k: result[k] for k in ("experiment", "seed", "status")}
            row["reading"] = config["reading"]
            row |= {
                k: config[k] for k in ("optimizer", "lr", "epochs", "batch_start", "batch_final")
            }
            overrides = overrides_of(config, result.get("overrides"))
        except (OSError, ValueError, KeyError, TypeError) as e:
            warn(f"skipping {path}: unreadable or incomplete ({type(e).__name__}: {e})")
            continue
        row |= {
            "overrides": settings_text(overrides),
            "test_accuracy": float(result.get("test_accuracy", math.nan)),
            "validation_accuracy": float(result.get("validation_accuracy", math.nan)),
            "train_seconds": float(result.get("train_seconds", math.nan)),
            "device": result.get("device", ""),
            "diverged_epoch": result.get("diverged_epoch"),
            "path": str(path.parent),
            "predicted": predicted(result.get("confusion")),
        }
        rows.append(row)
        for name, acc in (result.get("readouts") or {}).items():  # e.g. FF_best/head, scored
            rows.append(row | {"experiment": f"{row['experiment']}/{name}",  # on the test set
                               "test_accuracy": float(acc),
                               "validation_accuracy": math.nan})  # fmt: skip
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def predicted(confusion: list | None) -> tuple[int, ...] | None:
    """How many test images a run gave each label (result.json's confusion matrix, [true label]
    [predicted label], summed over the true labels); None where the run recorded none."""
    if confusion is None:
        return None
    return tuple(int(sum(column)) for column in zip(*confusion, strict=True))


def predicts(counts: list[tuple[int, ...]], top: int | None = None) -> str:
    """The labels a row's runs predict, summed over the runs: those given at least 5 % of the
    test images, most first with their share, or how many labels do where it is five or more;
    with `top`, the `top` most given labels and their shares."""
    if not counts:
        return "-"
    total = [sum(c) for c in zip(*counts, strict=True)]
    share = sorted(((n / sum(total), label) for label, n in enumerate(total)), reverse=True)
    kept = share[:top] if top else [(f, label) for f, label in share if f >= 0.05]
    if len(kept) >= 5 and not top:
        return f"{len(kept)} labels"
    return ", ".join(f"{label} ({100 * f:.0f} %)" for f, label in kept)


def _status(statuses: pd.Series) -> str:
    counts = statuses.value_counts()
    if len(counts) == 1:
        return str(counts.index[0])
    return ", ".join(f"{c}/{len(statuses)} {s}" for s, c in counts.items())


def aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (experiment, reading, overrides, device type): n runs, accuracy mean and std
    over the finished ones (percent; NaN when none finished, as the paper prints NAN), mean
    training time (CPU and GPU times never averaged together), and the epochs at which the
    diverged ones stopped."""
    rows = []
    runs = runs.assign(device_type=runs.device.astype(str).str.split(":").str[0])
    groups = runs.groupby(["experiment", "reading", "overrides", "device_type"], sort=False)
    for (name, reading, overrides, device_type), g in groups:
        finished = g[g.status == "finished"]
        acc = finished.test_accuracy * 100
        val = finished.validation_accuracy.dropna() * 100
        timed = g[g.status.isin(["finished", "diverged"])]
        paper = PAPER.get(name)
        first = g.iloc[0]
        diverged = g.diverged_epoch[g.status == "diverged"].dropna()
        rows.append({
            "experiment": name, "reading": reading, "overrides": overrides,
            "optimizer": first.optimizer, "epochs": first.epochs, "rate": first.lr,
            "batch_start": first.batch_start, "batch_final": first.batch_final,
            "n": len(g), "diverged": int((g.status == "diverged").sum()),
            "accuracy": acc.mean() if len(acc) else math.nan,
            "accuracy_std": acc.std(ddof=1) if len(acc) > 1 else math.nan,
            "validation": val.mean() if len(val) else math.nan,
            "validation_std": val.std(ddof=1) if len(val) > 1 else math.nan,
            "time_s": timed.train_seconds.mean() if len(timed) else math.nan,
            "device": ",".join(sorted(set(g.device))), "device_type": device_type,
            "paper_accuracy": paper.accuracy if paper else math.nan,
            "paper_time_s": paper.time_s if paper else math.nan,
            "status": _status(g.status),
            "diverged_epochs": ", ".join(str(int(e)) for e in diverged),
            "predicts": predicts([c for c in finished.predicted if c is not None]),
        })  # fmt: skip
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    order = {name: i for i, name in enumerate(PAPER_ROWS)}
    table["_order"] = table.experiment.map(lambda n: order.get(n, len(order)))
    table = table.sort_values(["_order", "experiment", "reading", "overrides"])
    return table.drop(columns="_order")


def _pct(x: float) -> str:
    return "NAN" if math.isnan(x) else f"{x:.2f}"


def _accuracy(r) -> str:
    """An aggregated row's accuracy as people read it: mean ± std (std from two runs on)."""
    return _pct(r.accuracy) + ("" if math.isnan(r.accuracy_std) else f" ± {r.accuracy_std:.2f}")


def _status_text(r) -> str:
    """An aggregated row's status, with the epochs at which its diverged runs stopped."""
    return r.status + (f" at epoch {r.diverged_epochs}" if r.diverged_epochs else "")


def _mmss(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    m, s = divmod(round(seconds), 60)
    return f"{m}:{s:02d}"


def display_rows(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and rows as people read them: accuracy as mean ± std, times as m:s; the
    validation accuracy where some run held images out."""
    show_overrides = bool(table.overrides.astype(bool).any())
    show_val = bool(table.validation.notna().any())
    show_predicts = bool((table.predicts != "-").any())
    header = ["Experiment", "Reading"] + (["Overrides"] if show_overrides else [])
    header += ["Opt", "Epochs", "Rate", "Start", "Final", "n"] + (["Val %"] if show_val else [])
    header += ["Accuracy %"] + (["Predicts"] if show_predicts else [])
    header += ["Paper %", "Time", "Paper time", "Device", "Status"]
    rows = []
    for r in table.itertuples():
        row = [r.experiment, r.reading] + ([r.overrides] if show_overrides else [])
        row += [r.optimizer, str(r.epochs), f"{r.rate:g}", str(r.batch_start), str(r.batch_final),
                str(r.n)]  # fmt: skip
        if show_val:  # "-" where no run held images out (NAN is the paper's word for diverged)
            row.append("-" if math.isnan(r.validation) else _pct(r.validation) + (
                "" if math.isnan(r.validation_std) else f" ± {r.validation_std:.2f}"))  # fmt: skip
        row += [_accuracy(r)] + ([r.predicts] if show_predicts else [])
        row += [_pct(r.paper_accuracy) if r.experiment in PAPER else "-",
                _mmss(r.time_s), _mmss(r.paper_time_s), r.device, _status_text(r)]  # fmt: skip
        rows.append(row)
    return header, rows


def side_by_side(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """One row per experiment and device type (runs without overrides; a row's GPU runs as
    `NAME (cuda)`: other kernels, other times), the paper's number beside each reading's:
    accuracy mean ± std (n) and time."""
    plain = table[table.overrides == ""]
    readings = sorted(set(plain.reading), key=lambda r: (r != DEFAULT, r))
    header = ["Experiment", "Paper %"]
    for reading in readings:
        header += [f"{reading} %", f"{reading} time"]
    header += ["Paper time"]
    rows = []
    for (name, device_type), g in plain.groupby(["experiment", "device_type"], sort=False):
        first = g.iloc[0]
        label = name if device_type == "cpu" else f"{name} ({device_type})"
        row = [label, _pct(first.paper_accuracy) if name in PAPER else "-"]
        for reading in readings:
            mine = g[g.reading == reading]
            if mine.empty:
                row += ["-", "-"]
                continue
            r = mine.iloc[0]
            diverged = f" (diverged at {r.diverged_epochs})" if r.diverged_epochs else ""
            row += [f"{_accuracy(r)}{diverged}, n={r.n}", _mmss(r.time_s)]
        rows.append(row + [_mmss(first.paper_time_s)])
    return header, rows


def _extends(overrides: str, base: str) -> bool:
    """`overrides` is `base` with one more setting."""
    o, b = set(overrides.split()), set(base.split())
    return b < o and len(o - b) == 1


def ablation_base(runs: pd.DataFrame, name: str, reading: str) -> str:
    """The overrides of `name`'s unflipped runs under `reading`: of its runs' sets of overrides,
    the one that the most others extend by one setting ("" on a tie, or when none is extended).
    An ablation made before a switch existed carries that switch in every run (`denormals=flush`)
    and is still read as the ablation it was."""
    groups = sorted(set(runs[(runs.experiment == name) & (runs.reading == reading)].overrides))
    count = {b: sum(_extends(o, b) for o in groups) for b in groups}
    return next((b for b in groups if count[b] == max(count.values()) > 0), "")


def ablation_changes(runs: pd.DataFrame, name: str) -> pd.DataFrame:
    """The runs of one row (`ffbench ablate NAME`) aggregated: per reading, the unflipped runs
    first (`ablation_base`), then each set of overrides that adds one switch to theirs, with
    `flipped` (that switch), `change`, its accuracy minus the unflipped runs' of the same seeds
    in points (NaN where they share no seed, and for the unflipped), and `paired_seeds`, the
    seeds that change is over; `base`, the overrides they all share."""
    mine = runs[runs.experiment == name]
    out = []
    for reading, g in aggregate(mine).groupby("reading", sort=False):
        of_reading = mine[mine.reading == reading]
        shared = ablation_base(of_reading, name, reading)
        base = of_reading[of_reading.overrides == shared].groupby("seed").test_accuracy.mean()
        one = g[[_extends(o, shared) for o in g.overrides]]
        for r in pd.concat([g[g.overrides == shared], one]).to_dict("records"):
            flipped = of_reading[of_reading.overrides == r["overrides"]]
            both = flipped[flipped.seed.isin(base.index)]
            paired = r["overrides"] != shared and not both.empty
            diff = both.test_accuracy.values - base[both.seed].values
            extra = " ".join(sorted(set(r["overrides"].split()) - set(shared.split())))
            out.append(r | {"flipped": extra, "base": shared,
                            "change": 100 * diff.mean() if paired else math.nan,
                            "paired_seeds": sorted(both.seed) if paired else []})  # fmt: skip
    return pd.DataFrame(out)


def ablation(runs: pd.DataFrame, name: str) -> tuple[list[str], list[list[str]]]:
    """`ablation_changes` as the table prints it."""
    header = ["Reading", "Flipped", "n", "Accuracy %", "Change (points)", "vs seeds", "Time",
              "Status"]  # fmt: skip
    rows = []
    for r in ablation_changes(runs, name).itertuples():
        seeds = ",".join(map(str, r.paired_seeds)) or "-"
        change = "-" if math.isnan(r.change) else _signed(r.change)
        rows.append([r.reading, r.flipped or "(none)", str(r.n), _accuracy(r), change, seeds,
                     _mmss(r.time_s), _status_text(r)])  # fmt: skip
    return header, rows


def _signed(x: float) -> str:
    return "NAN" if math.isnan(x) else f"{x:+.2f}"
