import math

import pandas as pd
import pytest
import torch
from test_results import fake_run
from typer.testing import CliRunner

from ffbench.cli import app

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


def test_losses_figure_is_a_png(tmp_path):
    out = runner.invoke(app, ["figure", "losses", "--output", str(tmp_path / "l.png")])
    assert out.exit_code == 0, out.output
    data = (tmp_path / "l.png").read_bytes()
    assert data.startswith(PNG) and len(data) > 20_000  # six labelled panels, not an empty canvas


def test_plot_draws_several_runs(tmp_path):
    runs = []
    for name, acc in [("DNN_base", 0.9), ("FFA0", float("nan"))]:
        path = fake_run(tmp_path, name, 0, "finished", acc, 1.0)
        (path / "metrics.csv").write_text(
            "epoch,batch,rate,loss,seconds,test_accuracy\n1,50,0.001,2.0,1.0,\n2,60,0.0012,1.5,2.0,0.8\n"
        )
        runs.append(str(path))
    out = runner.invoke(app, ["plot", *runs, "--output", str(tmp_path / "c.png")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "c.png").read_bytes().startswith(PNG)


def test_the_loss_axis_is_logarithmic_only_for_positive_losses_over_three_decades():
    from ffbench.report.figures import loss_scale

    assert loss_scale(pd.Series([0.1, 0.3, 2.0e9])) == "log"  # FG at 1e-2 beside backprop
    assert loss_scale(pd.Series([0.1, 0.3, 2.3])) == "linear"
    assert loss_scale(pd.Series([-0.5, 0.1, 2.0e9])) == "linear"  # a loss below 0 has no log
    assert loss_scale(pd.Series([float("nan"), 0.1, 1e4 + 1])) == "log"  # a diverged epoch


def test_plot_of_a_folder_that_is_not_a_run(tmp_path):
    out = runner.invoke(app, ["plot", str(tmp_path), "--output", str(tmp_path / "c.png")])
    assert out.exit_code == 2 and "no metrics.csv" in out.output
    assert not (tmp_path / "c.png").exists()


def test_cosine_figure_is_a_png(tmp_path, synthetic):
    from ffbench.report.figures import cosine_figure

    path = cosine_figure(tmp_path / "cos.png", synthetic.x_train, synthetic.y_train, draws=3)
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 20_000


def test_the_cosine_figures_data_follow_sqrt_2_over_pi_n(synthetic):
    """The data behind `ffbench figure cosine`: E|cos| of random directions is sqrt(2/(pi n))
    (left), and a weight-perturbed estimate (g . v) v is such a direction against g (right)."""
    from ffbench.methods.forward_grad import weight_perturbed
    from ffbench.report.figures import forward_gradient_cosines, random_cosines

    gen = torch.Generator().manual_seed(0)
    mean_80 = random_cosines(80, 20000, gen).mean().item()
    assert mean_80 == pytest.approx(math.sqrt(2 / (math.pi * 80)), rel=0.05)
    assert random_cosines(4, 20000, gen).mean().item() > 3 * mean_80  # crowds towards 0
    n_params, cos = forward_gradient_cosines(weight_perturbed, synthetic.x_train,
                                             synthetic.y_train, 10, 200, gen)  # fmt: skip
    assert n_params == 784 * 10 + 10 + 10 * 10 + 10
    assert cos.mean().item() == pytest.approx(math.sqrt(2 / (math.pi * n_params)), rel=0.15)


def test_ablation_figure_draws_each_flip_or_says_what_to_run(tmp_path):
    code = tmp_path / "code"
    for seed, acc in [(0, 0.5), (1, 0.4)]:
        fake_run(code, "adj_FFA0_1", seed, "finished", acc, 1.0, reading="code")
    fake_run(code, "adj_FFA0_1", 0, "finished", 0.8, 1.0, {"goodness": "sum"}, "-a", reading="code")
    fake_run(code, "adj_FFA0_1", 0, "diverged", math.nan, 1.0, {"theta": 2.0}, "-b", reading="code")
    png = tmp_path / "a.png"
    args = ["figure", "ablation", "adj_FFA0_1", "--runs-dir", str(tmp_path), "--output", str(png)]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert png.read_bytes().startswith(PNG)
    out = runner.invoke(app, args[:3] + ["--reading", "text"] + args[3:])
    assert out.exit_code == 1
    assert "no text runs of adj_FFA0_1 with and without a flip; run `ffbench ablate" in out.output
