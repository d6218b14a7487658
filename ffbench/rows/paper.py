"""The notes' table (section 4), as printed, and its ten rows: each row's settings come from its
line of the table (NAN kept as NAN), the rest from the reading it runs under."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ffbench.core.losses import Loss
from ffbench.core.optimizers import Optimizer
from ffbench.core.settings import Experiment
from ffbench.rows import PAPER_ROWS, register

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


def parse(text: str) -> dict[str, PaperRow]:
    rows = {}
    for line in text.splitlines()[1:]:
        name, opt, epochs, rate, start, final, time, acc = line.split()
        accuracy = math.nan if acc == "NAN" else float(acc.rstrip("%"))
        rows[name] = PaperRow(
            name, Optimizer(opt.lower()), int(epochs), float(rate), int(start), int(final), time,
            accuracy,
        )  # fmt: skip
    return rows


PAPER: dict[str, PaperRow] = parse(PAPER_TABLE)

# Each row's method, loss and what it is; its line of the table gives the rest.
ROWS = [
    ("DNN_base", "backprop", Loss.cross_entropy, "backprop MLP, cross-entropy"),
    ("FFA0", "ff", Loss.L0, "FF, KL-minimisation loss L0 (eq 3.13)"),
    ("FFA1", "ff", Loss.L1, "FF, KL-maximisation loss L1 (eq 3.16)"),
    ("adj_FFA0_0", "ff", Loss.adj_L0, "FF, adjusted L0 (eq 4.1), small final batch"),
    ("adj_FFA0_1", "ff", Loss.adj_L0, "FF, adjusted L0 (eq 4.1)"),
    ("adj_FFA1_0", "ff", Loss.adj_L1, "FF, adjusted L1 (eq 4.2), small final batch"),
    ("adj_FFA1_1", "ff", Loss.adj_L1, "FF, adjusted L1 (eq 4.2), half the rate"),
    ("adj_FFA1_2", "ff", Loss.adj_L1, "FF, adjusted L1 (eq 4.2)"),
    ("adj_FFA0_2", "ff", Loss.adj_L0, "FF, adjusted L0 (eq 4.1), Adam"),
    ("adj_FFA1_3", "ff", Loss.adj_L1, "FF, adjusted L1 (eq 4.2), Adam"),
]

for name, method, loss, description in ROWS:
    p = PAPER[name]
    register(Experiment(name=name, method=method, loss=loss, optimizer=p.optimizer, lr=p.lr,
                        epochs=p.epochs, batch_start=p.batch_start, batch_final=p.batch_final,
                        description=description))  # fmt: skip
    PAPER_ROWS.append(name)
