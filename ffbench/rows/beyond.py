"""The rows beyond the notes, as data: forward gradients on the notes' MLP (second seed), FF at
its best, and the depth study's rows. The evidence for each rate and recipe choice is in the
README (the studies fg_rates, depth_rates and ff_best_recipe, on validation);
tests/test_studies.py holds the registered values to the committed runs."""

from __future__ import annotations

import dataclasses

from ffbench.core.losses import Loss
from ffbench.core.optimizers import Optimizer
from ffbench.core.schedules import LrScaling
from ffbench.core.settings import Experiment, Negatives
from ffbench.rows import REGISTRY, register

# Forward gradients on DNN_base's MLP and schedule. The weight-perturbed estimate's noise comes
# from its one random direction, not from the batch, so a bigger batch does not allow a bigger
# step: FG_weight keeps its rate. Rates: the study fg_rates' choices.
FORWARD_GRADIENTS = [
    ("FG_weight", "fg_weight", 3e-4, LrScaling.none,
     "forward gradient, one random direction over all weights"),
    ("FG_activity", "fg_activity", 1e-2, LrScaling.linear,
     "forward gradient, perturbed pre-activations per layer"),
    ("FG_local", "fg_local", 1e-2, LrScaling.linear,
     "forward gradient of local losses, perturbed pre-activations"),
]  # fmt: skip
for name, method, lr, scaling, what in FORWARD_GRADIENTS:
    register(dataclasses.replace(REGISTRY["DNN_base"], name=name, method=method, lr=lr,
                                 lr_scaling=scaling, description=what))  # fmt: skip

# FF as published at its best (the recipe in ffbench/methods/ff_best.py). Its run also reports
# the linear head's accuracy, shown in the table as the row FF_best/head.
register(
    Experiment(
        name="FF_best",
        method="ff_best",
        loss=Loss.L0,
        optimizer=Optimizer.sgd,
        lr=1e-3,
        epochs=60,
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

# The depth study (ffbench/rows/studies.py; second seed; Ren et al. 2023, Table 3): one row per
# method on a 784-256-10 MLP, the study setting the depth through `sizes`. One budget for every
# run: a constant batch of 100, Adam, 20 epochs, 10,000 training images held out for validation,
# on which the rates are chosen (the study depth_rates).
DEPTH_RATES = {"backprop": 1e-3, "fg_weight": 1e-3, "fg_joint": 3e-4, "fg_activity": 1e-4,
               "fg_local": 1e-4}  # fmt: skip
for method, lr in DEPTH_RATES.items():
    register(
        Experiment(
            name="depth_" + (method if method == "backprop" else "FG_" + method[3:]),
            method=method,
            loss=Loss.cross_entropy,
            optimizer=Optimizer.adam,
            lr=lr,
            epochs=20,
            batch_start=100,
            batch_final=100,
            lr_scaling=LrScaling.none,
            sizes=(784, 256, 10),
            validation=10000,
            description=f"depth study: {method}, batch 100, Adam, 20 epochs",
        )
    )

# Ren et al.'s MNIST network (ICLR 2023, Table 3's M/1/16; ../shared/anchors.md): one block over
# the whole image, 784 -> 512 -> 16 x (32 -> 32) -> 10, LayerNorm after each hidden layer's linear
# map, ReLU (their 429K parameters count a block head and a final classifier, here one output
# layer: 424K). Their estimators on it, one row each, at their code's defaults
# (train_mixer_supervised.py's flags: SGD, weight decay 1e-4, batch 100, 200 epochs, the rate
# decayed linearly to 0; momentum 0.9 from their one config). FG-A and LG-FG-A perturb both
# layers in one jvp (fg_joint), masked by the ReLU; LG-FG-A's local loss is the block's, split
# into its 16 groups (q = 64 perturbed units per loss, against 1024 for FG-A). With one block the
# block's head is the network's output layer. The rates: each row's choice on validation in the
# study ren_rates (backprop, LG-FG-A) or ren_rates_fg (FG-W, FG-A).
REN_NETWORK = dict(
    loss=Loss.cross_entropy, optimizer=Optimizer.sgd, lr=0.1, momentum=0.9, weight_decay=1e-4,
    epochs=200, batch_start=100, batch_final=100, lr_scaling=LrScaling.none, cooldown=1.0,
    sizes=(784, 512, 512, 10), layer_norm=True, linear_groups=16,
)  # fmt: skip
REN_ROWS = {
    "Ren_BP": ("backprop", {}, "backprop"),
    "Ren_FG_W": ("fg_weight", {"lr": 3e-5}, "forward gradient, weight perturbation (FG-W)"),
    "Ren_FG_A": ("fg_joint", {"relu_mask": True, "lr": 3e-4},
                 "forward gradient, activity perturbation (FG-A)"),
    "Ren_LG_FG_A": ("fg_joint", {"relu_mask": True, "group_size": 32, "lr": 3e-3},
                    "forward gradient of 16 local losses per block (LG-FG-A)"),
}  # fmt: skip
for name, (method, extra, what) in REN_ROWS.items():
    register(Experiment(name=name, method=method, description=f"Ren et al.'s M/1/16: {what}",
                        **REN_NETWORK | extra))  # fmt: skip

# The depth study again, with Ren et al.'s ingredients (the study depth_local): the depth study's
# MLPs (784-256xL-10, LayerNorm after each hidden layer's linear map) at Ren_BP's recipe and a
# budget of 50 epochs (2.5 M samples seen, against the depth rows' 20 epochs at Adam's constant
# rate). LG-FG: each hidden layer its own loss (fg_local), split into groups of 32 units, masked
# by the ReLU, so every loss perturbs q = 32 units whatever the depth; against backprop on the
# same network. Their rates are the Ren rows' choices on validation (LG-FG-A's and backprop's).
DEPTH_LOCAL = REN_NETWORK | dict(epochs=50, sizes=(784, 256, 10), linear_groups=1,
                                 validation=10000)  # fmt: skip
for name, method, extra, what in (
    ("depth_LN_backprop", "backprop", {"lr": REGISTRY["Ren_BP"].lr}, "backprop"),
    ("depth_LG_FG_local", "fg_local",
     {"lr": REGISTRY["Ren_LG_FG_A"].lr, "group_size": 32, "relu_mask": True},
     "local losses in groups of 32 units"),
):  # fmt: skip
    what = (
        f"depth study with Ren et al.'s recipe: {what}, LayerNorm, SGD, "
        f"{DEPTH_LOCAL['epochs']} epochs"
    )
    register(Experiment(name=name, method=method, description=what, **DEPTH_LOCAL | extra))
