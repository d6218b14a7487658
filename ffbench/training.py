"""Training loops: backprop for DNN_base, Forward-Forward for the FFA rows (sections 2-4).

Both share one epoch loop: the batch and rate come from the schedule, batches are slices of
tensors already on the device, and the host waits for the device once per epoch, to check that
the loss and the weights are still finite (a NaN/inf stops the run as `diverged`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ffbench.data import MNIST
from ffbench.experiments import Experiment, LayerOrder, Method, Optimizer
from ffbench.losses import ff_loss, ff_loss_terms, goodness
from ffbench.models import MLP, N_CLASSES, NORM_EPS, FFNet, overlay_label
from ffbench.schedules import schedule

EVAL_CHUNK = 10000


def flush_denormals() -> None:
    """Treat float32 values under 1.2e-38 as 0 on the CPU (FTZ/DAZ), in this thread and the
    intra-op threads it starts. Adam's first moment decays by 0.9 a step for a unit whose
    gradient is 0 (a dead ReLU unit) and passes through the denormal range on its way to 0; with
    a quarter of layer 1's moments there (adj_FFA0_2 at epoch 60), every Adam step cost ~4 ms
    more than ASGD's at batch 60. Such a moment moves a weight by ~lr * 1e-31, below a float32
    step of any weight, so the weights come out the same (tests/test_training.py)."""
    torch.set_flush_denormal(True)


def make_optimizer(kind: Optimizer, params, lr: float, device: torch.device):
    """torch's ASGD or Adam with their defaults. On a GPU, ASGD keeps its step counters on the
    device (`capturable`): otherwise every step reads them back to the host, a sync per step.
    Adam is torch's fused kernel, one pass over each parameter instead of about ten elementwise
    ops (one thread, a 800x784 layer: about 1 ms a step against 2-4 ms). Same updates, up to
    float rounding (tests/test_training.py)."""
    if kind == Optimizer.asgd:
        return torch.optim.ASGD(params, lr=lr, capturable=device.type == "cuda")
    if kind == Optimizer.adam:
        return torch.optim.Adam(params, lr=lr, fused=True)
    raise ValueError(f"{kind.value}: only FF_best's task sets up SGD (momentum, weight decay)")


class BackpropTask:
    """DNN_base: cross-entropy on the logits of a ReLU MLP, every layer from one backward pass.

    The loss is a mean over samples, so a batch larger than `chunk` is taken in chunks whose
    gradients add up before the one optimizer step: the same update, activations in cache."""

    def __init__(self, exp: Experiment, data: MNIST, device: torch.device, chunk: int = 4096):
        self.data = data
        self.chunk = chunk
        self.model = MLP(exp.sizes).to(device)
        self.optimizers = [make_optimizer(exp.optimizer, self.model.parameters(), exp.lr, device)]
        self.phases: list[int | None] = [None]

    def train_epoch(self, phase, batch: int, gen: torch.Generator) -> torch.Tensor:
        d = self.data
        n = len(d.x_train)
        perm = torch.randperm(n, device=d.x_train.device, generator=gen)
        x, y = d.x_train[perm], d.y_train[perm]
        (opt,) = self.optimizers
        total = torch.zeros((), device=x.device)
        for s in range(0, n, batch):
            b = min(batch, n - s)
            opt.zero_grad(set_to_none=True)
            total += self.batch_gradients(x[s : s + b], y[s : s + b], gen) * b
            opt.step()
        return total / n

    def batch_gradients(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
        """Set every parameter's .grad for one batch; returns the batch's mean loss (detached)."""
        b = len(x)
        total = torch.zeros((), device=x.device)
        for c in range(0, b, self.chunk):
            loss = F.cross_entropy(self.model(x[c : c + self.chunk]), y[c : c + self.chunk],
                                   reduction="sum") / b  # fmt: skip
            loss.backward()
            total += loss.detach()
        return total

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.predict(x)


class FFTask:
    """Forward-Forward: every layer minimises its own loss on positive and negative data.

    Positive: an image with its own label in the first 10 pixels. Negative (eq 3.3): another
    sample's image x_j, j != i, with label y_i, one per sample, drawn afresh every epoch.
    Each layer has its own optimizer and a detached input, so the sum of the layer losses
    gives every layer exactly the gradient of its own loss.

    This is the fast path; `ReferenceFFTask` is the same mathematics written the obvious way.
    The first layer's normalised inputs are gathered ready-made: a one-hot label overlay has norm 1,
    so ||overlay(x_j)||^2 = ||x_j without its first 10 pixels||^2 + 1 whatever the label, and
    x_j / ||overlay(x_j)|| is computed once per run.
    """

    def __init__(self, exp: Experiment, data: MNIST, device: torch.device, chunk: int = 2048):
        self.exp = exp
        self.chunk = chunk
        self.data = data
        self.model = FFNet(exp.sizes, exp.normalize_input).to(device)
        self.optimizers = [
            make_optimizer(exp.optimizer, m.parameters(), exp.lr, device) for m in self.model.layers
        ]
        n_layers = len(self.model.layers)
        self.phases = list(range(n_layers)) if exp.layer_order == LayerOrder.greedy else [None]
        x = data.x_train
        self.onehot = F.one_hot(data.y_train, N_CLASSES).to(x.dtype)
        self.inv_norm = 1.0 / (torch.sqrt(x[:, N_CLASSES:].square().sum(1) + 1.0) + NORM_EPS)
        if not exp.normalize_input:  # the first layer takes the raw overlaid image
            self.inv_norm = torch.ones_like(self.inv_norm)
        self.x_scaled = x * self.inv_norm[:, None]  # x_j / ||overlay(x_j)||, label pixels 0
        self.x_scaled[:, :N_CLASSES] = 0.0
        self.x_pos = self.x_scaled.clone()
        self.x_pos[:, :N_CLASSES] = self.onehot * self.inv_norm[:, None]

    def epoch_indices(self, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A shuffle of the samples, and for each the image of its negative (eq 3.3): another
        sample j = i + shift != i (mod n), drawn afresh every epoch."""
        n = len(self.data.x_train)
        device = self.data.x_train.device
        perm = torch.randperm(n, device=device, generator=gen)
        shift = torch.randint(1, n, (n,), device=device, generator=gen)
        return perm, (perm + shift) % n

    def layer_losses(self, phase: int | None, x: torch.Tensor, b: int) -> torch.Tensor:
        """Sum over the layers trained in `phase` of their FF-loss terms, for x holding b
        positives, then their b negatives (already normalised for the first layer)."""
        exp, model = self.exp, self.model
        if phase is None:
            gs = model.goodnesses(x, input_normalized=True)
        else:
            with torch.no_grad():
                for i in range(phase):
                    x = model.layer_forward(i, x)
            gs = [goodness(model.layer_forward(phase, x))]
        terms = (ff_loss_terms(exp.loss, g[:b], g[b:], exp.theta, exp.stable_loss) for g in gs)
        return sum(t.sum() for t in terms)

    def train_epoch(self, phase, batch: int, gen: torch.Generator) -> torch.Tensor:
        """One epoch of FF steps. The loss is a mean of per-sample terms, so a batch is taken in
        chunks of at most `chunk` pairs whose gradients add up before the single optimizer step:
        the same update as one pass over the whole batch, with activations that fit in cache."""
        perm, neg = self.epoch_indices(gen)
        n, width = self.x_pos.shape
        opts = self.optimizers if phase is None else [self.optimizers[phase]]
        chunk = min(batch, n, self.chunk)
        buf = self.x_pos.new_empty(2 * chunk, width)
        total = torch.zeros((), device=self.x_pos.device)
        for s in range(0, n, batch):
            b = min(batch, n - s)
            for opt in opts:
                opt.zero_grad(set_to_none=True)
            for c in range(s, s + b, chunk):
                k = min(chunk, s + b - c)
                idx, j = perm[c : c + k], neg[c : c + k]
                x = buf[: 2 * k]  # k positives, then their k negatives
                torch.index_select(self.x_pos, 0, idx, out=x[:k])
                torch.index_select(self.x_scaled, 0, j, out=x[k:])
                # another sample's image with this sample's label
                x[k:, :N_CLASSES] = self.onehot[idx] * self.inv_norm[j, None]
                loss = self.layer_losses(phase, x, k) / (2 * b)
                loss.backward()
                total += loss.detach() * b
            for opt in opts:
                opt.step()
        return total / n

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.predict(x)


class ReferenceFFTask(FFTask):
    """The obvious FF loop, kept to test and time the fast one against: label overlays built per
    batch, positives and negatives in separate passes, every layer's input re-forwarded from the
    image, plain autograd, whole batches. Same shuffles, negatives and updates as `FFTask`."""

    def train_epoch(self, phase, batch: int, gen: torch.Generator) -> torch.Tensor:
        if phase is not None:
            raise ValueError("the reference loop trains all layers on every batch")
        exp, model, d = self.exp, self.model, self.data
        perm, neg = self.epoch_indices(gen)
        n = len(d.x_train)
        total = torch.zeros((), device=d.x_train.device)
        for s in range(0, n, batch):
            idx = perm[s : s + batch]
            labels = d.y_train[idx]
            x_pos = overlay_label(d.x_train[idx], labels)
            x_neg = overlay_label(d.x_train[neg[s : s + batch]], labels)
            for opt in self.optimizers:
                opt.zero_grad(set_to_none=True)
            for layer in range(len(model.layers)):
                h_pos, h_neg = x_pos, x_neg
                with torch.no_grad():
                    for i in range(layer):
                        h_pos, h_neg = model.layer_forward(i, h_pos), model.layer_forward(i, h_neg)
                g_pos = goodness(model.layer_forward(layer, h_pos))
                g_neg = goodness(model.layer_forward(layer, h_neg))
                loss = ff_loss(exp.loss, g_pos, g_neg, exp.theta, exp.stable_loss)
                loss.backward()
                total += loss.detach() * len(idx)
            for opt in self.optimizers:
                opt.step()
        return total / n

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.goodness_per_label_plain(x).argmax(dim=1)


@dataclass
class TrainResult:
    status: str  # finished | diverged
    test_accuracy: float  # fraction of the 10k test set; NaN when diverged
    train_seconds: float  # wall time of the training loop only (device synchronised)
    epochs_run: int
    diverged_epoch: int | None = None
    records: list[dict] = field(default_factory=list)
    readouts: dict[str, float] = field(default_factory=dict)  # second predictions' accuracies


def make_task(exp: Experiment, data: MNIST, device: torch.device):
    if exp.method == Method.backprop:
        return BackpropTask(exp, data, device)
    if exp.method == Method.ff:
        return FFTask(exp, data, device)
    if exp.method == Method.ff_best:
        from ffbench.ff_best import FFBestTask

        return FFBestTask(exp, data, device)
    from ffbench.forward_grad import ForwardGradTask

    return ForwardGradTask(exp, data, device)


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
    for phase in task.phases:
        opts = task.optimizers if phase is None else [task.optimizers[phase]]
        params = [p for opt in opts for g in opt.param_groups for p in g["params"]]
        for e, (batch, lr) in enumerate(plan, start=1):
            epoch += 1
            if epoch <= done:
                continue
            for opt in opts:
                for group in opt.param_groups:
                    group["lr"] = lr * group.get("lr_scale", 1.0)
            _sync(device)
            start = time.perf_counter()
            loss = task.train_epoch(phase, batch, gen)
            finite = torch.stack([loss.isfinite()] + [p.isfinite().all() for p in params]).all()
            ok = bool(finite.item())
            seconds += time.perf_counter() - start
            record = {"epoch": epoch, "batch": batch, "rate": lr, "loss": loss.item()}
            if phase is not None:
                record["layer"] = phase + 1
            record["seconds"] = seconds
            last = e == len(plan) and phase == task.phases[-1]
            evaluate = ok and (last or (eval_every > 0 and e % eval_every == 0))
            record["test_accuracy"] = (
                accuracy(task, data.x_test, data.y_test) if evaluate else math.nan
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
    return TrainResult("finished", last["test_accuracy"], seconds, epoch, None, records, readouts)
