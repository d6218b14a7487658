"""`ffbench bench`: how close training gets to this device's matmul peak, side by side with a
plain reference loop, measured in one process.

Essential FLOPs are each method's own count (`Method.flops_per_sample`): per row through a Linear
n_in -> n_out, forward 2*n_in*n_out, weight gradient 2*n_in*n_out, input gradient 2*n_in*n_out
only where a lower layer needs it. Biases and elementwise work are not counted: they are the
overhead we want to see.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from ffbench.core.data import MNIST, pixel_values
from ffbench.core.models import label_ready, overlay_label
from ffbench.methods.backprop import Backprop
from ffbench.methods.ff import FF, ReferenceFF
from ffbench.rows import get, under
from ffbench.runner.loop import set_denormals, sync

EPOCH_SAMPLES = 60000


def timed(fn: Callable[[], object], device: torch.device, repeat: int = 1) -> float:
    """Best wall time of `repeat` calls, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def peak_gflops(device: torch.device, n: int = 4096, repeat: int = 5) -> float:
    """fp32 matmul throughput of a square n x n product, warmed up, best of `repeat`."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    return 2 * n**3 / timed(lambda: a @ b, device, repeat) / 1e9


def epoch_data(data: MNIST, samples: int) -> MNIST:
    """`samples` training samples (repeated if the data is smaller): every epoch the same size."""
    reps = -(-samples // len(data.x_train))
    x = data.x_train.repeat(reps, 1)[:samples]
    y = data.y_train.repeat(reps)[:samples]
    return MNIST(x, y, data.x_test, data.y_test)


def epoch_seconds(method, batch: int, device: torch.device) -> float:
    """Wall time of one training epoch of `method` at a constant batch size (rate 0: timing
    only)."""
    gen = torch.Generator(device=device).manual_seed(0)
    for opt in method.optimizers:
        for group in opt.param_groups:
            group["lr"] = 0.0
    return timed(lambda: method.train_epoch(None, batch, gen).item(), device)


def bench(
    data: MNIST,
    device: torch.device,
    batches: list[int],
    samples: int = EPOCH_SAMPLES,
    peak_n: int = 4096,
    reading: str = "text",
) -> list[dict]:
    """The measurements of `ffbench bench`, one dict per batch size; an epoch is `samples`.
    DNN_base and adj_FFA0_1 under `reading`; the plain reference loop (text reading) is timed
    beside the text reading only."""
    data = epoch_data(data, samples)
    dnn_exp, ff_exp = under(get("DNN_base"), reading), under(get("adj_FFA0_1"), reading)
    set_denormals(ff_exp)  # the reading's, as `train` sets them (DNN_base's are the same)
    dnn_flops, ff_flops = Backprop.flops_per_sample(dnn_exp), FF.flops_per_sample(ff_exp)
    peak = peak_gflops(device, peak_n)
    torch.manual_seed(0)
    ff = FF(ff_exp, data, device)
    ref = ReferenceFF(ff_exp, data, device) if reading == "text" else None
    x = data.x_test
    x_one = overlay_label(
        label_ready(pixel_values(x, ff_exp.pixels), ff_exp.label_input), data.y_test
    )
    with torch.no_grad():
        forward_s = timed(lambda: ff.model.goodnesses(x_one, fused=False), device, repeat=3)
        eval_s = timed(lambda: ff.model.goodness_per_label(*ff.encode(x)), device, repeat=3)
        ref_eval_s = timed(lambda: ff.model.goodness_per_label_plain(x), device, repeat=3)
    out = []
    for b in batches:
        dnn_s = epoch_seconds(Backprop(dnn_exp, data, device), b, device)
        ff_s = epoch_seconds(ff, b, device)
        util = lambda flops, s: flops * samples / s / 1e9 / peak  # noqa: E731
        row = {
            "device": str(device),
            "reading": reading,
            "denormals": ff_exp.denormals.value,
            "batch": b,
            "peak_gflops": peak,
            "dnn_epoch_s": dnn_s,
            "ff_epoch_s": ff_s,
            "dnn_util": util(dnn_flops, dnn_s),
            "ff_util": util(ff_flops, ff_s),
            "eval_ratio": eval_s / forward_s,
        }
        if ref is not None:
            ref_s = epoch_seconds(ref, b, device)
            row["ref_ff_epoch_s"] = ref_s
            row["ref_ff_util"] = util(ff_flops, ref_s)
            row["ref_eval_ratio"] = ref_eval_s / forward_s
            row["ff_speedup"] = ref_s / ff_s
        out.append(row)
    return out
