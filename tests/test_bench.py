"""The bench command's bookkeeping (its timings are what it reports, never asserted here)."""

import pytest
import torch

from ffbench.methods.backprop import Backprop
from ffbench.methods.ff import FF
from ffbench.methods.ff_best import FFBest
from ffbench.methods.forward_grad import ActivityPerturbed
from ffbench.rows import get, under
from ffbench.runner.bench import bench


def test_essential_flop_counts_of_the_784_800_10_net():
    # forward + weight gradient of both layers, input gradient of the second only
    dnn = 4 * 784 * 800 + 4 * 800 * 10 + 2 * 800 * 10
    assert Backprop.flops_per_sample(get("DNN_base")) == dnn
    assert ActivityPerturbed.flops_per_sample(get("FG_activity")) == dnn  # the cost model's
    # a positive and a negative row, forward + weight gradient of both layers
    assert FF.flops_per_sample(get("FFA0")) == 2 * (4 * 784 * 800 + 4 * 800 * 10)
    layers = 4 * 784 * 1000 + 2 * 4 * 1000 * 1000
    assert FFBest.flops_per_sample(get("FF_best")) == 2 * layers


def test_the_code_readings_reforward_is_counted():
    """Sequential layers: layer 2 trains on layer 1's updated output, one more forward of
    layer 1 for the positive and the negative row."""
    text, code = get("FFA0"), under(get("FFA0"), "code")
    assert FF.flops_per_sample(code) == FF.flops_per_sample(text) + 2 * (2 * 784 * 800)


@pytest.mark.parametrize("reading, ref", [("text", True), ("code", False)])
def test_bench_reports_every_key_per_batch(synthetic, reading, ref):
    rows = bench(synthetic, torch.device("cpu"), [16, 64], samples=128, peak_n=128,
                 reading=reading)  # fmt: skip
    assert [r["batch"] for r in rows] == [16, 64]
    keys = {"device", "reading", "denormals", "batch", "peak_gflops", "dnn_epoch_s", "ff_epoch_s",
            "dnn_util", "ff_util", "eval_ratio"}  # fmt: skip
    if ref:
        keys |= {"ref_ff_epoch_s", "ref_ff_util", "ref_eval_ratio", "ff_speedup"}
    for r in rows:
        assert set(r) == keys and r["reading"] == reading
        assert r["denormals"] == {"text": "flush", "code": "keep"}[reading]
        assert all(r[k] > 0 for k in r if k not in ("device", "reading", "denormals"))
        if ref:
            assert r["ff_speedup"] == r["ref_ff_epoch_s"] / r["ff_epoch_s"]


def test_bench_arithmetic_with_a_fake_clock(synthetic, monkeypatch):
    """Every timed call lasts exactly 0.5 s on a fake clock: the peak is 2 n^3 / 0.5, each epoch
    0.5 s, so each utilisation is its essential FLOPs over the peak's, to the last digit."""
    import itertools

    import ffbench.runner.bench as bench_module

    ticks = itertools.count(0.0, 0.5)
    monkeypatch.setattr(bench_module.time, "perf_counter", lambda: next(ticks))
    for reading in ("text", "code"):
        (row,) = bench(synthetic, torch.device("cpu"), [16], samples=128, peak_n=64,
                       reading=reading)  # fmt: skip
        peak = 2 * 64**3 / 0.5 / 1e9
        assert row["peak_gflops"] == pytest.approx(peak, rel=1e-12)
        assert row["dnn_epoch_s"] == row["ff_epoch_s"] == 0.5
        dnn = Backprop.flops_per_sample(get("DNN_base"))
        assert row["dnn_util"] == pytest.approx(dnn * 128 / 2 / 64**3)
        ff = FF.flops_per_sample(under(get("adj_FFA0_1"), reading))
        assert row["ff_util"] == pytest.approx(ff * 128 / 2 / 64**3, rel=1e-12)
        assert row["eval_ratio"] == 1.0
    assert row["reading"] == "code" and "ff_speedup" not in row
