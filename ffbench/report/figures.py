"""Figures (matplotlib, PNG): the notes' loss curves (section 3.2) and learning curves of runs."""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter, ScalarFormatter  # noqa: E402

from ffbench.core.losses import Loss, ff_loss_terms  # noqa: E402
from ffbench.core.models import MLP  # noqa: E402
from ffbench.methods.forward_grad import (  # noqa: E402
    Perturbation,
    activity_perturbed,
    estimate_errors,
    layer_cosines,
    weight_perturbed,
)
from ffbench.report.studies import study_runs  # noqa: E402
from ffbench.report.table import ablation_changes  # noqa: E402
from ffbench.rows import studies  # noqa: E402
from ffbench.runner.store import RESULT, read_json  # noqa: E402

THETAS = (0.0, 1.0, 2.0)  # the three thresholds of the notes' plots
LOSS_STYLES = {Loss.L0: "tab:blue", Loss.L1: "tab:red", Loss.adj_L0: "tab:cyan",
               Loss.adj_L1: "tab:orange"}  # fmt: skip


def save(fig: plt.Figure, path: Path) -> Path:
    """Write the PNG to a temporary name, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def losses_figure(path: Path) -> Path:
    """L0, L1 (eqs 3.13, 3.16) and their adjusted forms (4.1, 4.2) as functions of the goodness
    of one sample, for a positive and for a negative sample, at theta = 0, 1, 2."""
    g = torch.linspace(0.0, 8.0, 400)
    fig, axes = plt.subplots(2, len(THETAS), figsize=(13, 7), sharex=True)
    for col, theta in enumerate(THETAS):
        for row, positive in enumerate((True, False)):
            ax = axes[row, col]
            empty = torch.empty(0)
            for kind, color in LOSS_STYLES.items():
                pair = (g, empty) if positive else (empty, g)
                terms = ff_loss_terms(kind, *pair, theta, stable=True)
                ax.plot(g, terms, color=color, linestyle="--" if "adj" in kind.value else "-",
                        label=kind.value)  # fmt: skip
            ax.axvline(theta, color="grey", linewidth=0.8, linestyle=":")
            ax.set_title(f"{'positive' if positive else 'negative'} sample, θ = {theta:g}")
            ax.set_ylim(-5.0, 5.0)
            ax.grid(alpha=0.3)
            if row == 1:
                ax.set_xlabel("goodness g = ||a||²")
            if col == 0:
                ax.set_ylabel("loss term")
    axes[0, 0].legend(loc="upper right")
    fig.suptitle("Per-sample FF loss terms against goodness (dotted line: θ); "
                 "the adjusted forms stay within ±ln 2")  # fmt: skip
    return save(fig, path)


def run_label(run: Path) -> str:
    result = read_json(run / RESULT) if (run / RESULT).exists() else {}
    acc = result.get("test_accuracy", math.nan)
    tail = "running/interrupted" if not result else f"{result['status']}, acc {acc * 100:.2f}%"
    return f"{run.parent.name}/{run.name} ({tail})"


def learning_curves(runs: list[Path], path: Path) -> Path:
    """Loss per epoch, and test accuracy where recorded, of several runs on shared axes."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(13, 5))
    losses = []
    for run in runs:
        metrics = pd.read_csv(run / "metrics.csv")
        label = run_label(run)
        loss_ax.plot(metrics.epoch, metrics.loss, label=label)
        losses.append(metrics.loss)
        acc = metrics.dropna(subset=["test_accuracy"])
        acc_ax.plot(acc.epoch, acc.test_accuracy * 100, marker="o", markersize=3, label=label)
    loss_ax.set(xlabel="epoch", ylabel="training loss (backprop: its loss; FF: sum over layers)",
                title="loss")  # fmt: skip
    loss_ax.set_yscale(loss_scale(pd.concat(losses)))
    acc_ax.set(xlabel="epoch", ylabel="test accuracy (%)", title="test accuracy")
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
    acc_ax.legend(fontsize=8)
    fig.suptitle("learning curves")
    return save(fig, path)


def loss_scale(losses: pd.Series) -> str:
    """ "log" when the losses are positive and span more than three decades (a forward-gradient
    run at a large rate reaches 1e9 where the others stay near 0.1), else "linear"."""
    losses = losses.dropna()
    positive = len(losses) and (losses > 0).all()
    return "log" if positive and losses.max() / losses.min() > 1e3 else "linear"


def study_figure(study: studies.Study, runs: pd.DataFrame) -> plt.Figure:
    """A study's runs (`study_runs`): its column (percent, log scale) at each point, one line per
    row, the mean over seeds with their standard deviation as error bars; a point where every run
    diverged is drawn as an x on the top edge."""
    labels = [studies.point_label(p) for p in study.settings()]
    fig, ax = plt.subplots(figsize=(max(7.0, 1.5 * len(labels)), 4.5))
    top = runs[study.column].max() * 1.5 if runs[study.column].notna().any() else 100
    for k, row in enumerate(study.rows):
        mine = runs[runs.experiment == row]
        if mine.empty:
            continue
        values = mine.groupby("point")[study.column]
        at = [i for i, label in enumerate(labels) if label in values.groups]
        mean = [values.get_group(labels[i]).mean() for i in at]
        std = [values.get_group(labels[i]).std(ddof=1) for i in at]
        line = ax.errorbar(at, mean, yerr=[0 if math.isnan(s) else s for s in std], fmt="-o",
                           capsize=3, label=row, color=f"C{k}")  # fmt: skip
        lost = [i for i, m in zip(at, mean, strict=True) if math.isnan(m)]
        ax.plot(lost, [top] * len(lost), "x", ms=9, color=line.lines[0].get_color())
    ax.set_xticks(range(len(labels)), [label.replace(", ", "\n") for label in labels], fontsize=8)
    ax.set(yscale="log", ylabel=f"{study.column.replace('_', ' ')} (%)",
           title=f"{study.name}: mean ± std over seeds (x: every run diverged)")  # fmt: skip
    for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
        axis(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def ablation_figure(runs: pd.DataFrame, name: str, reading: str, path: Path | None):
    """`ffbench ablate`'s runs of one row under one reading: each flipped switch's change in
    test accuracy against the unflipped runs of the same seeds, beside the unflipped runs' own
    spread over seeds (one standard deviation either side of 0). Saved to `path`, or returned
    as a figure where `path` is None."""
    table = ablation_changes(runs, name)
    table = table[table.reading == reading]
    base, flips = table[table.flipped == ""], table[table.flipped != ""]
    if base.empty or flips.empty:
        raise ValueError(f"no {reading} runs of {name} with and without a flip; run "
                         f"`ffbench ablate {name} --reading {reading}` first")  # fmt: skip
    flips = flips.sort_values("change", na_position="first")
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(flips) + 1.6))
    y = range(len(flips))
    change = flips.change.fillna(0.0)
    ax.barh(y, change, color=["tab:green" if c > 0 else "tab:red" for c in change])
    spread = base.accuracy_std.iloc[0]
    if not math.isnan(spread):
        ax.axvspan(-spread, spread, color="grey", alpha=0.2,
                   label=f"±1 std of the unflipped runs' seeds ({spread:.2f})")  # fmt: skip
        ax.legend(loc="upper left", fontsize=8)
    for i, r in enumerate(flips.itertuples()):
        seeds = ",".join(map(str, r.paired_seeds)) or "no seed in common"
        text = "diverged" if math.isnan(r.accuracy) else f"{r.accuracy:.2f} %"
        ax.annotate(f"{text} (seed {seeds})", (0, i), xytext=(4, 0), textcoords="offset points",
                    va="center", fontsize=8)  # fmt: skip
    ax.set_yticks(list(y), list(flips.flipped))
    ax.axvline(0, color="black", linewidth=0.8)
    shared = f", {base.base.iloc[0]} throughout" if base.base.iloc[0] else ""
    ax.set(xlabel="change in test accuracy (points), against the unflipped run of the same seed",
           title=f"{name}, {reading} reading{shared} ({base.accuracy.iloc[0]:.2f} %, "
           f"n={base.n.iloc[0]}): one switch flipped at a time")  # fmt: skip
    ax.grid(axis="x", alpha=0.3)
    return fig if path is None else save(fig, path)


def random_cosines(n: int, samples: int, gen: torch.Generator) -> torch.Tensor:
    """|cos| between `samples` pairs of independent N(0, I_n) vectors (the second seed's
    experiment); its mean tends to sqrt(2 / (pi n))."""
    a = torch.randn(samples, n, generator=gen)
    b = torch.randn(samples, n, generator=gen)
    return torch.nn.functional.cosine_similarity(a, b, dim=1).abs()


def forward_gradient_cosines(
    estimator, images: torch.Tensor, labels: torch.Tensor, hidden: int, draws: int, gen
) -> tuple[int, torch.Tensor]:
    """(weights of the 784-hidden-10 MLP, |cos| between `draws` forward-gradient estimates and
    its true gradient on this batch)."""
    torch.manual_seed(0)
    model = MLP((images.shape[1], hidden, 10))
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(images), labels).backward()
    true = torch.cat([p.grad.flatten() for p in model.parameters()])
    names = [k for k, _ in model.named_parameters()]
    cos = []
    for _ in range(draws):
        _, est = estimator(model, images, labels, gen)
        flat = torch.cat([est[k].flatten() for k in names])
        cos.append(torch.nn.functional.cosine_similarity(flat, true, dim=0).abs())
    return sum(p.numel() for p in model.parameters()), torch.stack(cos).detach()


def cosine_figure(path: Path, images: torch.Tensor, labels: torch.Tensor, draws: int = 50) -> Path:
    """The second seed's experiment, then the same on our network.

    Left: the distribution of |cos| between two independent N(0, I_n) vectors, n = 4 .. 80 (the
    seed's plot): it crowds towards 0 as n grows. Right: |cos| between a forward-gradient
    estimate and the true gradient of the 784-h-10 MLP on a batch of MNIST, against the number
    of perturbed dimensions, for weight and activity perturbation, with sqrt(2 / (pi n)).
    """
    gen = torch.Generator().manual_seed(0)
    fig, (hist_ax, mlp_ax) = plt.subplots(1, 2, figsize=(14, 5.5))
    edges = torch.linspace(0, 1, 101)
    for n in range(4, 81, 4):
        counts = torch.histogram(random_cosines(n, 20000, gen), bins=edges).hist
        hist_ax.plot(edges[:-1] + 0.005, counts, color=(n / 80, 1 - n / 80, 1.0))
    hist_ax.set(xlabel="|cos| between two independent Gaussian vectors", ylabel="count (of 20000)",
                title="|cos| for n = 4 (cyan) .. 80 (magenta)")  # fmt: skip
    hist_ax.grid(alpha=0.3)

    x, y = images[:256], labels[:256]
    for kind, estimator, marker in [("weight", weight_perturbed, "o"),
                                    ("activity", activity_perturbed, "s")]:  # fmt: skip
        dims, means, stds = [], [], []
        for hidden in (10, 50, 200, 800):
            n_params, cos = forward_gradient_cosines(estimator, x, y, hidden, draws, gen)
            dims.append(n_params if kind == "weight" else hidden + 10)
            means.append(cos.mean().item())
            stds.append(cos.std().item())
        label = (f"{kind} perturbation (x: all {'weights' if kind == 'weight' else ''}"
                 f"{'pre-activations per sample' if kind == 'activity' else ''})")  # fmt: skip
        mlp_ax.errorbar(dims, means, yerr=stds, marker=marker, capsize=3, label=label)
    n = torch.logspace(1, 6, 50)
    mlp_ax.plot(n, torch.sqrt(2 / (math.pi * n)), "k--", label="E|cos| of random directions")
    mlp_ax.set(xscale="log", yscale="log", xlabel="perturbed dimensions n",
               ylabel="|cos(estimate, true gradient)|",
               title="784-h-10 MLP, h = 10, 50, 200, 800; batch of 256")  # fmt: skip
    mlp_ax.grid(alpha=0.3, which="both")
    mlp_ax.legend(fontsize=8)
    fig.suptitle("The curse of dimensionality of forward gradients")
    return save(fig, path)


def depth_figure(
    runs_dir: Path, path: Path, images: torch.Tensor, labels: torch.Tensor, draws: int = 10
) -> Path:
    """The depth study (ffbench/rows/studies.py) from its runs under `runs_dir`.

    Left: test error against the number of hidden layers (W = 256), one line per method, mean
    over seeds with their standard deviation as error bars; the wide point (W = 1024) as a lone
    marker. Right: mean |cos| between each method's gradient estimate and the gradient it
    estimates, per layer, at a fresh initialisation, on a batch of 256, `draws` estimates each
    (forward_grad.layer_cosines).
    """
    runs = study_runs(studies.get("depth"), runs_dir)
    runs = runs[runs.status == "finished"]
    fig, (err_ax, cos_ax) = plt.subplots(1, 2, figsize=(14, 5.5))
    palette = ["black", "tab:red", "tab:orange", "tab:blue", "tab:green"]
    colors = dict(zip(studies.DEPTH_ROWS, palette, strict=True))
    for row in studies.DEPTH_ROWS:
        mine = runs[runs.experiment == row]
        for width, style in ((256, "-o"), (1024, "D")):
            g = mine[mine.width == width].groupby("depth").test_error
            if not len(g):
                continue
            mean, std = g.mean(), g.std(ddof=1).fillna(0)
            label = row.removeprefix("depth_") + ("" if width == 256 else f" (W={width})")
            hollow = "none" if width > 256 else None
            err_ax.errorbar(mean.index, mean.values, yerr=std.values, fmt=style, capsize=3,
                            color=colors[row], label=label, mfc=hollow)  # fmt: skip
    err_ax.set(xscale="log", xticks=[1, 2, 4, 8], xticklabels=["1", "2", "4", "8"], yscale="log",
               xlabel="hidden layers L (784-256xL-10)", ylabel="test error (%)",
               title=f"test error, mean ± std over seeds ({runs_dir})")  # fmt: skip
    err_ax.xaxis.set_minor_formatter(NullFormatter())  # no 3x10^0 between the depths
    err_ax.yaxis.set_major_formatter(ScalarFormatter())
    err_ax.yaxis.set_minor_formatter(ScalarFormatter())
    err_ax.grid(alpha=0.3, which="both")
    err_ax.legend(fontsize=8)

    x, y = images[:256], labels[:256]
    gen = torch.Generator().manual_seed(0)
    kinds = {Perturbation.weight: "tab:red", Perturbation.joint: "tab:orange",
             Perturbation.activity: "tab:blue", Perturbation.local: "tab:green"}  # fmt: skip
    for kind, color in kinds.items():
        for depth, alpha in zip((1, 2, 4, 8), (0.35, 0.55, 0.75, 1.0), strict=True):
            cos = layer_cosines(kind, studies.mlp(depth), x, y, draws, gen)
            cos_ax.plot(range(1, depth + 2), cos, "-o", color=color, alpha=alpha, ms=3,
                        label=f"{kind.value}, L={depth}")  # fmt: skip
    cos_ax.set(yscale="log", xlabel="layer (the last is the output layer)",
               ylabel=f"|cos(estimate, its gradient)|, mean of {draws} draws",
               title="per-layer alignment at initialisation, batch of 256")  # fmt: skip
    cos_ax.grid(alpha=0.3, which="both")
    cos_ax.legend(fontsize=7, ncol=3)
    fig.suptitle("Forward gradients as the MLP deepens")
    return save(fig, path)


VARIANCE_SIZES = (784, 256, 10)
GROUP_SIZES = (256, 128, 64, 32, 16, 8)


def variance_table(images: torch.Tensor, labels: torch.Tensor, draws: int = 50,
                   batch_draws: int = 10) -> pd.DataFrame:  # fmt: skip
    """The variance law measured (Ren et al. §3.4): the first layer's weight-gradient estimate on
    784-256-10 at initialisation, for activity perturbation of the network's loss and of a local
    head's, unmasked and ReLU-masked, as the group size q goes from the layer's 256 units to 8.
    Per row: the relative error E||g^ - g||^2 / ||g||^2 on one image (mean over the first 8
    images, `draws` estimates each; q + 1 unmasked in expectation) and mean |cos| on a batch of
    256 (`batch_draws` estimates)."""
    rows = []
    for kind in (Perturbation.activity, Perturbation.local):
        for mask in (False, True):
            for q in GROUP_SIZES:
                gen = torch.Generator().manual_seed(0)
                errors = [estimate_errors(kind, VARIANCE_SIZES, images[i : i + 1],
                                          labels[i : i + 1], draws, gen, q, mask)[0][1]
                          for i in range(8)]  # fmt: skip
                (cos, _), _ = estimate_errors(kind, VARIANCE_SIZES, images, labels, batch_draws,
                                              gen, q, mask)  # fmt: skip
                rows.append({"estimator": kind.value, "masked": mask, "q": q,
                             "q_plus_1": q + 1, "relative_error": sum(errors) / len(errors),
                             "cos_batch": cos})  # fmt: skip
    return pd.DataFrame(rows)


def variance_figure(path: Path, images: torch.Tensor, labels: torch.Tensor) -> Path:
    """`variance_table` as a figure (`variance_plot`), its numbers beside it as CSV (same name,
    .csv), which the report reads."""
    table = variance_table(images, labels)
    path = save(variance_plot(table), path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.csv")
    table.to_csv(tmp, index=False)
    os.replace(tmp, path.with_suffix(".csv"))
    return path


def variance_plot(table: pd.DataFrame) -> plt.Figure:
    """Relative error against q with the line q + 1, and the batch's |cos| against q, from a
    `variance_table`."""
    fig, (err_ax, cos_ax) = plt.subplots(1, 2, figsize=(13, 5))
    styles = {("activity", False): ("tab:blue", "--o"), ("activity", True): ("tab:blue", "-o"),
              ("local", False): ("tab:green", "--s"),
              ("local", True): ("tab:green", "-s")}  # fmt: skip
    for (kind, mask), (color, style) in styles.items():
        t = table[(table.estimator == kind) & (table.masked == mask)]
        label = f"{kind}{', ReLU-masked' if mask else ''}"
        err_ax.plot(t.q, t.relative_error, style, color=color, label=label)
        cos_ax.plot(t.q, t.cos_batch, style, color=color, label=label)
    qs = sorted(set(table.q))
    err_ax.plot(qs, [q + 1 for q in qs], ":", color="black", label="q + 1")
    width = max(qs)
    err_ax.set(xscale="log", yscale="log", xlabel=f"units per group q (the layer: {width})",
               ylabel="E||g^ - g||² / ||g||², one image",
               title="relative error of layer 1's estimate")  # fmt: skip
    cos_ax.set(xscale="log", yscale="log", xlabel=f"units per group q (the layer: {width})",
               ylabel="mean |cos(estimate, gradient)|",
               title="alignment on a batch of 256")  # fmt: skip
    for ax in (err_ax, cos_ax):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle("Forward gradients: the variance falls with the units per loss "
                 f"({'-'.join(map(str, VARIANCE_SIZES))})")  # fmt: skip
    return fig
