"""The epoch loop every method shares; each method's task is found in `TASKS`.

The batch and rate of each epoch come from the schedule, the task trains one epoch on tensors
already on the device, and the host waits for the device once per epoch, to check that the loss
and the weights are still finite (a NaN/inf stops the run as `diverged`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ffbench.backprop import BackpropTask
from ffbench.data import MNIST, hold_out
from ffbench.experiment import Experiment, Method
from ffbench.ff import FFTask
from ffbench.ff_best import FFBestTask
from ffbench.forward_grad import ForwardGradTask
from ffbench.schedules import schedule

EVAL_CHUNK = 10000

# The task of each method: its model, optimizers, `train_epoch` and `predict`.
TASKS = {Method.backprop: BackpropTask, Method.ff: FFTask, Method.ff_best: FFBestTask,
         Method.fg_weight: ForwardGradTask, Method.fg_activity: ForwardGradTask,
         Method.fg_local: ForwardGradTask, Method.fg_joint: ForwardGradTask}  # fmt: skip


def flush_denormals() -> None:
    """Treat float32 values under 1.2e-38 as 0 on the CPU (FTZ/DAZ), in this thread and the
    intra-op threads it starts. Adam's first moment decays by 0.9 a step for a unit whose
    gradient is 0 (a dead ReLU unit) and passes through the denormal range on its way to 0; with
    a quarter of layer 1's moments there (adj_FFA0_2 at epoch 60), every Adam step cost ~4 ms
    more than ASGD's at batch 60. Such a moment moves a weight by ~lr * 1e-31, below a float32
    step of any weight, so the weights come out the same (tests/test_training.py)."""
    torch.set_flush_denormal(True)


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


def make_task(exp: Experiment, data: MNIST, device: torch.device):
    """The task that trains `exp`, found by its method in `TASKS`."""
    return TASKS[exp.method](exp, data, device)


@torch.no_grad()
def accuracy(task, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of x whose prediction is y; `task` is a task or a predict function."""
    predict = task if callable(task) else task.predict
    correct = sum(
        (predict(x[s : s + EVAL_CHUNK]) == y[s : s + EVAL_CHUNK]).sum().item()
        for s in range(0, len(x), EVAL_CHUNK)
    )
    return correct / len(x)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def task_modules(task) -> dict[str, torch.nn.Module]:
    """Every module a task trains, by attribute name: its `model`, and any other (FG_local's
    heads), so that a checkpoint cannot leave one out."""
    return {k: v for k, v in vars(task).items() if isinstance(v, torch.nn.Module)}


def task_state(task) -> dict:
    return {
        "modules": {k: m.state_dict() for k, m in task_modules(task).items()},
        "optimizers": [opt.state_dict() for opt in task.optimizers],
    }


def load_task_state(task, state: dict) -> None:
    modules = task_modules(task)
    saved = state.get("modules") or {"model": state["model"]}  # checkpoints before 2026-11-24
    if modules.keys() != saved.keys():
        raise ValueError(f"the checkpoint holds {sorted(saved)}, the task needs {sorted(modules)}")
    for k, m in modules.items():
        m.load_state_dict(saved[k])
    for opt, opt_state in zip(task.optimizers, state["optimizers"], strict=True):
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
) -> TrainResult:
    """Train `exp` on `data`; test accuracy every `eval_every` epochs (0: only after the last).

    Every `checkpoint_every` epochs `checkpoint` receives the whole training state (weights,
    optimizer states, the shuffling generator, the epoch reached, the records so far); passing
    that state back as `resume` continues the run exactly where it was, to the last digit on CPU.
    """
    where = data.x_train.device.type
    if where != device.type:
        raise ValueError(
            f"the data is on {where}, training on {device.type}; load it with "
            "ffbench.data.load(root, device) for the device it trains on"
        )
    if exp.validation:
        data = hold_out(data, exp.validation, seed)
    flush_denormals()
    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    task = make_task(exp, data, device)
    plan = schedule(
        exp.batch_start, exp.batch_final, exp.epochs, exp.lr,
        exp.batch_growth, exp.lr_scaling, n_train=len(data.x_train), cooldown=exp.cooldown,
    )  # fmt: skip
    records: list[dict] = []
    seconds = 0.0
    done = 0
    if resume is not None:
        load_task_state(task, resume["task"])
        gen.set_state(resume["generator"])
        records, seconds, done = list(resume["records"]), resume["seconds"], resume["epoch"]
    epoch = 0
    params = [p for opt in task.optimizers for g in opt.param_groups for p in g["params"]]
    for phase in task.phases:
        for e, (batch, lr) in enumerate(plan, start=1):
            epoch += 1
            if epoch <= done:
                continue
            for opt in task.optimizers:
                for group in opt.param_groups:
                    group["lr"] = lr * group.get("lr_scale", 1.0)
            _sync(device)
            start = time.perf_counter()
            loss = task.train_epoch(phase, batch, gen)
            finite = torch.stack([loss.isfinite()] + [p.isfinite().all() for p in params]).all()
            ok = bool(finite.item())
            seconds += time.perf_counter() - start
            record = {"epoch": epoch, "batch": batch, "rate": lr, "loss": loss.item()}
            if hasattr(task, "diagnostics"):  # e.g. the FF margins' range in the epoch
                diagnostics = task.diagnostics()
                values = torch.stack(list(diagnostics.values())).tolist()
                record |= zip(diagnostics, values, strict=True)
            if phase is not None:
                record["layer"] = phase + 1
            record["seconds"] = seconds
            last = e == len(plan) and phase == task.phases[-1]
            evaluate = ok and (last or (eval_every > 0 and e % eval_every == 0))
            record["test_accuracy"] = (
                accuracy(task, data.x_test, data.y_test) if evaluate else math.nan
            )
            if data.x_val is not None:
                record["validation_accuracy"] = (
                    accuracy(task, data.x_val, data.y_val) if evaluate else math.nan
                )
            for name, predict in getattr(task, "readouts", {}).items():
                record[f"{name}_accuracy"] = (
                    accuracy(predict, data.x_test, data.y_test) if evaluate else math.nan
                )
            records.append(record)
            if (
                ok
                and checkpoint
                and checkpoint_every
                and epoch % checkpoint_every == 0
                and not last
            ):
                checkpoint({
                    "epoch": epoch, "seconds": seconds, "records": records,
                    "generator": gen.get_state(), "task": task_state(task),
                })  # fmt: skip
            if on_epoch:
                on_epoch(record)
            if not ok:
                return TrainResult("diverged", math.nan, seconds, epoch, epoch, records)
    last = records[-1]
    readouts = {name: last[f"{name}_accuracy"] for name in getattr(task, "readouts", {})}
    return TrainResult("finished", last["test_accuracy"], seconds, epoch, None, records, readouts,
                       last.get("validation_accuracy", math.nan))  # fmt: skip
