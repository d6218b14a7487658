"""Studies: registered rows run at several settings, registered by name like the rows.

A study is data: its rows, and the points (settings) at which each row runs. `ffbench study
NAME` runs rows x points x seeds; its runs are ordinary run directories (the point's settings are
their overrides), so `ffbench table` aggregates them, `ffbench table --study NAME` lays them out
as rows x points (ffbench/report/studies.py), and a study's figure reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass

from ffbench.core.names import UnknownName, lookup

DEPTH_ROWS = ("depth_backprop", "depth_FG_weight", "depth_FG_joint", "depth_FG_activity",
              "depth_FG_local")  # fmt: skip


def mlp(depth: int, width: int = 256) -> tuple[int, ...]:
    """The sizes of a 784-(width x depth)-10 MLP."""
    return (784,) + (width,) * depth + (10,)


@dataclass(frozen=True)
class Study:
    name: str
    description: str
    rows: tuple[str, ...]
    points: tuple[tuple[tuple[str, object], ...], ...]  # each point: its settings as pairs
    # What its table shows: a study that makes a choice shows validation error only, so that
    # the choice is never made on the test set; a study that reports shows test error.
    column: str = "test_error"

    def settings(self) -> list[dict]:
        return [dict(point) for point in self.points]

    def point_of(self, config: dict, overrides: dict) -> dict | None:
        """The point a run is at, from its config.json and the settings it changes from its row
        as registered now (`overrides_of`): the point's settings, and no other change (so a run
        shortened with --epochs, or one made at a rate since chosen away, is at no point)."""
        for point in self.settings():
            if set(overrides) <= set(point) and all(
                config.get(k) == (list(v) if isinstance(v, tuple) else v) for k, v in point.items()
            ):
                return point
        return None


def point_label(point: dict) -> str:
    """`sizes` as depth x width (L=4, W=256), any other setting as key=value."""
    parts = []
    for key, value in point.items():
        if key == "sizes":
            parts.append(f"L={len(value) - 2}, W={value[1]}")
        else:
            parts.append(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}")
    return ", ".join(parts)


STUDIES: dict[str, Study] = {}


def register(study: Study) -> Study:
    STUDIES[study.name] = study
    return study


class UnknownStudy(UnknownName):
    kind, see = "study", "see `ffbench study --help`"


def get(name: str) -> Study:
    return lookup(STUDIES, name, UnknownStudy)


register(Study(
    "depth",
    "backprop and forward gradients (weight, activity, local losses) as the MLP deepens: "
    "L = 1, 2, 4, 8 hidden layers of 256, and L = 4 of 1024 (second seed; Ren et al. 2023)",
    DEPTH_ROWS,
    tuple((("sizes", mlp(depth)),) for depth in (1, 2, 4, 8)) + ((("sizes", mlp(4, 1024)),),),
))  # fmt: skip
register(Study(
    "depth_local",
    "the depth study again with Ren et al.'s ingredients: backprop and local losses in groups "
    "of 32 units (LG-FG), LayerNorm, momentum SGD, 50 epochs, at L = 1, 2, 4, 8 hidden layers "
    "of 256",
    ("depth_LN_backprop", "depth_LG_FG_local"),
    tuple((("sizes", mlp(depth)),) for depth in (1, 2, 4, 8)),
))  # fmt: skip
register(Study(
    "depth_rates",
    "the depth study's rates, chosen on validation accuracy: each row at L = 4 with Adam "
    "rates 1e-4 .. 3e-3 (and 1e-5, 3e-5 for weight perturbation's long steps)",
    DEPTH_ROWS,
    tuple((("sizes", mlp(4)), ("lr", lr)) for lr in (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3)),
    column="validation_error",
))  # fmt: skip

# The forward-gradient rows' rates, chosen on validation at the rows' own budget (their 400
# epochs of DNN_base's schedule, 10,000 training images held out), and at a tenth of it.
FG_ROWS = ("FG_weight", "FG_activity", "FG_local")
register(Study(
    "fg_rates",
    "the forward-gradient rows' rates on validation: their 400 epochs, rates 1e-4 .. 3e-2",
    FG_ROWS,
    tuple((("validation", 10000), ("lr", lr)) for lr in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)),
    column="validation_error",
))  # fmt: skip
register(Study(
    "fg_rates_40",
    "fg_rates at a tenth of the budget (40 epochs of the same schedule), where each row "
    "chooses the rate that loses at 400",
    FG_ROWS,
    tuple((("validation", 10000), ("epochs", 40), ("lr", lr)) for lr in (1e-4, 3e-4, 1e-3, 3e-3)),
    column="validation_error",
))  # fmt: skip

# FF_best's recipe on validation: each point changes one choice of the recipe, at a budget of 30
# epochs with 10,000 training images held out.
FF_BEST_BUDGET = (("validation", 10000), ("epochs", 30))
register(Study(
    "ff_best_recipe",
    "FF_best's choices on validation, one at a time, 30 epochs: the recipe as registered; "
    "standardised pixels; uniform wrong labels as negatives; rates 3e-4 and 3e-3",
    ("FF_best",),
    (FF_BEST_BUDGET, FF_BEST_BUDGET + (("pixels", "standard"),),
     FF_BEST_BUDGET + (("negatives", "wrong_label"),), FF_BEST_BUDGET + (("lr", 3e-4),),
     FF_BEST_BUDGET + (("lr", 3e-3),)),
    column="validation_error",
))  # fmt: skip

# The rates of Ren et al.'s network's rows (ffbench/rows/beyond.py), on validation at their full
# budget. Forward gradients' steps are long (their norm grows with the perturbed dimension, Ren
# et al. section 3.4): FG-A diverges at 1e-2 and above, so ren_rates_fg goes lower for it and FG-W,
# down to 1e-5 (FG-W's steps are the longest: it perturbs every weight).
register(Study(
    "ren_rates",
    "the rates of Ren et al.'s M/1/16 rows backprop and LG-FG-A on validation, their 200 "
    "epochs: 1e-3 .. 1e-1",
    ("Ren_BP", "Ren_LG_FG_A"),
    tuple((("validation", 10000), ("lr", lr)) for lr in (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)),
    column="validation_error",
))  # fmt: skip
register(Study(
    "ren_rates_fg",
    "the rates of Ren et al.'s M/1/16 rows FG-W and FG-A on validation, their 200 epochs: "
    "1e-5 .. 1e-1",
    ("Ren_FG_W", "Ren_FG_A"),
    tuple((("validation", 10000), ("lr", lr))
          for lr in (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)),
    column="validation_error",
))  # fmt: skip
