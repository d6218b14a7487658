"""The settings of a run: one frozen dataclass, `Experiment`, whose fields are every setting a
row can have, typed by its own type hints.

Each setting is checked here as a value (its type, its range); which methods read it, and which
combinations a method can train, is the method's business (ffbench/methods). The defaults of the
reading switches are the `text` reading (ffbench/rows/readings.py reads them from here).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from enum import Enum

from ffbench.core.data import Pixels
from ffbench.core.losses import DnnOutput, Loss, LossForm
from ffbench.core.models import GoodnessReduce, LabelInput
from ffbench.core.optimizers import Optimizer
from ffbench.core.schedules import BatchGrowth, Batching, LrScaling


class LayerOrder(str, Enum):
    per_batch = "per-batch"  # every layer steps on one forward pass of the batch (a DNN step)
    sequential = "sequential"  # layer 1 steps, then its updated output trains layer 2
    greedy = "greedy"  # layer 1 for all epochs, then layer 2 for all epochs


class Negatives(str, Enum):
    other_image = "other_image"  # eq 3.3: another sample's image with this sample's label
    wrong_label = "wrong_label"  # the same image with a uniformly drawn wrong label
    hard = "hard"  # the same image with a wrong label the network itself favours (FF_best)


class Denormals(str, Enum):
    # float32 values under 1.2e-38 (the smallest normal number)
    flush = "flush"  # read and written as 0 on the CPU (FTZ/DAZ); CUDA keeps them (no switch)
    keep = "keep"  # gradual underflow, as IEEE 754 and a GPU compute them (torch's CPU default)


class OptimizerScope(str, Enum):
    per_layer = "per_layer"  # each FF layer its own optimizer, stepped when it trains
    shared = "shared"  # one over all parameters, stepped after each layer's pass (zeroed grads)


def at_least(low, default):
    """A setting with a lower bound, checked by `check_setting`."""
    return field(default=default, metadata={"at_least": low})


@dataclass(frozen=True)
class Experiment:
    name: str
    method: str  # a registered method (ffbench/methods): backprop, ff, ff_best, fg_weight, ...
    loss: Loss
    optimizer: Optimizer = Optimizer.asgd
    lr: float = field(default=1e-3, metadata={"above": 0.0})
    epochs: int = at_least(1, 400)
    batch_start: int = at_least(1, 50)
    batch_final: int = at_least(1, 60000)
    batch_growth: BatchGrowth = BatchGrowth.geometric
    lr_scaling: LrScaling = LrScaling.linear
    cooldown: float = at_least(0.0, 0.0)  # last fraction of the epochs, the rate falling to 0
    momentum: float = at_least(0.0, 0.0)  # SGD only
    weight_decay: float = at_least(0.0, 0.0)
    sizes: tuple[int, ...] = (784, 800, 10)
    # The MLP as Ren et al. (2023) build it (ffbench/core/models.py): LayerNorm after every
    # hidden layer, and the hidden layers after the first block-diagonal in `linear_groups`.
    layer_norm: bool = False
    linear_groups: int = at_least(1, 1)
    # Forward gradients (ffbench/methods/forward_grad.py): each layer's perturbed units in groups
    # of `group_size` with a slope each (None: the whole layer), estimates masked by the ReLU's
    # derivative, and the local heads' rate as a multiple of the body's.
    group_size: int | None = at_least(8, None)
    relu_mask: bool = False
    head_lr: float = field(default=1.0, metadata={"above": 0.0})
    theta: float = 2.0  # FF goodness threshold
    stable_loss: bool = False  # FF: log-sigmoid instead of the literal ln(sigmoid(.))
    normalize_input: bool = True  # FF: L2-normalise the first layer's input too
    layer_order: LayerOrder = LayerOrder.per_batch
    train_subset: int | None = at_least(2, None)  # first N training samples; None = all 60000
    validation: int = at_least(0, 0)  # training images held out (ffbench/core/data.py, hold_out)
    description: str = ""
    # The reading switches (ffbench/rows/readings.py); these defaults are the `text` reading.
    reading: str = "text"
    pixels: Pixels = Pixels.unit
    label_input: LabelInput = LabelInput.overlay
    bias: bool = True
    norm_eps: float = at_least(0.0, 1e-8)
    goodness: GoodnessReduce = GoodnessReduce.sum
    loss_form: LossForm = LossForm.text
    negatives: Negatives = Negatives.other_image
    optimizer_scope: OptimizerScope = OptimizerScope.per_layer
    batching: Batching = Batching.disjoint
    dnn_output: DnnOutput = DnnOutput.logits_ce
    denormals: Denormals = Denormals.flush
    # A row defined from a registered one (a config file's row, or `ffbench.define` in a
    # notebook): the registered row's name and where the new row was defined.
    base: str | None = None
    source: str = ""

    def __post_init__(self):
        """Enum fields also take their values as strings (readings, config files)."""
        for key, kind in HINTS.items():
            value = getattr(self, key)
            if isinstance(kind, type) and issubclass(kind, Enum) and not isinstance(value, kind):
                object.__setattr__(self, key, kind(value))

    def settings(self) -> dict:
        """Every setting as plain JSON values (enums by value, tuples as lists)."""
        return {key: plain(getattr(self, key)) for key in SETTINGS}

    def config(self) -> dict:
        """Every field, settings and identity, as plain JSON values (a run's config.json)."""
        return {key: plain(getattr(self, key)) for key in FIELDS}


def plain(value: object) -> object:
    """A setting's value as JSON holds it: an enum by its value, a tuple as a list."""
    if isinstance(value, Enum):
        return value.value
    return list(value) if isinstance(value, tuple) else value


# not settings: a row's identity, its reading and where it came from
FIXED = ("name", "reading", "description", "base", "source")
HINTS = typing.get_type_hints(Experiment)
FIELDS = {f.name: f for f in dataclasses.fields(Experiment)}
SETTINGS = [name for name in FIELDS if name not in FIXED]
DEFAULTS = {name: f.default for name, f in FIELDS.items() if f.default is not dataclasses.MISSING}


def settings_text(settings: dict) -> str:
    """Settings as the table's Overrides column and the messages show them: `key=value`, sorted."""
    return " ".join(f"{k}={v}" for k, v in sorted(settings.items()))


class SettingError(ValueError):
    """A setting that does not exist, has the wrong type or is out of range; the message names
    the key, the accepted values and the fix."""


def unknown_setting(key: str, what: str) -> SettingError:
    close = difflib.get_close_matches(key, SETTINGS, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}? " if close else ""
    return SettingError(f"{what} sets no setting; {hint}give KEY=VALUE with KEY one of "
                        f"{', '.join(SETTINGS)}")  # fmt: skip


def check_setting(key: str, value: object) -> object:
    """`value` typed for the setting `key` by the field's type hint: from text (`--set`) or from
    Python and TOML values (`ffbench.run(**settings)`, config files). SettingError names what is
    wrong and what the setting takes."""
    if key not in SETTINGS:
        raise unknown_setting(key, f"'{key}'")
    kind, shown = HINTS[key], value if isinstance(value, str) else repr(value)
    try:
        value = typed(kind, value)
    except (ValueError, TypeError):
        raise SettingError(f"{key}={shown} is not valid; {key} takes {accepted(kind)}") from None
    bounds = FIELDS[key].metadata
    if value is not None and "at_least" in bounds and not value >= bounds["at_least"]:
        raise SettingError(f"{key}={shown} is out of range; {key} must be >= {bounds['at_least']}")
    if "above" in bounds and not value > bounds["above"]:
        raise SettingError(f"{key}={shown} is out of range; {key} must be > {bounds['above']}")
    return value


def optional(kind) -> type | None:
    """T for a hint `T | None`, else None."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    return args[0] if isinstance(kind, types.UnionType) else None


def typed(kind, value: object) -> object:
    """`value` as the type `kind` (an Enum, bool, int, float, str, tuple[int, ...] or T | None);
    text is parsed, other values must already be of the type (True is no number here)."""
    if (inner := optional(kind)) is not None:
        none = value is None or (isinstance(value, str) and value.strip().lower() == "none")
        return None if none else typed(inner, value)
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(value.strip() if isinstance(value, str) else value)
    if isinstance(value, str) and kind is not str:
        text = value.strip().lower()
        if kind is bool:
            if text not in TRUE + FALSE:
                raise ValueError(text)
            return text in TRUE
        if typing.get_origin(kind) is tuple:
            return tuple(int(v) for v in text.split(","))
        return kind(text)
    if typing.get_origin(kind) is tuple:
        if isinstance(value, str | bytes) or not all(_is_int(v) for v in value):
            raise TypeError(value)
        return tuple(value)
    if kind is float and (_is_int(value) or isinstance(value, float)):
        return float(value)
    if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
        return value
    raise TypeError(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def accepted(kind) -> str:
    """What a setting of type `kind` takes, in words."""
    if (inner := optional(kind)) is not None:
        return accepted(inner) + " or none"
    if isinstance(kind, type) and issubclass(kind, Enum):
        return ", ".join(m.value for m in kind)
    if typing.get_origin(kind) is tuple:
        return "layer sizes like 784,800,10"
    return {bool: "true or false", float: "a number", int: "an integer"}.get(kind, "text")


TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def parse_setting(assignment: str) -> tuple[str, object]:
    """`key=value` (`--set`) -> (key, typed value); SettingError names the key, the accepted
    values and the fix."""
    key, sep, text = assignment.partition("=")
    if not sep:
        raise unknown_setting(key.strip(), f"'{assignment}'")
    return key.strip(), check_setting(key.strip(), text)
