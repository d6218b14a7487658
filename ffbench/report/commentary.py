"""The report's commentary: Markdown templates (ffbench/report/prose/<section>.md) whose numbers
are filled in from the run files when the report is made, or quoted with their source.

A number in a template is one of the placeholders below, `{{name args}}`; args are words (a row,
a reading) and key=value pairs (seed=0, set=theta=2.0, col=loss, epoch=20, dp=4, device=cuda).
Runs are chosen by row, reading, seed, device (default cpu) and `set` (the run's overrides, as
`ffbench table` prints them, comma-separated; default none: the row's own settings).

  acc, err          one run's test accuracy or error, %
  mean, seeds, ids  over a row's finished runs: mean ± std (of=err for the error), each seed's
                    value; ids: the seeds of all its runs
  delta             a run's accuracy against the same seed without `set`, in points, signed
  gap               one row's mean test error minus another's, in points (`gap ROW OTHER
                    READING`)
  at, last, best, low, best_epoch
                    metrics.csv of one run: `col` at `epoch`, at the last epoch, its largest,
                    its smallest, and the epoch of its largest
  diverged          the epoch at which a run diverged (result.json)
  predicts          the labels a run gives the test images (its confusion matrix), with shares;
                    top=K: its K most given labels
  agree             where one run's `col` (default loss) and another's of the same seed, the
                    second with `other` as its overrides, part: "to the last digit at all N
                    epochs", or "to the last digit until epoch E"
  authors, authors_at
                    the authors' own code run here (tests/authors_code.py; RUNS/authors/ROW/
                    seed-S-torch*/): key=accuracy, seconds, predicts, torch from outcome.json;
                    `col` at `epoch` from its metrics.csv
  time, times       training seconds of one run; `low–high` over a row's runs
  layout            minutes to train the notes' rows once, two at a time, longest first, at
                    each row's mean (of=min: fastest) training time
  setting           a setting from the runs' config.json (all chosen runs agree)
  env, machines     a field of one run's env.json; the machines the notes' rows ran on
  run               one run's directory name
  cell, choice      a study's table cell at a point (`cell depth depth_FG_weight point=L=4,W=256`);
                    the point a choosing study picks for a row (`choice fg_rates FG_weight
                    key=lr`)
  bench             a figure of a saved `ffbench bench` file (file=, reading=, batch=, key=)
  notes             the notes' table (ffbench/rows/paper.py): `accuracy` (default) or `time`
  q                 a number quoted from SOURCES: `{{q 1.448 figure}}`
  const             a number computed from torch when the report is made (CONSTANTS)

A quoted number is set in italics (notes, q); every other number is read from the runs. Digits
anywhere else — outside placeholders, code spans and the citations CITATION allows — are a bare
number, and `bare_numbers` finds them (tests/test_report.py holds every template to none).
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pandas as pd
import torch

from ffbench.report.studies import choice, study_runs, study_table
from ffbench.report.table import predicted, predicts
from ffbench.rows import PAPER_ROWS, studies
from ffbench.rows.paper import PAPER
from ffbench.runner.store import read_json

# Where a quoted number comes from; `{{q VALUE KEY}}` must name one of these.
SOURCES = {
    "notes": "the notes (../shared/seeds/000_9214ac9d195e0708.txt)",
    "figure": "the authors' figure of the row (FFA/memo/plots/ in akhilsadam/pho-ices-ml)",
    "code": "the authors' code (akhilsadam/pho-ices-ml at d04dcf3)",
    "hinton": "Hinton 2022, arXiv 2212.13345",
    "ren": "Ren et al., ICLR 2023, Table 3",
    "loewe": "loeweX/Forward-Forward, README",
    "torch": "torch's documentation and source (torch.optim.ASGD)",
}

_F32 = torch.finfo(torch.float32)
# Numbers the commentary reasons with that follow from float32 and the losses, computed here.
CONSTANTS = {
    "exp_overflow": (math.log(_F32.max), 1),  # exp(s) is inf in float32 past this s
    "exp_flush": (-math.log(_F32.tiny), 1),  # exp(-s) is 0 past this s where denormals flush
    # with denormals kept, L0's slope (1 / 2B) / exp(-s) is inf past this s at B = 60000
    "kept_break_final": (math.log(_F32.max) + math.log(2 * 60000), 1),
    "blind_floor": (2 * math.log(2), 4),  # two layers' mean ln(1 + exp(0)): every goodness at θ
    # two layers' mean of ln(1 + exp(θ − 0)) and ln(1 + exp(0 − θ)) at the code's θ = 0.5
    "adjusted_start": (math.log1p(math.exp(0.5)) + math.log1p(math.exp(-0.5)), 4),
}

# Digits that are not findings: citations (equation, section, table, cell and PR numbers, the
# year of a cited paper, file:line of the authors' code) and addresses (the epoch, seed, batch
# or depth L and width W a figure is read at, which the placeholder beside them reads too; a
# layer's index; torch's version).
CITATION = re.compile(
    r"(?:\b(?:eqs?\.?|Eq\.|sec\.|sections?|Table|cell|ICLR|arXiv|PR #|et al\.,?|Hinton"
    r"|epochs?|seeds?|batch(?:es)?|layers?|torch|[LW] ?=)"
    r"\s*\d[\d.]*(?:(?:,\s*|\s+and\s+|/|–|-)\d[\d.]*)*)"
    r"|\w\.(?:py|ipynb)(?::\d+(?:[-–]\d+)?(?:,\s*\d+(?:[-–]\d+)?)*)?",
    re.IGNORECASE,
)
PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)


def bare_numbers(template: str) -> list[str]:
    """The numbers in `template` that are neither placeholders nor in code nor citations."""
    text = re.sub(r"```.*?```|<!--.*?-->", "", template, flags=re.S)
    text = PLACEHOLDER.sub("", text)
    text = re.sub(r"`[^`\n]*`", "", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)  # a link's target
    text = CITATION.sub("", text)
    return re.findall(r"(?<![\w])\d(?:[\d.,]*\d)?", text)


def authors_runs(runs_dir: Path, row: str) -> list[Path]:
    """The authors' own code run here on `row` (tests/authors_code.py writes
    RUNS/authors/<row>/seed-S-torch<version>/, outcome.json last)."""
    return sorted(p.parent for p in (Path(runs_dir) / "authors" / row).glob("*/outcome.json"))


class Missing(LookupError):
    """A placeholder whose runs or files are not in this runs directory."""


def signed(x: float, dp: int = 2) -> str:
    return f"{x:+.{dp}f}".replace("-", "−")


def number(x: float, dp: int = 2) -> str:
    return f"{x:,.{dp}f}".replace("-", "−") if dp == 0 else f"{x:.{dp}f}".replace("-", "−")


def listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


PLACEHOLDERS = (
    "acc err mean seeds gap ids delta at last best low best_epoch "
    "diverged predicts agree authors authors_at time times layout machines setting env cell "
    "choice bench notes q const run"
)


class Facts:
    """What the placeholders read: the runs of one runs directory (`load_runs`'s frame)."""

    def __init__(self, runs: pd.DataFrame, runs_dir: Path):
        self.runs, self.runs_dir = runs, Path(runs_dir)
        self.studies: dict[str, tuple] = {}  # a study's table and choice, read once
        self.functions: dict[str, Callable[..., str]] = {
            name: getattr(self, name) for name in PLACEHOLDERS.split()
        }

    # -- choosing runs
    def select(self, row, reading, seed=None, set="", device="cpu", finished=False):
        r = self.runs
        overrides = " ".join(sorted(set.split(","))) if set else ""
        chosen = r[(r.experiment == row) & (r.reading == reading) & (r.overrides == overrides)
                   & r.device.astype(str).str.startswith(device)]  # fmt: skip
        if seed is not None:
            chosen = chosen[chosen.seed == int(seed)]
        if finished:
            chosen = chosen[chosen.status == "finished"]
        if chosen.empty:
            what = [reading, device] + ([f"seed={seed}"] if seed is not None else [])
            what.append(f"set={set}" if set else "its own settings")
            raise Missing(f"no {'finished ' if finished else ''}run of {row} ({', '.join(what)})")
        return chosen.sort_values("seed")

    def one(self, row, reading, seed, **kw):
        chosen = self.select(row, reading, seed, **kw)
        if len(chosen) > 1:
            raise ValueError(f"{len(chosen)} runs of {row} ({reading}, seed {seed}): say which")
        return chosen.iloc[0]

    def metrics(self, row, reading, seed, col, **kw) -> pd.DataFrame:
        run = self.one(row, reading, seed, **kw)
        metrics = pd.read_csv(Path(run.path) / "metrics.csv")
        if col not in metrics:
            raise Missing(f"{run.path}/metrics.csv has no column {col}")
        scale = 100 if col.endswith("accuracy") else 1
        return metrics.assign(value=metrics[col] * scale).dropna(subset=["value"])

    # -- the placeholders
    def acc(self, row, reading, seed, dp="2", **kw):
        return number(100 * self.one(row, reading, seed, finished=True, **kw).test_accuracy,
                      int(dp))  # fmt: skip

    def err(self, row, reading, seed, dp="2", **kw):
        run = self.one(row, reading, seed, finished=True, **kw)
        return number(100 * (1 - run.test_accuracy), int(dp))

    def _values(self, row, reading, of="acc", **kw) -> list[float]:
        acc = self.select(row, reading, finished=True, **kw).test_accuracy * 100
        return list(100 - acc if of == "err" else acc)

    def mean(self, row, reading, of="acc", **kw):
        values = pd.Series(self._values(row, reading, of, **kw))
        if len(values) < 2:
            raise Missing(f"the mean of {row} ({reading}) needs two finished runs")
        return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"

    def seeds(self, row, reading, of="acc", **kw):
        return listing([f"{v:.2f}" for v in self._values(row, reading, of, **kw)])

    def gap(self, row, other, reading, dp="2", **kw):
        """`row`'s mean test error minus `other`'s (both at their own settings), in points."""
        means = [pd.Series(self._values(r, reading, "err", **kw)) for r in (row, other)]
        if min(len(m) for m in means) < 2:
            raise Missing(f"the gap of {row} to {other} ({reading}) needs two runs of each")
        return number(means[0].mean() - means[1].mean(), int(dp))

    def ids(self, row, reading, **kw):
        return listing([str(s) for s in self.select(row, reading, **kw).seed])

    def delta(self, row, reading, seed, set, base="", **kw):
        """The flip `set` against the same seed; `base`: overrides both runs share."""
        both = ",".join(filter(None, [base, set]))
        flipped = self.one(row, reading, seed, set=both, finished=True, **kw).test_accuracy
        plain = self.one(row, reading, seed, set=base, finished=True, **kw).test_accuracy
        return signed(100 * (flipped - plain))

    def at(self, row, reading, seed, col, epoch, dp="2", **kw):
        m = self.metrics(row, reading, seed, col, **kw)
        found = m[m.epoch == int(epoch)]
        if found.empty:
            raise ValueError(f"{row} ({reading}, seed {seed}) has no {col} at epoch {epoch}")
        return number(found.value.iloc[0], int(dp))

    def last(self, row, reading, seed, col, dp="2", **kw):
        return number(self.metrics(row, reading, seed, col, **kw).value.iloc[-1], int(dp))

    def best(self, row, reading, seed, col, dp="2", **kw):
        return number(self.metrics(row, reading, seed, col, **kw).value.max(), int(dp))

    def low(self, row, reading, seed, col, dp="2", **kw):
        return number(self.metrics(row, reading, seed, col, **kw).value.min(), int(dp))

    def best_epoch(self, row, reading, seed, col, **kw):
        m = self.metrics(row, reading, seed, col, **kw)
        return str(int(m.epoch[m.value.idxmax()]))

    def diverged(self, row, reading, seed, **kw):
        run = self.one(row, reading, seed, **kw)
        if run.status != "diverged":
            raise ValueError(f"{row} ({reading}, seed {seed}) did not diverge: {run.status}")
        return str(int(run.diverged_epoch))

    def predicts(self, row, reading, seed, top="", **kw):
        run = self.one(row, reading, seed, **kw)
        if run.predicted is None:
            raise Missing(f"{run.path}/result.json has no confusion matrix")
        return predicts([run.predicted], int(top) if top else None)

    def agree(self, row, reading, seed, other, col="loss", set="", **kw):
        mine = self.metrics(row, reading, seed, col, set=set, **kw).set_index("epoch").value
        theirs = self.metrics(row, reading, seed, col, set=other, **kw).set_index("epoch").value
        both = mine.index.intersection(theirs.index)
        apart = both[(mine[both] != theirs[both]).to_numpy()]
        if len(apart) == 0:
            return f"to the last digit at all {len(both)} epochs"
        return f"to the last digit until epoch {int(apart[0]) - 1}"

    def _authors(self, row, seed) -> Path:
        found = [p for p in authors_runs(self.runs_dir, row) if p.name.startswith(f"seed-{seed}-")]
        if not found:
            raise Missing(f"no run of the authors' code for {row} seed {seed} under "
                          f"{self.runs_dir}/authors")  # fmt: skip
        return found[-1]

    def authors(self, row, seed, key, dp="2"):
        outcome = read_json(self._authors(row, seed) / "outcome.json")
        if key == "predicts":
            return predicts([predicted(outcome["confusion"])])
        if key == "torch":
            return outcome["torch"].split("+")[0]
        value = {"accuracy": 100 * outcome["test_accuracy"], "seconds": outcome["train_seconds"]}
        return number(value[key], int(dp))

    def authors_at(self, row, seed, col, epoch, dp="2"):
        m = pd.read_csv(self._authors(row, seed) / "metrics.csv")
        found = m[m.epoch == int(epoch)]
        if found.empty:
            raise ValueError(f"the authors' {row} (seed {seed}) has no {col} at epoch {epoch}")
        return number(found[col].iloc[0], int(dp))

    def time(self, row, reading, seed, dp="0", **kw):
        return number(self.one(row, reading, seed, **kw).train_seconds, int(dp))

    def times(self, row, reading, **kw):
        seconds = self.select(row, reading, **kw).train_seconds
        return f"{seconds.min():,.0f}–{seconds.max():,.0f}"

    def layout(self, reading, workers="2", of="mean", **kw):
        """Minutes for `workers` one-thread runs at a time to train the notes' rows once, each
        taking its mean (of=min: its fastest) training time here, started longest first (`run
        --jobs`'s order)."""
        seconds = sorted((getattr(self.select(row, reading, **kw).train_seconds, of)()
                          for row in PAPER_ROWS), reverse=True)  # fmt: skip
        loads = [0.0] * int(workers)
        for s in seconds:
            loads[loads.index(min(loads))] += s
        return f"{max(loads) / 60:.0f}"

    def setting(self, row, reading, key, **kw):
        values = {str(read_json(Path(p) / "config.json")[key])
                  for p in self.select(row, reading, **kw).path}  # fmt: skip
        if len(values) > 1:
            raise ValueError(f"the runs of {row} ({reading}) differ in {key}: {sorted(values)}")
        return values.pop()

    def machines(self, reading, device="cpu"):
        """The machines (env.json's device_name) the notes' rows ran on under `reading`."""
        chosen = self.runs[self.runs.experiment.isin(PAPER_ROWS) & (self.runs.reading == reading)
                           & self.runs.device.astype(str).str.startswith(device)]  # fmt: skip
        if chosen.empty:
            raise Missing(f"no {device} run of the notes' rows ({reading})")
        return listing(
            sorted({read_json(Path(p) / "env.json")["device_name"] for p in chosen.path})
        )

    def env(self, row, reading, seed, key, **kw):
        return str(read_json(Path(self.one(row, reading, seed, **kw).path) / "env.json")[key])

    def run(self, row, reading, seed, **kw):
        """The run's directory name, as code."""
        return f"`{Path(self.one(row, reading, seed, **kw).path).name}`"

    def study(self, name: str) -> tuple:
        if name not in self.studies:
            study = studies.get(name)
            found = study_runs(study, self.runs_dir)
            chosen = (
                choice(study, self.runs_dir, found) if study.column == "validation_error" else {}
            )
            self.studies[name] = (study_table(study, self.runs_dir, runs=found), chosen)
        return self.studies[name]

    def cell(self, study, row, point):
        found = self.study(study)[0]
        labels = [h.replace(" ", "") for h in found[0]]
        for line in found[1]:
            if line[0] == row and point in labels:
                text = line[labels.index(point)]
                if text == "-":
                    raise Missing(f"study {study} has no runs of {row} at {point}")
                return text
        raise ValueError(f"study {study} has no row {row} or no point {point}")

    def choice(self, study, row, key):
        chosen = self.study(study)[1]
        if row not in chosen:
            raise Missing(f"study {study} has no runs of {row}")
        value = chosen[row][key]
        return f"{value:g}" if isinstance(value, float) else str(value)

    def bench(self, file, reading, batch, key, dp="2"):
        path = self.runs_dir / "bench" / file
        if not path.exists():
            raise Missing(f"no bench file {path}")
        saved = read_json(path)
        if key in saved["environment"]:
            return str(saved["environment"][key])
        for r in saved["rows"]:
            if r["reading"] == reading and r["batch"] == int(batch):
                return number(r[key], int(dp))
        raise ValueError(f"{path} has no row of reading {reading} at batch {batch}")

    def notes(self, row, what="accuracy"):
        value = getattr(PAPER[row], what)
        if isinstance(value, float):
            return "*NAN*" if math.isnan(value) else f"*{value:.2f}*"
        return f"*{value}*"

    def q(self, value, source):
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}: one of {', '.join(SOURCES)}")
        return f"*{value}*"

    def const(self, name):
        value, dp = CONSTANTS[name]
        return number(value, dp)


def render(template: str, facts: Facts) -> str:
    """`template` with every placeholder filled in; Missing if a run it reads is not here."""

    def fill(match: re.Match) -> str:
        name, *words = shlex.split(match.group(1))
        if name not in facts.functions:
            raise ValueError(f"unknown placeholder {{{{{match.group(1)}}}}}")
        args = [w for w in words if "=" not in w]
        kwargs = dict(w.split("=", 1) for w in words if "=" in w)
        return facts.functions[name](*args, **kwargs)

    return PLACEHOLDER.sub(fill, template)


def templates() -> dict[str, str]:
    """Each section's commentary template, by the section's key (the file's stem)."""
    folder = resources.files("ffbench.report") / "prose"
    return {p.name.removesuffix(".md"): p.read_text() for p in folder.iterdir()
            if p.name.endswith(".md")}  # fmt: skip
