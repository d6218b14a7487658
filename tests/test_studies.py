"""Studies (ffbench/studies.py): the depth study's matrix, table and figure; the per-layer
cosine diagnostic (ffbench/forward_grad.py)."""

import dataclasses
import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from test_results import fake_run
from typer.testing import CliRunner

from ffbench.cli import app
from ffbench.core.data import load
from ffbench.core.models import MLP
from ffbench.methods.forward_grad import Perturbation, activity_perturbed, layer_cosines
from ffbench.report.figures import depth_figure
from ffbench.report.studies import choice, study_runs, study_table
from ffbench.rows import REGISTRY
from ffbench.rows.beyond import DEPTH_RATES, REN_ROWS
from ffbench.rows.studies import DEPTH_ROWS, FF_BEST_BUDGET, get, mlp, point_label
from ffbench.runner.store import read_json, write_json

runner = CliRunner()


def test_the_depth_study_is_five_rows_at_five_sizes():
    depth = get("depth")
    assert depth.rows == DEPTH_ROWS
    assert [p["sizes"] for p in depth.settings()] == [
        (784, 256, 10), (784, 256, 256, 10), (784,) + (256,) * 4 + (10,),
        (784,) + (256,) * 8 + (10,), (784,) + (1024,) * 4 + (10,),
    ]  # fmt: skip
    assert point_label({"sizes": mlp(4, 1024)}) == "L=4, W=1024"
    assert point_label({"sizes": mlp(4), "lr": 3e-4}) == "L=4, W=256, lr=0.0003"


def test_study_dry_run_lists_rows_times_points_times_seeds(tmp_path):
    out = runner.invoke(app, ["study", "depth", "--seeds", "3", "--dry-run", "--runs-dir",
                              str(tmp_path)])  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "75 runs" in out.output and not any(tmp_path.iterdir())
    bad = runner.invoke(app, ["study", "dept", "--runs-dir", str(tmp_path)])
    assert bad.exit_code == 2 and "unknown study 'dept': did you mean depth" in bad.output


def test_study_help_names_every_registered_study():
    from ffbench.rows.studies import STUDIES

    out = runner.invoke(app, ["study", "--help"], terminal_width=200)
    assert out.exit_code == 0
    assert all(re.search(rf"\b{name}\b", out.output) for name in STUDIES), out.output


def fake_study_run(root, row, seed, sizes, error, epochs=20):
    changed = {"sizes": list(sizes)} | ({"epochs": epochs} if epochs != 20 else {})
    return fake_run(root / "text", row, seed, "finished", 1 - error / 100, 60.0, changed,
                    suffix=f"-{len(sizes)}-{sizes[1]}", sizes=list(sizes),
                    epochs=epochs)  # fmt: skip


def test_the_study_table_is_rows_by_points_with_mean_std_and_n(tmp_path):
    fake_study_run(tmp_path, "depth_backprop", 0, mlp(4), 2.0)
    fake_study_run(tmp_path, "depth_backprop", 1, mlp(4), 3.0)
    fake_study_run(tmp_path, "depth_FG_local", 0, mlp(1), 4.0)
    fake_study_run(tmp_path, "depth_FG_local", 1, mlp(1), 9.0, epochs=2)  # shortened: left out
    fake_study_run(tmp_path, "depth_FG_local", 2, (784, 100, 10), 9.0)  # at no point: left out
    header, rows = study_table(get("depth"), tmp_path)
    assert header[0] == "Row" and header[1:4] == ["L=1, W=256", "L=2, W=256", "L=4, W=256"]
    table = {r[0]: dict(zip(header[1:], r[1:], strict=True)) for r in rows}
    assert table["depth_backprop"]["L=4, W=256"] == "2.50 ± 0.71 (n=2)"
    assert table["depth_FG_local"]["L=1, W=256"] == "4.00 (n=1)"
    assert table["depth_FG_weight"]["L=8, W=256"] == "-"
    md = runner.invoke(app, ["table", "--study", "depth", "--runs-dir", str(tmp_path),
                             "--format", "markdown"])  # fmt: skip
    assert md.exit_code == 0 and "| depth_backprop | - | - | 2.50 ± 0.71 (n=2) |" in md.output


def test_a_choosing_study_shows_validation_error_only_at_its_own_epochs(tmp_path):
    """ff_best_recipe chooses FF_best's recipe: its table must not show the test set, and its
    30-epoch points are its runs (a shortened run is not), though FF_best registers 60."""
    point = {"validation": 10000, "epochs": 30, "pixels": "standard"}
    sizes = [784, 1000, 1000, 1000]
    for seed, val in enumerate([0.97, 0.98]):
        path = fake_run(tmp_path / "text", "FF_best", seed, "finished", 0.5, 60.0, point,
                        suffix="-p", sizes=sizes, **point)  # fmt: skip
        write_json(path / "result.json", read_json(path / "result.json")
                   | {"validation_accuracy": val})  # fmt: skip
    for seed, changed in enumerate([point | {"epochs": 2}, point | {"lr": 0.1}]):
        fake_run(tmp_path / "text", "FF_best", seed, "finished", 0.5, 9.0, changed,
                 suffix="-x", sizes=sizes, **changed)  # fmt: skip
    study = get("ff_best_recipe")
    header, rows = study_table(study, tmp_path)
    assert header[2] == "validation=10000, epochs=30, pixels=standard"
    assert rows == [["FF_best", "-", "2.50 ± 0.71 (n=2)", "-", "-", "-"]]
    lr = {"validation": 10000, "epochs": 30, "lr": 3e-3}  # the last point, whose run diverged
    fake_run(tmp_path / "text", "FF_best", 0, "diverged", math.nan, 9.0, lr, suffix="-d",
             sizes=sizes, **lr)  # fmt: skip
    assert study_table(study, tmp_path)[1][0][-1] == "diverged (n=1)"
    out = runner.invoke(app, ["table", "--study", "ff_best_recipe", "--runs-dir", str(tmp_path)])
    assert out.exit_code == 0 and "validation error %" in out.output, out.output


def test_the_depth_figure_draws_from_the_runs(tmp_path, mnist_root):
    for seed, error in enumerate((2.0, 2.5)):
        for depth in (1, 2):
            fake_study_run(tmp_path, "depth_backprop", seed, mlp(depth), error * depth)
    out = runner.invoke(app, ["figure", "depth", "--runs-dir", str(tmp_path / "none")])
    assert out.exit_code == 1 and "run `ffbench study depth` first" in out.output
    data = load(mnist_root, "cpu", 64, log=lambda _: None)
    png = depth_figure(tmp_path, tmp_path / "figures" / "depth.png", data.x_train, data.y_train,
                       draws=2)  # fmt: skip
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 20_000


def test_weight_perturbation_aligns_far_worse_than_activity_per_layer(mnist_small):
    """The second seed's curse: one direction over all weights (n ~ 200k) against one per
    sample over a layer's 256 pre-activations; the 10-unit output layer aligns best."""
    x, y = mnist_small.x_train[:64], mnist_small.y_train[:64]
    gen = torch.Generator().manual_seed(0)
    weight = layer_cosines(Perturbation.weight, mlp(2), x, y, 10, gen)
    activity = layer_cosines(Perturbation.activity, mlp(2), x, y, 10, gen)
    assert len(weight) == len(activity) == 3
    assert all(a > 10 * w for a, w in zip(activity, weight, strict=True))
    assert activity[-1] == max(activity)


def test_one_perturbation_of_every_layer_aligns_worse_as_the_net_deepens(mnist_small):
    """The second seed's argument inside one network: a layer's estimate from the joint
    perturbation carries every other layer's noise, so its alignment falls as layers are added;
    measured one layer at a time (`activity`), the first layer's alignment barely moves."""
    x, y = mnist_small.x_train[:64], mnist_small.y_train[:64]
    gen = torch.Generator().manual_seed(0)
    joint = [layer_cosines(Perturbation.joint, mlp(d), x, y, 10, gen)[0] for d in (1, 8)]
    alone = [layer_cosines(Perturbation.activity, mlp(d), x, y, 10, gen)[0] for d in (1, 8)]
    assert joint[1] < 0.8 * joint[0]  # measured 0.034 at L = 1, 0.023 at L = 8
    assert alone[1] > 0.8 * alone[0] and alone[1] > 2 * joint[1]  # 0.075, 0.067


def test_activity_and_local_estimates_average_to_their_gradients(mnist_small):
    """Unbiased: the mean of many estimates points along the true gradient (the network's
    loss for activity perturbation, each hidden layer's head's loss for local losses)."""
    x, y = mnist_small.x_train[:16], mnist_small.y_train[:16]
    torch.manual_seed(0)
    model = MLP((784, 12, 10))
    heads = torch.nn.ModuleList([torch.nn.Linear(12, 10)])
    F.cross_entropy(model(x), y).backward()
    true_global = model.net[0].weight.grad.clone()
    model.zero_grad()
    F.cross_entropy(heads[0](torch.relu(model.net[0](x))), y).backward()
    true_local = model.net[0].weight.grad.clone()
    gen = torch.Generator().manual_seed(1)
    for use_heads, true, other in ((None, true_global, true_local),
                                   (heads, true_local, true_global)):  # fmt: skip
        mean = sum(activity_perturbed(model, x, y, gen, use_heads)[1]["net.0.weight"]
                   for _ in range(400)) / 400  # fmt: skip
        cos = F.cosine_similarity(mean.flatten(), true.flatten(), dim=0)
        off = F.cosine_similarity(mean.flatten(), other.flatten(), dim=0)
        assert cos > 0.9 and cos > off + 0.1, (use_heads is not None, cos, off)


def test_every_choosing_study_holds_out_validation_images_and_hides_the_test_set():
    """A study that picks a rate or a recipe (issue 13) must pick it on held-out training
    images: each of its runs holds some out, and its table shows validation error only."""
    from ffbench.rows import get as get_row
    from ffbench.rows.studies import STUDIES

    choosing = [s for s in STUDIES.values() if s.column == "validation_error"]
    assert {s.name for s in choosing} == {
        "depth_rates",
        "fg_rates",
        "fg_rates_40",
        "ff_best_recipe",
        "ren_rates",
        "ren_rates_fg",
    }
    for study in choosing:
        for point in study.settings():
            for row in study.rows:
                assert point.get("validation", get_row(row).validation) > 0, (study.name, row)


def rate_run(root, row, seed, lr, validation_error, suffix):
    """A depth_rates-like run of `row` at L = 4 with rate `lr`, recorded as its run recorded
    overrides then (only sizes: `lr` was the row's rate when it ran)."""
    config = REGISTRY[row].settings() | {"sizes": list(mlp(4)), "lr": lr}
    path = fake_run(root / "text", row, seed, "finished", 0.5, 60.0, {"sizes": list(mlp(4))},
                    suffix=suffix, **config)  # fmt: skip
    acc = math.nan if validation_error is None else 1 - validation_error / 100
    write_json(path / "result.json", read_json(path / "result.json") | {"validation_accuracy": acc})


def test_a_run_at_a_rate_since_chosen_away_is_at_its_rate_point_not_the_rows(tmp_path):
    old = 1e-3
    assert DEPTH_RATES["fg_local"] != old
    rate_run(tmp_path, "depth_FG_local", 0, old, 12.0, "-a")
    assert study_runs(get("depth"), tmp_path).empty
    assert list(study_runs(get("depth_rates"), tmp_path).point) == ["L=4, W=256, lr=0.001"]


def test_a_choosing_study_chooses_the_lowest_mean_validation_error(tmp_path):
    rate_run(tmp_path, "depth_FG_activity", 0, 1e-4, 10.0, "-a")
    rate_run(tmp_path, "depth_FG_activity", 1, 1e-4, 14.0, "-b")  # mean 12
    rate_run(tmp_path, "depth_FG_activity", 0, 3e-4, 11.0, "-c")
    rate_run(tmp_path, "depth_FG_activity", 1, 3e-4, 12.0, "-d")  # mean 11.5
    rate_run(tmp_path, "depth_FG_activity", 0, 1e-3, None, "-e")  # diverged: the worst
    rate_run(tmp_path, "depth_FG_activity", 1, 1e-3, 5.0, "-f")
    chosen = choice(get("depth_rates"), tmp_path)
    assert chosen == {"depth_FG_activity": {"sizes": mlp(4), "lr": 3e-4}}


def test_a_choice_compares_points_on_the_seeds_they_share(tmp_path):
    rate_run(tmp_path, "depth_backprop", 0, 1e-3, 2.2, "-a")
    rate_run(tmp_path, "depth_backprop", 1, 1e-3, 2.6, "-b")  # a seed only this point ran
    rate_run(tmp_path, "depth_backprop", 0, 3e-3, 2.3, "-c")
    assert choice(get("depth_rates"), tmp_path)["depth_backprop"]["lr"] == 1e-3


def test_the_registered_rates_and_recipe_are_what_validation_chose_in_the_reference_runs():
    """Every rate of the beyond-rows is the choice, on validation, of its study's committed runs
    (README): editing a rate without the runs that chose it fails here."""
    ref = Path(__file__).parents[1] / "runs" / "reference"
    fg = choice(get("fg_rates"), ref)
    assert {row: p["lr"] for row, p in fg.items()} == {
        row: REGISTRY[row].lr for row in ("FG_weight", "FG_activity", "FG_local")
    }
    depth = choice(get("depth_rates"), ref)
    assert {REGISTRY[row].method: p["lr"] for row, p in depth.items()} == DEPTH_RATES
    assert choice(get("ff_best_recipe"), ref) == {"FF_best": dict(FF_BEST_BUDGET)}
    ren = choice(get("ren_rates"), ref) | choice(get("ren_rates_fg"), ref)
    assert {row: p["lr"] for row, p in ren.items()} == {row: REGISTRY[row].lr for row in REN_ROWS}


def test_the_local_depth_study_keeps_q_and_the_recipe_fixed_as_the_net_deepens():
    """depth_local's two rows differ only in the method and its estimator's settings; their rates
    are the Ren rows' validation choices, and every depth's network is one the method accepts,
    with 32 units per loss."""
    from ffbench import methods

    bp, lg = REGISTRY["depth_LN_backprop"], REGISTRY["depth_LG_FG_local"]
    assert (bp.lr, lg.lr) == (REGISTRY["Ren_BP"].lr, REGISTRY["Ren_LG_FG_A"].lr)
    same = {"optimizer", "momentum", "weight_decay", "epochs", "cooldown", "layer_norm",
            "batch_start", "batch_final", "validation", "sizes"}  # fmt: skip
    assert all(getattr(bp, k) == getattr(lg, k) for k in same)
    assert (lg.group_size, lg.relu_mask, bp.layer_norm) == (32, True, True)
    for point in get("depth_local").settings():
        for row in (bp, lg):
            exp = dataclasses.replace(row, **point)
            assert methods.get(exp.method).check(exp) is None, (row.name, point)
