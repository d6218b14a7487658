"""Training methods, registered by name. A method is one class in one file (as benchopt's
solvers): it says what it reads and can do, and trains; everything else asks it.

    @register
    class MyMethod(Method):
        name = "my_method"
        reads = Method.reads | {"theta"}      # the settings it honours
        def __init__(self, exp, data, device): ...   # its model(s) and `self.optimizers`
        def train_epoch(self, phase, batch, gen): ...  # one epoch; its mean loss (a tensor)
        def predict(self, x): ...                      # labels of images x

The epoch loop (ffbench/runner/loop.py) sets the rate of every optimizer, times, checkpoints
(`modules`, `optimizers`), evaluates (`predict`, `readouts`) and records (`diagnostics`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch

from ffbench.core.names import UnknownName, lookup
from ffbench.core.optimizers import check_optimizer
from ffbench.core.settings import Experiment

# What the epoch loop reads for every method (the schedule, the data, the optimizer), and so
# what every method must honour: its pixels, batches and layer sizes included.
LOOP_READS = frozenset({
    "method", "optimizer", "lr", "epochs", "batch_start", "batch_final", "batch_growth",
    "lr_scaling", "cooldown", "momentum", "weight_decay", "sizes", "train_subset", "validation",
    "pixels", "batching", "denormals",
})  # fmt: skip


class Method:
    """The contract of a training method. Class attributes and class methods describe it before
    anything is built (validation of `--set`, the cost model, the progress display); an
    instance trains one run."""

    name: ClassVar[str]
    reads: ClassVar[frozenset[str]] = LOOP_READS  # the settings it honours; others it never reads
    negatives: ClassVar[tuple[str, ...]] = ()  # the kinds of negative data it can draw
    losses: ClassVar[tuple] = ()  # the losses it trains, where it reads `loss`

    optimizers: list[torch.optim.Optimizer]  # set by __init__; the loop sets their rates

    @classmethod
    def check(cls, exp: Experiment) -> str | None:
        """Why this method cannot train `exp` as set (the fix included), or None."""
        if "negatives" in cls.reads and exp.negatives.value not in cls.negatives:
            return (f"{exp.name} draws no {exp.negatives.value} negatives; "
                    f"--set negatives={' or '.join(cls.negatives)}")  # fmt: skip
        if "loss" in cls.reads and exp.loss not in cls.losses:
            return (f"{exp.name} trains no {exp.loss.value} loss; "
                    f"--set loss={' or '.join(loss.value for loss in cls.losses)}")  # fmt: skip
        return check_optimizer(exp.optimizer, exp.momentum)

    @classmethod
    def phases(cls, exp: Experiment) -> list[int | None]:
        """The passes over the schedule: [None] (every layer every epoch), or one per layer."""
        return [None]

    @classmethod
    def epochs_in_all(cls, exp: Experiment) -> int:
        return exp.epochs * len(cls.phases(exp))

    @classmethod
    def flops_per_sample(cls, exp: Experiment) -> int:
        """Essential matrix FLOPs of one training sample (`ffbench bench`, `--jobs` order)."""
        raise NotImplementedError

    def __init__(self, exp: Experiment, data, device: torch.device):
        raise NotImplementedError

    def train_epoch(self, phase: int | None, batch: int, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def modules(self) -> dict[str, torch.nn.Module]:
        """Every module it trains, by name: what a checkpoint saves."""
        return {"model": self.model}

    def readouts(self) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
        """Second predictions of the same run, by name (FF_best's head), scored beside `predict`."""
        return {}

    def diagnostics(self) -> dict[str, torch.Tensor]:
        """Scalars recorded with each epoch (FF's margin range), read once per epoch."""
        return {}


METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    if METHODS.get(cls.name, cls) is not cls:
        raise ValueError(f"method {cls.name} is registered twice")
    METHODS[cls.name] = cls
    return cls


class UnknownMethod(UnknownName):
    kind, see = "method", "see `ffbench list`"


def get(name: str) -> type[Method]:
    return lookup(METHODS, name, UnknownMethod)


def readers(key: str) -> list[str]:
    """The methods that read the setting `key`."""
    return [name for name, cls in METHODS.items() if key in cls.reads]


from ffbench.methods import backprop, ff, ff_best, forward_grad  # noqa: E402, F401  (registers)
