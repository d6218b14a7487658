"""Readings: named bundles of interpretation choices for the notes' table.

The printed notes leave much open, and the code that produced their numbers (GitHub
akhilsadam/pho-ices-ml, `core/` and `FFA/`, commit d04dcf3 of 2023-02-25, the memo's own commit)
differs from the printed equations in many places. A `Reading` fixes every such choice: `text`
follows the equations as printed (its values are the settings' defaults, ffbench/core/settings.py),
`code` follows the authors' code. Each switch is one setting that the methods compose
(ffbench/methods); a reading is data, never a branch in the loop. `SWITCHES` says, for each
switch, where the notes and the code stand; which methods read it, the methods say.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ffbench import methods
from ffbench.core.names import UnknownName, lookup
from ffbench.core.settings import DEFAULTS, plain

DEFAULT = "code"  # the reading that reproduces the paper's table


@dataclass(frozen=True)
class Switch:
    name: str  # the Experiment field it sets
    what: str
    text: str  # where the notes stand
    code: str  # where the authors' code stands (file:line at d04dcf3)


SWITCHES: list[Switch] = [
    Switch("pixels", "pixel scale", "not said (ffbench: [0, 1])",
           "raw 0-255 from the Keras loader (core/mnist.py:8-12)"),
    Switch("label_input", "label and normalisation",
           "label in the first 10 pixels, layer normalises (sec. 2)",
           "image L2-normalised, then first 10 pixels 0 and 1.0 at the label "
           "(core/FFA.py:22, 32-38, 50-51)"),
    Switch("bias", "layer bias", "a = xW^T + b (eq 3.4)",
           "bias=False (core/FFA.py:6; DNN: FFA/FFA.ipynb cell 3)"),
    Switch("normalize_input", "first layer's input", "x for the first layer, a^norm after "
           "(sec. 3); ffbench normalises it too", "normalised like every layer's "
           "(core/FFALayer.py:12)"),
    Switch("norm_eps", "normalisation eps", "a / ||a|| (ffbench: eps 1e-8)",
           "x / (||x|| + 1e-4), every layer, the first too (core/FFALayer.py:12)"),
    Switch("goodness", "goodness", "||a||^2, the sum (eqs 3.5, 3.25)",
           "mean of a^2 (core/FFALayer.py:22-23)"),
    Switch("theta", "threshold", "not said (ffbench: 2.0, the largest of the plotted 0, 1, 2)",
           "0.5 (core/FFA.py:6)"),
    Switch("loss_form", "loss form",
           "adj: -E ln(1 + sigma(.)) (eqs 4.1, 4.2); plain: E ln sigma(.) (eqs 3.13, 3.16)",
           "adj: mean log(1 + exp(.)) = eqs 3.13/3.16 (core/FFALayer.py:26-28, 57-59); "
           "plain: the same without '1 +', a linear objective (figures pFFA0, pFFA1 start at 0)"),
    Switch("stable_loss", "ln sigma evaluated", "literally (ffbench: ln(sigmoid(.)), -inf "
           "when sigma underflows)", "not used: the code form is log(1 + exp(.)) as written"),
    Switch("negatives", "negative data", "another sample's image with this label (eq 3.3)",
           "the same image with a uniformly drawn wrong label, every batch (core/FFA.py:45)"),
    Switch("layer_order", "layer order", "each layer at a time, like a DNN step (sec. 4)",
           "layer 1 steps, then its updated output trains layer 2 (core/FFA.py:60-63, "
           "core/FFALayer.py:33)"),
    Switch("optimizer_scope", "optimizer", "not said (ffbench: one per layer)",
           "one over all parameters; zero_grad keeps zeros, so the idle layer also steps "
           "(core/dojo.py:42, core/FFALayer.py:29-32)"),
    Switch("batch_growth", "batch growth", "Start to Final (ffbench: geometric)",
           "linear, the epoch fraction halved in the first 20 % (core/dojo.py:18-21)"),
    Switch("lr_scaling", "rate growth", "'increased along with the batch' (ffbench: x B/Start)",
           "x B itself, halved in the first 20 %, cosine taper after 75 % (core/dojo.py:24-35)"),
    Switch("batching", "batches of an epoch", "not said (ffbench: disjoint slices)",
           "n // B windows X[i:i+B], i = 0, 1, 2, ... (core/dojo.py:61-69)"),
    Switch("dnn_output", "DNN_base output and loss", "not said (ffbench: logits, cross-entropy)",
           "softmax, MSE against the one-hot label (FFA/FFA.ipynb cell 3)"),
    Switch("denormals", "float32 under 1.2e-38", "not said (ffbench: flushed to 0 on the CPU, "
           "as it always ran)", "kept: their runs were on a GPU (FFA/FFA.ipynb cell 4 prints "
           "cuda:0), where torch keeps them"),
]  # fmt: skip


@dataclass(frozen=True)
class Reading:
    name: str
    description: str
    settings: dict  # Experiment field -> value, for every switch
    rows: dict = field(default_factory=dict)  # row name -> extra settings of that row only

    def apply(self, exp):
        """`exp`, a row of the notes' table, under this reading (`ffbench.rows.under`
        decides which rows a reading applies to)."""
        return dataclasses.replace(exp, reading=self.name, **self.settings,
                                   **self.rows.get(exp.name, {}))  # fmt: skip


READINGS: dict[str, Reading] = {}


def register(reading: Reading) -> Reading:
    missing = {s.name for s in SWITCHES} - set(reading.settings)
    if missing:
        raise ValueError(f"reading {reading.name} leaves {sorted(missing)} unset")
    READINGS[reading.name] = reading
    return reading


class UnknownReading(UnknownName):
    kind, see = "reading", "see `ffbench readings`"


def get(name: str) -> Reading:
    return lookup(READINGS, name, UnknownReading)


register(Reading(
    "text",
    "the equations as printed; what they leave open, ffbench's first choices",
    {s.name: plain(DEFAULTS[s.name]) for s in SWITCHES},
))  # fmt: skip

# The Adam rows: the notebooks set `D.optimizer`, which dojo never reads (it reads
# `optimizer_lambda`, core/dojo.py:10, 42), so as committed every row ran ASGD(lr=1e-3); and the
# figures FFA0_2 and FFA1_3 start at loss 0 and fall without bound to NaN like pFFA0 and pFFA1,
# which no '1 +' loss can do (those start at 1.448). The code reading runs them as what the
# figures show: ASGD on the plain (linear) losses. The measured evidence is in the README.
register(Reading(
    "code",
    "what the authors' code (pho-ices-ml core/, FFA/FFA.ipynb) did",
    dict(pixels="raw", label_input="after_norm", bias=False, normalize_input=True, norm_eps=1e-4,
         goodness="mean", theta=0.5, loss_form="code", stable_loss=False,
         negatives="wrong_label", layer_order="sequential", optimizer_scope="shared",
         batch_growth="dojo", lr_scaling="dojo", batching="windows", dnn_output="softmax_mse",
         denormals="keep"),
    rows={"adj_FFA0_2": dict(optimizer="asgd", loss="L0"),
          "adj_FFA1_3": dict(optimizer="asgd", loss="L1")},
))  # fmt: skip


def flips(exp, toward: str) -> list[tuple[Switch, object]]:
    """The switches that `exp`'s method reads and whose value under the reading `toward`
    differs from `exp`'s: (switch, that value), one run each in an ablation."""
    other, reads = get(toward).settings, methods.get(exp.method).reads
    return [(sw, other[sw.name]) for sw in SWITCHES
            if sw.name in reads and other[sw.name] != plain(getattr(exp, sw.name))]  # fmt: skip


def switch_table() -> tuple[list[str], list[list[str]]]:
    """Header and rows of `ffbench readings`: each switch, its value under every reading, and
    where the notes and the authors' code stand."""
    header = ["Switch", "What"] + list(READINGS) + ["The notes", "The authors' code"]
    rows = []
    for sw in SWITCHES:
        values = [str(r.settings[sw.name]) for r in READINGS.values()]
        rows.append([sw.name, sw.what, *values, sw.text, sw.code])
    for reading in READINGS.values():
        for row, settings in reading.rows.items():
            for key, value in settings.items():
                cells = [str(value) if r is reading else "(row's own)" for r in READINGS.values()]
                why = "figures FFA0_2/FFA1_3; see the comment above the code reading"
                rows.append([f"{row}: {key}", f"{row} only", *cells, "the table's row", why])
    return header, rows
