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

from ffbench.data import MNIST, PIXEL_SCALE
from ffbench.experiments import (
    DnnOutput,
    Experiment,
    LayerOrder,
    Method,
    Negatives,
    Optimizer,
    OptimizerScope,
)
from ffbench.losses import LOSS_FORMS, ff_loss, goodness
from ffbench.models import MLP, N_CLASSES, FFNet, encode_images, overlay_label
from ffbench.schedules import batch_slices, schedule

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


def mse_on_softmax(out: torch.Tensor, y: torch.Tensor, b: int) -> torch.Tensor:
    """The authors' DNN loss (FFA/FFA.ipynb cell 3): MSELoss between softmax(output) and the
    one-hot label, a mean over the b x 10 entries of the batch (this chunk's share of it)."""
    target = F.one_hot(y, N_CLASSES).to(out.dtype)
    return F.mse_loss(F.softmax(out, dim=1), target, reduction="sum") / (b * N_CLASSES)


DNN_LOSSES = {
    DnnOutput.logits_ce: lambda out, y, b: F.cross_entropy(out, y, reduction="sum") / b,
    DnnOutput.softmax_mse: mse_on_softmax,
}


class BackpropTask:
    """DNN_base: a ReLU MLP, every layer from one backward pass of the reading's loss
    (cross-entropy on the logits, or the authors' MSE on the softmax).

    The loss is a mean over samples, so a batch larger than `chunk` is taken in chunks whose
    gradients add up before the one optimizer step: the same update, activations in cache."""

    def __init__(self, exp: Experiment, data: MNIST, device: torch.device, chunk: int = 4096):
        self.exp = exp
        self.data = data
        self.chunk = chunk
        self.scale = PIXEL_SCALE[exp.pixels]
        self.x_train = data.x_train * self.scale if self.scale != 1 else data.x_train
        self.model = MLP(exp.sizes, bias=exp.bias).to(device)
        self.optimizers = [make_optimizer(exp.optimizer, self.model.parameters(), exp.lr, device)]
        self.phases: list[int | None] = [None]
        self.loss_of = DNN_LOSSES[exp.dnn_output]

    def train_epoch(self, phase, batch: int, gen: torch.Generator) -> torch.Tensor:
        n = len(self.x_train)
        perm = torch.randperm(n, device=self.x_train.device, generator=gen)
        x, y = self.x_train[perm], self.data.y_train[perm]
        (opt,) = self.optimizers
        total = torch.zeros((), device=x.device)
        seen = 0
        for s, b in batch_slices(n, batch, self.exp.batching):
            opt.zero_grad(set_to_none=True)
            total += self.batch_gradients(x[s : s + b], y[s : s + b], gen) * b
            opt.step()
            seen += b
        return total / seen

    def batch_gradients(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
        """Set every parameter's .grad for one batch; returns the batch's mean loss (detached)."""
        b = len(x)
        total = torch.zeros((), device=x.device)
        for c in range(0, b, self.chunk):
            loss = self.loss_of(self.model(x[c : c + self.chunk]), y[c : c + self.chunk], b)
            loss.backward()
            total += loss.detach()
        return total

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.predict(x * self.scale if self.scale != 1 else x)


def other_image_negatives(perm: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
    """Eq 3.3: for the sample at each position of the epoch's shuffle, another sample's image
    j = i + shift != i (mod n), drawn afresh every epoch, with this sample's label. Returns
    draw(s, b) -> (negative images, their labels) for the positions s .. s+b-1."""
    n = len(perm)
    neg = (perm + torch.randint(1, n, (n,), device=perm.device, generator=gen)) % n
    return lambda s, b: (neg[s : s + b], y[perm[s : s + b]])


def wrong_label_negatives(perm: torch.Tensor, y: torch.Tensor, gen: torch.Generator):
    """The authors' negatives (core/FFA.py:45): the same image with a wrong label, y + U{1..9}
    mod 10, drawn afresh for every batch."""

    def draw(s: int, b: int):
        idx = perm[s : s + b]
        shift = torch.randint(1, N_CLASSES, (b,), device=perm.device, generator=gen)
        return idx, (y[idx] + shift) % N_CLASSES

    return draw


NEGATIVES = {Negatives.other_image: other_image_negatives,
             Negatives.wrong_label: wrong_label_negatives}  # fmt: skip


def layer_passes(order: LayerOrder, n_layers: int, phase: int | None) -> list[list[int]]:
    """The layers each optimizer step of a batch trains: all at once on one forward pass
    (per-batch), or one after another, each on its predecessor's updated output (sequential,
    core/FFA.py:60-63); a greedy phase trains its one layer."""
    if phase is not None:
        return [[phase]]
    if order == LayerOrder.sequential:
        return [[i] for i in range(n_layers)]
    return [list(range(n_layers))]


class FFTask:
    """Forward-Forward: every layer minimises its own loss on positive and negative data.

    Positive: an image with its own label in the first 10 pixels. Negative: the reading's
    (`NEGATIVES`). Each layer trains on a detached input, so the sum of the layer losses gives
    every layer exactly the gradient of its own loss. The reading's other switches are composed
    here: the image encoding (`encode_images`), the net (`FFNet`), the loss form (`LOSS_FORMS`),
    the batches (`batch_slices`), the layer passes (`layer_passes`) and the optimizer scope.

    This is the fast path; `ReferenceFFTask` is the text reading written the obvious way, and
    tests/authors_loop.py the code reading. The first layer's inputs are gathered ready-made:
    a one-hot label has norm 1, so the labelled input's norm is the same whatever the label,
    and base = image / that norm is computed once per run (`encode_images`).
    """

    def __init__(self, exp: Experiment, data: MNIST, device: torch.device, chunk: int = 2048):
        self.exp = exp
        self.chunk = chunk
        self.data = data
        self.model = FFNet(exp.sizes, exp.normalize_input, exp.bias, exp.norm_eps,
                           exp.goodness).to(device)  # fmt: skip
        self.shared = exp.optimizer_scope == OptimizerScope.shared
        groups = [self.model] if self.shared else list(self.model.layers)
        self.optimizers = [make_optimizer(exp.optimizer, m.parameters(), exp.lr, device)
                           for m in groups]  # fmt: skip
        n_layers = len(self.model.layers)
        self.phases = list(range(n_layers)) if exp.layer_order == LayerOrder.greedy else [None]
        self.scale = PIXEL_SCALE[exp.pixels]
        self.encode = lambda x: encode_images(x * self.scale, exp.label_input,
                                              exp.normalize_input, exp.norm_eps)  # fmt: skip
        self.x_base, self.v = self.encode(data.x_train)
        self.loss_terms = LOSS_FORMS[exp.loss_form]

    def optimizers_of(self, layers: list[int]) -> list:
        """The optimizers a pass over `layers` steps. One shared optimizer steps every parameter
        after every pass: the authors' `zero_grad()` kept zeros (torch < 2.0), so the idle
        layer takes a decay-only ASGD step (core/dojo.py:42, core/FFALayer.py:29-32)."""
        return self.optimizers if self.shared else [self.optimizers[i] for i in layers]

    def fill(self, out: torch.Tensor, idx, neg_img, neg_label) -> torch.Tensor:
        """out[:k] = positives (images idx with their labels), out[k:] = the k negatives."""
        k = len(idx)
        x = out[: 2 * k]
        torch.index_select(self.x_base, 0, idx, out=x[:k])
        torch.index_select(self.x_base, 0, neg_img, out=x[k:])
        labels = torch.cat([self.data.y_train[idx], neg_label])
        x[:, :N_CLASSES] = (
            F.one_hot(labels, N_CLASSES).to(x.dtype) * self.v[torch.cat([idx, neg_img])][:, None]
        )
        return x

    def layer_losses(self, layers: list[int], x: torch.Tensor, k: int) -> torch.Tensor:
        """Sum over `layers` (consecutive) of their FF-loss terms, for x holding k labelled
        first-layer inputs, then their k negatives; earlier layers only forward (no gradient)."""
        exp, model = self.exp, self.model
        h = model.hidden(x, layers[0])
        gs = model.goodnesses(h, input_normalized=True, first=layers[0], stop=layers[-1] + 1)
        terms = (self.loss_terms(exp.loss, g[:k], g[k:], exp.theta, exp.stable_loss) for g in gs)
        return sum(t.sum() for t in terms)

    def train_epoch(self, phase, batch: int, gen: torch.Generator) -> torch.Tensor:
        """One epoch of FF steps; returns the mean over batches of the summed layer losses. A
        batch is taken in chunks of at most `chunk` pairs whose gradients add up before the
        optimizer step: the same update as one pass over the whole batch, in cache."""
        n, width = self.x_base.shape
        perm = torch.randperm(n, device=self.x_base.device, generator=gen)
        draw = NEGATIVES[self.exp.negatives](perm, self.data.y_train, gen)
        passes = layer_passes(self.exp.layer_order, len(self.model.layers), phase)
        chunk = min(batch, n, self.chunk)
        buf = self.x_base.new_empty(2 * chunk, width)
        total = torch.zeros((), device=self.x_base.device)
        seen = 0
        for s, b in batch_slices(n, batch, self.exp.batching):
            idx = perm[s : s + b]
            neg_img, neg_label = draw(s, b)
            for layers in passes:
                opts = self.optimizers_of(layers)
                for opt in opts:
                    opt.zero_grad(set_to_none=not self.shared)
                for c in range(0, b, chunk):
                    k = min(chunk, b - c)
                    x = self.fill(buf, idx[c : c + k], neg_img[c : c + k], neg_label[c : c + k])
                    loss = self.layer_losses(layers, x, k) / (2 * b)
                    loss.backward()
                    total += loss.detach() * b
                for opt in opts:
                    opt.step()
            seen += b
        return total / seen

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Section 2: every label is tried and the best total goodness wins."""
        return self.model.goodness_per_label(*self.encode(x)).argmax(dim=1)


class ReferenceFFTask(FFTask):
    """The obvious FF loop of the text reading, kept to test and time the fast one against:
    label overlays built per batch, positives and negatives in separate passes, every layer's
    input re-forwarded from the image, plain autograd, whole batches. Same shuffles, negatives
    and updates as `FFTask` under the text reading."""

    def train_epoch(self, phase, batch: int, gen: torch.Generator) -> torch.Tensor:
        if phase is not None:
            raise ValueError("the reference loop trains all layers on every batch")
        exp, model, d = self.exp, self.model, self.data
        n = len(d.x_train)
        perm = torch.randperm(n, device=d.x_train.device, generator=gen)
        neg = (perm + torch.randint(1, n, (n,), device=perm.device, generator=gen)) % n
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
