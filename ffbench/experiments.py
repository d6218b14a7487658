"""The experiment registry: every row is a frozen set of settings registered by name.

Adding a row is one `register(Experiment(...))`. The paper's own numbers sit beside the registry
as the table of section 4, copied as written (NAN kept as NAN).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from enum import Enum

from ffbench.losses import Loss
from ffbench.schedules import BatchGrowth, LrScaling


class Method(str, Enum):
    backprop = "backprop"
    ff = "ff"
    fg_weight = "fg_weight"  # forward gradient, weight perturbation
    fg_activity = "fg_activity"  # forward gradient, activity perturbation
    fg_local = "fg_local"  # activity perturbation of local losses
    ff_best = "ff_best"  # FF as published at its best (ffbench/ff_best.py)


class Optimizer(str, Enum):
    asgd = "asgd"
    adam = "adam"
    sgd = "sgd"  # with `momentum` and `weight_decay`


class LayerOrder(str, Enum):
    per_batch = "per-batch"  # every batch trains layer 1, then layer 2 (like a DNN step)
    greedy = "greedy"  # layer 1 for all epochs, then layer 2 for all epochs


@dataclass(frozen=True)
class Experiment:
    name: str
    method: Method
    loss: Loss
    optimizer: Optimizer = Optimizer.asgd
    lr: float = 1e-3
    epochs: int = 400
    batch_start: int = 50
    batch_final: int = 60000
    batch_growth: BatchGrowth = BatchGrowth.geometric
    lr_scaling: LrScaling = LrScaling.linear
    cooldown: float = 0.0  # last fraction of the epochs over which the rate falls linearly to 0
    momentum: float = 0.0  # SGD only
    weight_decay: float = 0.0  # SGD only
    sizes: tuple[int, ...] = (784, 800, 10)
    theta: float = 2.0  # FF goodness threshold
    stable_loss: bool = False  # FF: log-sigmoid instead of the literal ln(sigmoid(.))
    normalize_input: bool = True  # FF: L2-normalise the first layer's input too
    layer_order: LayerOrder = LayerOrder.per_batch
    train_subset: int | None = None  # first N training samples; None = all 60000
    description: str = ""

    def settings(self) -> dict:
        """Every setting as plain JSON values (enums by value, tuples as lists)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.value if isinstance(v, Enum) else list(v) if isinstance(v, tuple) else v
        return out

    def overrides(self) -> dict:
        """Settings that differ from the registered experiment of the same name."""
        base = REGISTRY[self.name].settings()
        return {k: v for k, v in self.settings().items() if base[k] != v}


REGISTRY: dict[str, Experiment] = {}


def register(exp: Experiment) -> Experiment:
    if exp.name in REGISTRY:
        raise ValueError(f"experiment {exp.name} is registered twice")
    REGISTRY[exp.name] = exp
    return exp


class UnknownExperiment(KeyError):
    def __init__(self, name: str):
        self.name = name
        self.close = difflib.get_close_matches(name, list(REGISTRY), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(self.close)}?" if self.close else "see `ffbench list`"
        super().__init__(f"unknown experiment '{name}': {hint}")

    def __str__(self) -> str:
        return self.args[0]


def get(name: str) -> Experiment:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownExperiment(name) from None


# Section 4 of the notes, as printed.
PAPER_TABLE = """\
Net         Opt   Epochs  Rate  Start  Final  Time[m:s]  Accuracy
DNN_base    ASGD  400     1e-3  50     60000  0:24       97.73%
FFA0        ASGD  400     1e-3  50     60000  1:22       NAN
FFA1        ASGD  400     1e-3  50     60000  1:14       NAN
adj_FFA0_0  ASGD  400     1e-3  50     3200   4:23       50.67%
adj_FFA0_1  ASGD  400     1e-3  50     60000  1:23       49.80%
adj_FFA1_0  ASGD  400     1e-3  50     3200   4:23       19.24%
adj_FFA1_1  ASGD  400     5e-4  50     3200   4:23       24.84%
adj_FFA1_2  ASGD  400     1e-3  50     60000  1:21       21.38%
adj_FFA0_2  Adam  400     1e-3  50     60000  1:13       NAN
adj_FFA1_3  Adam  400     1e-3  50     60000  1:18       NAN
"""


@dataclass(frozen=True)
class PaperRow:
    name: str
    optimizer: Optimizer
    epochs: int
    lr: float
    batch_start: int
    batch_final: int
    time: str  # as printed, m:s
    accuracy: float  # percent; NaN where the paper prints NAN

    @property
    def time_s(self) -> float:
        minutes, seconds = self.time.split(":")
        return 60 * int(minutes) + int(seconds)


def _parse_paper_table(text: str) -> dict[str, PaperRow]:
    rows = {}
    for line in text.splitlines()[1:]:
        name, opt, epochs, rate, start, final, time, acc = line.split()
        accuracy = math.nan if acc == "NAN" else float(acc.rstrip("%"))
        rows[name] = PaperRow(
            name, Optimizer(opt.lower()), int(epochs), float(rate), int(start), int(final), time,
            accuracy,
        )  # fmt: skip
    return rows


PAPER: dict[str, PaperRow] = _parse_paper_table(PAPER_TABLE)


def _paper_row(name: str, method: Method, loss: Loss, description: str) -> Experiment:
    """The registered experiment of a paper row: its settings come from the paper's table."""
    p = PAPER[name]
    return register(
        Experiment(
            name=name,
            method=method,
            loss=loss,
            optimizer=p.optimizer,
            lr=p.lr,
            epochs=p.epochs,
            batch_start=p.batch_start,
            batch_final=p.batch_final,
            description=description,
        )
    )


_paper_row("DNN_base", Method.backprop, Loss.cross_entropy, "backprop MLP, cross-entropy")
_paper_row("FFA0", Method.ff, Loss.L0, "FF, KL-minimisation loss L0 (eq 3.13)")
_paper_row("FFA1", Method.ff, Loss.L1, "FF, KL-maximisation loss L1 (eq 3.16)")
_paper_row("adj_FFA0_0", Method.ff, Loss.adj_L0, "FF, adjusted L0 (eq 4.1), small final batch")
_paper_row("adj_FFA0_1", Method.ff, Loss.adj_L0, "FF, adjusted L0 (eq 4.1)")
_paper_row("adj_FFA1_0", Method.ff, Loss.adj_L1, "FF, adjusted L1 (eq 4.2), small final batch")
_paper_row("adj_FFA1_1", Method.ff, Loss.adj_L1, "FF, adjusted L1 (eq 4.2), half the rate")
_paper_row("adj_FFA1_2", Method.ff, Loss.adj_L1, "FF, adjusted L1 (eq 4.2)")
_paper_row("adj_FFA0_2", Method.ff, Loss.adj_L0, "FF, adjusted L0 (eq 4.1), Adam")
_paper_row("adj_FFA1_3", Method.ff, Loss.adj_L1, "FF, adjusted L1 (eq 4.2), Adam")

PAPER_ROWS: list[str] = list(PAPER)

# Beyond the notes: forward gradients on the same MLP (second seed), DNN_base's schedule. The
# weight-perturbed estimate's noise comes from its one random direction, not from the batch, so
# a bigger batch does not allow a bigger step: FG_weight keeps its rate (with it grown, it
# diverges within 10 epochs). Its step, (grad f . v) v, is about sqrt(636,010) times longer than
# the gradient, so it also starts lower: at DNN_base's 1e-3 the full-data loss grew tenfold an
# epoch from epoch 3 on; at 3e-4 it reached 83 % at epoch 12, at 1e-4 75 % at epoch 20.
for _name, _method, _lr, _scaling, _what in [
    ("FG_weight", Method.fg_weight, 3e-4, LrScaling.none,
     "forward gradient, one random direction over all weights"),
    ("FG_activity", Method.fg_activity, 1e-3, LrScaling.linear,
     "forward gradient, perturbed pre-activations per layer"),
    ("FG_local", Method.fg_local, 1e-3, LrScaling.linear,
     "forward gradient of local losses, perturbed pre-activations"),
]:  # fmt: skip
    register(dataclasses.replace(REGISTRY["DNN_base"], name=_name, method=_method, lr=_lr,
                                 lr_scaling=_scaling, description=_what))  # fmt: skip

# Beyond the notes: FF as published at its best (recipe in ffbench/ff_best.py). Its run also
# reports the linear head's accuracy, shown in the table as the row FF_best/head.
register(
    Experiment(
        name="FF_best",
        method=Method.ff_best,
        loss=Loss.L0,
        optimizer=Optimizer.sgd,
        lr=1e-3,
        epochs=100,  # 11 s an epoch on our 2 cores: 100 fit the 30-minute budget
        batch_start=100,
        batch_final=100,
        lr_scaling=LrScaling.none,
        cooldown=0.5,
        momentum=0.9,
        weight_decay=3e-4,
        sizes=(784, 1000, 1000, 1000),
        theta=1000.0,
        stable_loss=True,
        description="FF at its best: 3x1000, RMS norm, hard negatives, peer norm (+ /head)",
    )
)
