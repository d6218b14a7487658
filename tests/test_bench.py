"""The bench command's bookkeeping (its timings are what it reports, never asserted here)."""

import torch

from ffbench.bench import bench, dnn_flops_per_sample, ff_flops_per_sample


def test_essential_flop_counts_of_the_784_800_10_net():
    sizes = (784, 800, 10)
    # forward + weight gradient of both layers, input gradient of the second only
    assert dnn_flops_per_sample(sizes) == 4 * 784 * 800 + 4 * 800 * 10 + 2 * 800 * 10
    # a positive and a negative row, forward + weight gradient of both layers
    assert ff_flops_per_sample(sizes) == 2 * (4 * 784 * 800 + 4 * 800 * 10)


def test_bench_reports_every_key_per_batch(synthetic):
    rows = bench(synthetic, torch.device("cpu"), [16, 64], samples=128, peak_n=128)
    assert [r["batch"] for r in rows] == [16, 64]
    for r in rows:
        assert set(r) == {
            "device", "batch", "peak_gflops", "dnn_epoch_s", "ff_epoch_s", "dnn_util", "ff_util",
            "eval_ratio", "ref_ff_epoch_s", "ref_ff_util", "ref_eval_ratio", "ff_speedup",
        }  # fmt: skip
        assert all(r[k] > 0 for k in r if k != "device")
        assert r["ff_speedup"] == r["ref_ff_epoch_s"] / r["ff_epoch_s"]
