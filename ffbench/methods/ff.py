"""Forward-Forward training of the notes' FF rows (sections 2-4), every reading switch composed."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ffbench.core.data import MNIST, pixel_values
from ffbench.core.losses import FF_LOSSES, LOSS_FORMS, ff_loss, goodness, margins
from ffbench.core.models import N_CLASSES, FFNet, chunk_size, encode_images, overlay_label
from ffbench.core.optimizers import make_optimizer
from ffbench.core.schedules import batch_slices
from ffbench.core.settings import Experiment, LayerOrder, Negatives, OptimizerScope
from ffbench.methods import Method, register
from ffbench.methods.backprop import pairs


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


NO_MARGINS = (torch.inf, -torch.inf)  # (smallest, largest) margin before any is seen

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


def flops_per_sample(sizes: tuple[int, ...], sequential: bool = False) -> int:
    """FF: a positive and a negative row, each with forward and weight gradient of every layer
    (inputs are detached: no input gradient). `sequential` (the code reading): layer l trains on
    the updated output of the layers below, so those forward once more for each layer above."""
    layers = pairs(sizes)
    again = sum(2 * a * b * (len(layers) - 1 - i) for i, (a, b) in enumerate(layers))
    return 2 * (sum(4 * a * b for a, b in layers) + (again if sequential else 0))


@register
class FF(Method):
    """Forward-Forward: every layer minimises its own loss on positive and negative data.

    Positive: an image with its own label in the first 10 pixels. Negative: the reading's
    (`NEGATIVES`). Each layer trains on a detached input, so the sum of the layer losses gives
    every layer exactly the gradient of its own loss. The reading's other switches are composed
    here: the image encoding (`encode_images`), the net (`FFNet`), the loss form (`LOSS_FORMS`),
    the batches (`batch_slices`), the layer passes (`layer_passes`) and the optimizer scope.

    This is the fast path; `ReferenceFF` is the text reading written the obvious way, and
    tests/authors_loop.py the code reading. The first layer's inputs are gathered ready-made:
    a one-hot label has norm 1, so the labelled input's norm is the same whatever the label,
    and base = image / that norm is computed once per run (`encode_images`).
    """

    name = "ff"
    reads = Method.reads | {"loss", "theta", "stable_loss", "normalize_input", "layer_order",
                            "label_input", "bias", "norm_eps", "goodness", "loss_form",
                            "negatives", "optimizer_scope"}  # fmt: skip
    negatives, losses = tuple(n.value for n in NEGATIVES), FF_LOSSES

    @classmethod
    def phases(cls, exp: Experiment) -> list[int | None]:
        """Greedy FF trains the layers one after another, each for all epochs."""
        return list(range(len(exp.sizes) - 1)) if exp.layer_order == LayerOrder.greedy else [None]

    @classmethod
    def flops_per_sample(cls, exp: Experiment) -> int:
        return flops_per_sample(exp.sizes, exp.layer_order == LayerOrder.sequential)

    def __init__(
        self, exp: Experiment, data: MNIST, device: torch.device, chunk: int | None = None
    ):
        self.exp = exp
        self.extremes = torch.tensor(NO_MARGINS, device=device)
        self.chunk = chunk or chunk_size(device, 2048)
        self.eval_chunk = chunk_size(device, 512)
        self.data = data
        self.model = FFNet(exp.sizes, exp.normalize_input, exp.bias, exp.norm_eps,
                           exp.goodness).to(device)  # fmt: skip
        self.shared = exp.optimizer_scope == OptimizerScope.shared
        groups = [self.model] if self.shared else list(self.model.layers)
        self.optimizers = [make_optimizer(exp, m.parameters(), device) for m in groups]
        self.encode = lambda x: encode_images(pixel_values(x, exp.pixels), exp.label_input,
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
        with torch.no_grad():
            s = torch.cat([margins(g[:k], g[k:], exp.theta) for g in gs])
            lo, hi = torch.aminmax(s)
            low, high = self.extremes
            self.extremes = torch.stack([low.fmin(lo), high.fmax(hi)])  # fmin, fmax: skip NaN
        terms = (self.loss_terms(exp.loss, g[:k], g[k:], exp.theta, exp.stable_loss) for g in gs)
        return sum(t.sum() for t in terms)

    def diagnostics(self) -> dict[str, torch.Tensor]:
        """The smallest and largest margin s = (g+ - theta) (+) (theta - g-) of any sample and
        layer since the last call: the literal losses break where exp(+-s) leaves float32 (|s|
        near 88.7; 87.3 where denormals flush to zero), whatever the mean loss says."""
        lo, hi = self.extremes
        self.extremes = torch.tensor(NO_MARGINS, device=lo.device)
        return {"margin_min": lo, "margin_max": hi}

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
        total = torch.zeros((), dtype=torch.float64, device=self.x_base.device)
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
        return self.model.goodness_per_label(*self.encode(x), self.eval_chunk).argmax(dim=1)


class ReferenceFF(FF):
    """The obvious FF loop of the text reading, kept to test and time the fast one against:
    label overlays built per batch, positives and negatives in separate passes, every layer's
    input re-forwarded from the image, plain autograd, whole batches. Same shuffles, negatives
    and updates as `FF` under the text reading."""

    def train_epoch(self, phase, batch: int, gen: torch.Generator) -> torch.Tensor:
        if phase is not None:
            raise ValueError("the reference loop trains all layers on every batch")
        exp, model, d = self.exp, self.model, self.data
        n = len(d.x_train)
        perm = torch.randperm(n, device=d.x_train.device, generator=gen)
        draw = other_image_negatives(perm, d.y_train, gen)
        total = torch.zeros((), dtype=torch.float64, device=d.x_train.device)
        for s in range(0, n, batch):
            idx = perm[s : s + batch]
            neg_images, labels = draw(s, len(idx))
            x_pos = overlay_label(d.x_train[idx], labels)
            x_neg = overlay_label(d.x_train[neg_images], labels)
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
