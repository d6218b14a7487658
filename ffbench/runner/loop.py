"""The epoch loop every method shares (the method contract: ffbench/methods/__init__.py).

The batch and rate of each epoch come from the schedule, the method trains one epoch on tensors
already on the device, and the host waits for the device once per epoch, to check that the loss
and the weights are still finite (a NaN/inf stops the run as `diverged`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ffbench import methods
from ffbench.core.data import MNIST, hold_out
from ffbench.core.models import N_CLASSES
from ffbench.core.schedules import schedule
from ffbench.core.settings import Denormals, Experiment
from ffbench.methods import Method

EVAL_CHUNK = 10000


def denormals_note(exp: Experiment, device: torch.device) -> str | None:
    """What `denormals=flush` means off the CPU, where a run is about to use it: torch has no
    flush-to-zero switch for CUDA kernels, which keep denormals (the run's device, in its name,
    says which arithmetic it had)."""
    if exp.denormals is Denormals.flush and device.type != "cpu":
        return (f"note: denormals=flush flushes on the CPU only; on {device.type} torch keeps "
                "them, as --set denormals=keep does")  # fmt: skip
    return None


def set_denormals(exp: Experiment) -> None:
    """Float32 values under 1.2e-38 as `exp.denormals` says, in this thread and the intra-op
    threads it starts. `flush` (FTZ/DAZ) treats them as 0: Adam's first moment decays by 0.9 a
    step for a unit whose gradient is 0 (a dead ReLU unit) and passes through the denormal range
    on its way to 0, where arithmetic can be many times slower; such a moment moves a weight by
    ~lr * 1e-31, below a float32 step of any weight (tests/test_training.py).
    `keep` is IEEE 754's gradual underflow, what the authors' GPU computed: it changes the
    arithmetic only where a value under 1.2e-38 occurs (L0's exp(-s) for a margin s past 87.3).
    Either way a CUDA device keeps them (`denormals_note`)."""
    torch.set_flush_denormal(exp.denormals is Denormals.flush)


@dataclass
class TrainResult:
    status: str  # finished | diverged
    test_accuracy: float  # fraction of the 10k test set; NaN when diverged
    train_seconds: float  # wall time of the training loop only (device synchronised)
    epochs_run: int
    diverged_epoch: int | None = None
    records: list[dict] = field(default_factory=list)
    readouts: dict[str, float] = field(default_factory=dict)  # second predictions' accuracies
    validation_accuracy: float = math.nan  # of the held-out training images (exp.validation)
    confusion: list[list[int]] | None = None  # test counts, [true label][predicted label]


@torch.no_grad()
def confusion(predict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Counts of (true label, predicted label) over x, a 10 x 10 matrix on the CPU; `predict`
    maps images to labels."""
    counts = torch.zeros(N_CLASSES * N_CLASSES, dtype=torch.long, device=y.device)
    for s in range(0, len(x), EVAL_CHUNK):
        pairs = y[s : s + EVAL_CHUNK] * N_CLASSES + predict(x[s : s + EVAL_CHUNK])
        counts += torch.bincount(pairs, minlength=N_CLASSES * N_CLASSES)
    return counts.reshape(N_CLASSES, N_CLASSES).cpu()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def state_of(method: Method) -> dict:
    return {
        "modules": {k: m.state_dict() for k, m in method.modules().items()},
        "optimizers": [opt.state_dict() for opt in method.optimizers],
    }


def load_state(method: Method, state: dict) -> None:
    modules, saved = method.modules(), state["modules"]
    if modules.keys() != saved.keys():
        raise ValueError(f"the checkpoint holds {sorted(saved)}, the method has {sorted(modules)}")
    for k, m in modules.items():
        m.load_state_dict(saved[k])
    for opt, opt_state in zip(method.optimizers, state["optimizers"], strict=True):
        opt.load_state_dict(opt_state)


def train(
    exp: Experiment,
    data: MNIST,
    device: torch.device,
    seed: int,
    eval_every: int = 0,
    on_epoch: Callable[[dict], None] | None = None,
    checkpoint: Callable[[dict], None] | None = None,
    checkpoint_every: int = 0,
    resume: dict | None = None,
    method: type[Method] | None = None,
) -> TrainResult:
    """Train `exp` with its method (`method`, else the one registered as `exp.method`) on `data`;
    test accuracy every `eval_every` epochs (0: only after the last).

    Every `checkpoint_every` epochs `checkpoint` receives the whole training state (weights,
    optimizer states, the shuffling generator, the epoch reached, the records so far); passing
    that state back as `resume` continues the run exactly where it was, to the last digit on CPU.
    """
    where = data.x_train.device.type
    if where != device.type:
        raise ValueError(f"the data is on {where}, training on {device.type}; load it with "
                         "ffbench.api.load_data(data_dir, device) for the device it trains "
                         "on")  # fmt: skip
    if exp.validation:
        data = hold_out(data, exp.validation, seed)
    set_denormals(exp)
    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    cls = method or methods.get(exp.method)
    trainer = cls(exp, data, device)
    plan = schedule(
        exp.batch_start, exp.batch_final, exp.epochs, exp.lr,
        exp.batch_growth, exp.lr_scaling, n_train=len(data.x_train), cooldown=exp.cooldown,
    )  # fmt: skip
    records: list[dict] = []
    seconds = 0.0
    done = 0
    if resume is not None:
        load_state(trainer, resume["method"])
        gen.set_state(resume["generator"])
        records, seconds, done = list(resume["records"]), resume["seconds"], resume["epoch"]
    phases, readouts, matrix = cls.phases(exp), trainer.readouts(), None
    params = [p for opt in trainer.optimizers for g in opt.param_groups for p in g["params"]]
    epoch = 0
    for phase in phases:
        for e, (batch, lr) in enumerate(plan, start=1):
            epoch += 1
            if epoch <= done:
                continue
            for opt in trainer.optimizers:
                for group in opt.param_groups:
                    group["lr"] = lr * group.get("lr_scale", 1.0)
            sync(device)
            start = time.perf_counter()
            loss = trainer.train_epoch(phase, batch, gen)
            finite = torch.stack([loss.isfinite()] + [p.isfinite().all() for p in params]).all()
            ok = bool(finite.item())
            seconds += time.perf_counter() - start
            record = {"epoch": epoch, "batch": batch, "rate": lr, "loss": loss.item()}
            if diagnostics := trainer.diagnostics():  # e.g. the FF margins' range in the epoch
                values = torch.stack(list(diagnostics.values())).tolist()
                record |= zip(diagnostics, values, strict=True)
            if phase is not None:
                record["layer"] = phase + 1
            record["seconds"] = seconds
            last = e == len(plan) and phase == phases[-1]
            evaluate = ok and (last or (eval_every > 0 and e % eval_every == 0))
            scored = {"test": (trainer.predict, data.x_test, data.y_test)}
            if data.x_val is not None:
                scored["validation"] = (trainer.predict, data.x_val, data.y_val)
            scored |= {name: (p, data.x_test, data.y_test) for name, p in readouts.items()}
            for name, (predict, x, y) in scored.items():
                counts = confusion(predict, x, y) if evaluate else None
                record[f"{name}_accuracy"] = (
                    counts.trace().item() / len(x) if evaluate else math.nan
                )
                matrix = counts.tolist() if evaluate and name == "test" else matrix
            records.append(record)
            due = checkpoint_every and epoch % checkpoint_every == 0
            if ok and checkpoint and due and not last:
                checkpoint({
                    "epoch": epoch, "seconds": seconds, "records": records,
                    "generator": gen.get_state(), "method": state_of(trainer),
                })  # fmt: skip
            if on_epoch:
                on_epoch(record)
            if not ok:
                return TrainResult("diverged", math.nan, seconds, epoch, epoch, records)
    last = records[-1]
    return TrainResult("finished", last["test_accuracy"], seconds, epoch, None, records,
                       {name: last[f"{name}_accuracy"] for name in readouts},
                       last.get("validation_accuracy", math.nan), matrix)  # fmt: skip
