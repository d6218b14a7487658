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

from ffbench import readings
from ffbench.data import Pixels
from ffbench.losses import Loss, LossForm
from ffbench.models import GoodnessReduce, LabelInput
from ffbench.names import UnknownName, lookup
from ffbench.schedules import BatchGrowth, Batching, LrScaling


class Method(str, Enum):
    backprop = "backprop"
    ff = "ff"
    fg_weight = "fg_weight"  # forward gradient, weight perturbation
    fg_activity = "fg_activity"  # forward gradient, activity perturbation
    fg_local = "fg_local"  # activity perturbation of local losses
    fg_joint = "fg_joint"  # activity perturbation, every layer at once (one jvp)
    ff_best = "ff_best"  # FF as published at its best (ffbench/ff_best.py)


class Optimizer(str, Enum):
    asgd = "asgd"
    adam = "adam"
    sgd = "sgd"  # with `momentum` and `weight_decay`


class LayerOrder(str, Enum):
    per_batch = "per-batch"  # every layer steps on one forward pass of the batch (a DNN step)
    sequential = "sequential"  # layer 1 steps, then its updated output trains layer 2
    greedy = "greedy"  # layer 1 for all epochs, then layer 2 for all epochs


class Negatives(str, Enum):
    other_image = "other_image"  # eq 3.3: another sample's image with this sample's label
    wrong_label = "wrong_label"  # the same image with a uniformly drawn wrong label
    hard = "hard"  # the same image with a wrong label the network itself favours (FF_best)


class OptimizerScope(str, Enum):
    per_layer = "per_layer"  # each FF layer its own optimizer, stepped when it trains
    shared = "shared"  # one over all parameters, stepped after each layer's pass (zeroed grads)


class DnnOutput(str, Enum):
    logits_ce = "logits_ce"  # cross-entropy on the logits
    softmax_mse = "softmax_mse"  # MSE between softmax(output) and the one-hot label


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
    validation: int = 0  # training images held out for validation (ffbench/data.py, hold_out)
    description: str = ""
    # The switches a reading sets (ffbench/readings.py); these defaults are the `text` reading.
    reading: str = "text"
    pixels: Pixels = Pixels.unit
    label_input: LabelInput = LabelInput.overlay
    bias: bool = True
    norm_eps: float = 1e-8
    goodness: GoodnessReduce = GoodnessReduce.sum
    loss_form: LossForm = LossForm.text
    negatives: Negatives = Negatives.other_image
    optimizer_scope: OptimizerScope = OptimizerScope.per_layer
    batching: Batching = Batching.disjoint
    dnn_output: DnnOutput = DnnOutput.logits_ce
    # A row defined from a registered one (a config file's row, or `ffbench.define` in a
    # notebook): the registered row's name and where the new row was defined.
    base: str | None = None
    source: str = ""

    def __post_init__(self):
        """Enum fields also take their values as strings (readings, config files)."""
        for f in dataclasses.fields(self):
            kind = ENUM_FIELDS.get(f.name)
            value = getattr(self, f.name)
            if kind is not None and not isinstance(value, kind):
                object.__setattr__(self, f.name, kind(value))

    def settings(self) -> dict:
        """Every setting as plain JSON values (enums by value, tuples as lists)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.value if isinstance(v, Enum) else list(v) if isinstance(v, tuple) else v
        return out

    def overrides(self) -> dict:
        """Settings that differ from the registered row under the same reading (for a derived
        row, its base's): they name the run directory and a group of the table."""
        base = under(REGISTRY[self.base or self.name], self.reading).settings()
        return {k: v for k, v in self.settings().items() if k not in FIXED and base[k] != v}


# not settings: a row's identity, its reading and where it came from
FIXED = ("name", "reading", "description", "base", "source")


def overrides_of(config: dict, recorded: dict | None) -> dict:
    """A run's settings (its config.json) that differ from its row as registered now; for a row
    not registered here, the overrides the run `recorded` (its result.json's). Read at table
    time: when a row changes (a rate chosen anew), its older runs show as overrides, not as the
    row."""
    name = config.get("base") or config.get("name")
    if name not in REGISTRY or config.get("reading", "text") not in readings.READINGS:
        return recorded or {}
    return differences(config, under(REGISTRY[name], config.get("reading", "text")).settings())


def settings_text(settings: dict) -> str:
    """Settings as the table's Overrides column and the messages show them: `key=value`, sorted."""
    return " ".join(f"{k}={v}" for k, v in sorted(settings.items()))


def differences(config: dict, settings: dict) -> dict:
    """The settings a run's config.json holds otherwise than `settings` (a setting it lacks is
    from before that setting existed, not a difference)."""
    return {k: config[k] for k, v in settings.items() if k not in FIXED and k in config
            and config[k] != v}  # fmt: skip


AT_LEAST = {"epochs": 1, "batch_start": 1, "batch_final": 1, "norm_eps": 0.0,
            "momentum": 0.0, "weight_decay": 0.0, "cooldown": 0.0, "train_subset": 2,
            "validation": 0}  # fmt: skip
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def settable() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(Experiment) if f.name not in FIXED}


class SettingError(ValueError):
    """A setting that does not exist, has the wrong type or is out of range; the message names
    the key, the accepted values and the fix."""


def unknown_setting(key: str, what: str) -> SettingError:
    fields = settable()
    close = difflib.get_close_matches(key, list(fields), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    return SettingError(f"{what} sets no setting; {hint}give KEY=VALUE with KEY one of "
                        f"{', '.join(fields)}")  # fmt: skip


def check_setting(key: str, value: object) -> object:
    """`value` typed for the Experiment field `key`: from text (`--set`) or from Python and TOML
    values (`ffbench.run(**settings)`, config files). SettingError names what is wrong."""
    fields = settable()
    if key not in fields:
        raise unknown_setting(key, f"'{key}'")
    kind, type_name = ENUM_FIELDS.get(key), str(fields[key].type)
    shown = value if isinstance(value, str) else repr(value)
    try:
        value = _typed(kind, type_name, value)
    except (ValueError, TypeError):
        words = {"bool": "true or false", "float": "a number"}
        accepted = ", ".join(m.value for m in kind) if kind else words.get(type_name, "an integer")
        if type_name.startswith("tuple"):
            accepted = "layer sizes like 784,800,10"
        elif "None" in type_name:
            accepted += " or none"
        raise SettingError(f"{key}={shown} is not valid; {key} takes {accepted}") from None
    if key in AT_LEAST and value is not None and not value >= AT_LEAST[key]:
        raise SettingError(f"{key}={shown} is out of range; {key} must be >= {AT_LEAST[key]}")
    if key == "lr" and not value > 0:
        raise SettingError(f"lr={shown} is out of range; lr must be > 0")
    return value


def _typed(kind: type[Enum] | None, type_name: str, value: object) -> object:
    if kind is not None:
        return kind(value)
    if isinstance(value, str):  # from the command line
        text = value.strip()
        if type_name == "bool":
            if text.lower() not in TRUE + FALSE:
                raise ValueError(text)
            return text.lower() in TRUE
        if text.lower() == "none" and "None" in type_name:
            return None
        if type_name.startswith("tuple"):
            return tuple(int(v) for v in text.split(","))
        return (float if type_name == "float" else int)(text)
    if value is None and "None" in type_name:
        return None
    if type_name == "bool":
        if not isinstance(value, bool):
            raise TypeError(value)
        return value
    if isinstance(value, bool):  # True is an int to Python, not a number to a config file
        raise TypeError(value)
    if type_name.startswith("tuple"):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise TypeError(value)
        return tuple(value)
    if type_name == "float" and isinstance(value, int | float):
        return float(value)
    if isinstance(value, int):
        return value
    raise TypeError(value)


def parse_setting(assignment: str) -> tuple[str, object]:
    """`key=value` (`--set`) -> (key, typed value); SettingError names the key, the accepted
    values and the fix."""
    key, sep, text = assignment.partition("=")
    if not sep:
        raise unknown_setting(key.strip(), f"'{assignment}'")
    return key.strip(), check_setting(key.strip(), text)


def derive(
    name: str,
    base: str,
    reading: str,
    settings: dict,
    source: str = "python",
    description: str = "",
) -> Experiment:
    """A new row: the registered row `base` under `reading` with `settings` changed (typed and
    checked). It keeps its reading: readings apply to registered rows only."""
    settings = {k: check_setting(k, v) for k, v in settings.items()}
    shown = {k: v.value if isinstance(v, Enum) else v for k, v in sorted(settings.items())}
    changes = ", ".join(f"{k}={v}" for k, v in shown.items()) or "no change"
    return dataclasses.replace(
        under(get(base), reading), name=name, base=base, source=source,
        description=description or f"{base} ({reading}) with {changes}", **settings,
    )  # fmt: skip


def under(exp: Experiment, reading: str) -> Experiment:
    """`exp` under the reading `reading` (ffbench/readings.py) if it is a row of the notes'
    table; every other row (beyond the notes, from a file, from a notebook) keeps its own
    settings, a derived row its own reading."""
    reading_of = readings.get(reading)  # an unknown reading is an error for every row
    if exp.name not in PAPER or exp.base is not None:
        return exp
    return reading_of.apply(exp)


ENUM_FIELDS = {"method": Method, "loss": Loss, "optimizer": Optimizer, "batch_growth": BatchGrowth,
               "lr_scaling": LrScaling, "layer_order": LayerOrder, "pixels": Pixels,
               "label_input": LabelInput, "goodness": GoodnessReduce, "loss_form": LossForm,
               "negatives": Negatives, "optimizer_scope": OptimizerScope, "batching": Batching,
               "dnn_output": DnnOutput}  # fmt: skip

REGISTRY: dict[str, Experiment] = {}


def register(exp: Experiment) -> Experiment:
    if exp.name in REGISTRY:
        raise ValueError(f"experiment {exp.name} is registered twice")
    REGISTRY[exp.name] = exp
    return exp


class UnknownExperiment(UnknownName):
    kind, see = "experiment", "see `ffbench list`"


def get(name: str) -> Experiment:
    return lookup(REGISTRY, name, UnknownExperiment)


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
# diverges within 10 epochs). The rates are the study fg_rates' choices on validation (their 400
# epochs, 10,000 images held out, seed 0; validation error % at 1e-4/3e-4/1e-3/3e-3/1e-2/3e-2 in
# the README), not fg_rates_40's (40 epochs), which chose the rate that loses at 400 epochs.
for _name, _method, _lr, _scaling, _what in [
    ("FG_weight", Method.fg_weight, 3e-4, LrScaling.none,
     "forward gradient, one random direction over all weights"),
    ("FG_activity", Method.fg_activity, 1e-2, LrScaling.linear,
     "forward gradient, perturbed pre-activations per layer"),
    ("FG_local", Method.fg_local, 1e-2, LrScaling.linear,
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
        epochs=60,  # 11-14.5 s an epoch on our 2 cores by the day: 60 fit 15 minutes a seed
        batch_start=100,
        batch_final=100,
        lr_scaling=LrScaling.none,
        cooldown=0.5,
        momentum=0.9,
        weight_decay=3e-4,
        sizes=(784, 1000, 1000, 1000),
        theta=1000.0,
        stable_loss=True,
        negatives=Negatives.hard,
        description="FF at its best: 3x1000, RMS norm, hard negatives, peer norm (+ /head)",
    )
)

# Beyond the notes: the depth study (ffbench/studies.py, second seed; Ren et al. 2023, Table 3).
# One row per method on a 784-256-10 MLP; the study sets the depth through `sizes`. One fixed
# budget for every run: a constant batch of 100, Adam, 20 epochs, 10,000 training images held
# out for validation, on which the rates are chosen (the study `depth_rates` at L = 4, seed 0,
# validation error at 1e-5 .. 3e-3: backprop 2.23 at 1e-3, weight 35.86 at 1e-3, joint 15.66 at
# 3e-4, activity 10.44 at 1e-4, local 12.04 at 1e-4; README). tests/test_studies.py holds these
# to the runs.
DEPTH_RATES = {"backprop": 1e-3, "fg_weight": 1e-3, "fg_joint": 3e-4, "fg_activity": 1e-4,
               "fg_local": 1e-4}  # fmt: skip
for _method, _lr in DEPTH_RATES.items():
    register(
        Experiment(
            name="depth_" + (_method if _method == "backprop" else "FG_" + _method[3:]),
            method=Method(_method),
            loss=Loss.cross_entropy,
            optimizer=Optimizer.adam,
            lr=_lr,
            epochs=20,
            batch_start=100,
            batch_final=100,
            lr_scaling=LrScaling.none,
            sizes=(784, 256, 10),
            validation=10000,
            description=f"depth study: {_method}, batch 100, Adam, 20 epochs",
        )
    )

BUILTIN = frozenset(REGISTRY)  # the package's own rows; a notebook may register more
