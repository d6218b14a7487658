import copy
import dataclasses
import math
import os
import sys
from pathlib import Path

import pytest
import torch

import ffbench
from ffbench import methods
from ffbench.core.losses import Loss, code_loss_terms
from ffbench.core.models import chunk_size
from ffbench.methods.backprop import Backprop
from ffbench.methods.ff import FF, ReferenceFF, other_image_negatives
from ffbench.rows import get, under
from ffbench.runner.loop import denormals_note, set_denormals, train

CPU = torch.device("cpu")


def test_short_dnn_run_learns(mnist_root):
    """The acceptance run: constant batch 50, rate 0.1, 2 epochs on 5000 samples."""
    from ffbench.core import data

    mnist = data.load(mnist_root, "cpu", train_subset=5000, log=lambda _: None)
    exp = dataclasses.replace(get("DNN_base"), epochs=2, batch_final=50, lr=0.1, train_subset=5000)
    result = train(exp, mnist, CPU, seed=0)
    assert result.status == "finished"
    assert result.test_accuracy > 0.85
    assert [r["batch"] for r in result.records] == [50, 50]


def test_short_ff_run_learns_with_adam(mnist_small):
    exp = dataclasses.replace(get("adj_FFA0_2"), epochs=3, batch_final=50, train_subset=2000)
    result = train(exp, mnist_small, CPU, seed=0)
    assert result.status == "finished"
    assert (
        result.test_accuracy > 0.2
    )  # twice chance: goodness summed over labels tells digits apart


def test_negatives_never_pair_an_image_with_itself(synthetic):
    """Eq 3.3: another sample's image, with this sample's label."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        perm = torch.randperm(64, generator=gen)
        images, labels = other_image_negatives(perm, synthetic.y_train, gen)(0, 64)
        assert (images != perm).all()
        assert ((images >= 0) & (images < 64)).all()
        assert torch.equal(labels, synthetic.y_train[perm])


@pytest.mark.parametrize("name, normalize_input", [("adj_FFA0_1", True), ("FFA1", True),
                                                   ("adj_FFA1_2", False)])  # fmt: skip
def test_fast_ff_path_matches_the_straightforward_one(mnist_small, name, normalize_input):
    """FF (pre-normalised inputs, fused goodness, chunked batches) against ReferenceFF
    (overlays per batch, separate positive and negative passes, plain autograd)."""
    exp = dataclasses.replace(get(name), epochs=3, lr=0.02, normalize_input=normalize_input)
    runs = []
    for task_class in (FF, ReferenceFF):
        torch.manual_seed(0)
        task = task_class(exp, mnist_small, CPU)
        if task_class is FF:
            task.chunk = 256  # several chunks per batch
        gen = torch.Generator().manual_seed(0)
        losses = [task.train_epoch(None, b, gen).item() for b in (100, 700, 1500)]
        runs.append((losses, task.predict(mnist_small.x_test[:2000]), task.model.state_dict()))
    (fast_loss, fast_pred, fast_w), (plain_loss, plain_pred, plain_w) = runs
    assert fast_loss == pytest.approx(plain_loss, rel=1e-4)
    for key in fast_w:
        torch.testing.assert_close(fast_w[key], plain_w[key], rtol=1e-3, atol=1e-5)
    assert (fast_pred == plain_pred).float().mean() > 0.99


def test_chunked_backprop_is_the_same_update(mnist_small):
    exp = dataclasses.replace(get("DNN_base"), epochs=2)
    states = []
    for chunk in (300, 10**9):
        torch.manual_seed(0)
        task = Backprop(exp, mnist_small, CPU, chunk=chunk)
        gen = torch.Generator().manual_seed(0)
        losses = [task.train_epoch(None, b, gen).item() for b in (100, 2000)]
        states.append((losses, task.model.state_dict()))
    (loss_a, w_a), (loss_b, w_b) = states
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    for key in w_a:
        torch.testing.assert_close(w_a[key], w_b[key])


def test_literal_loss_diverges_and_stops_where_the_stable_one_does_not(mnist_small):
    exp = dataclasses.replace(get("FFA0"), epochs=3, batch_final=50, lr=50.0)
    literal = train(exp, mnist_small, CPU, seed=0)
    assert literal.status == "diverged" and math.isnan(literal.test_accuracy)
    assert literal.diverged_epoch == 1 and len(literal.records) == 1
    stable = train(dataclasses.replace(exp, stable_loss=True), mnist_small, CPU, seed=0)
    assert stable.status == "finished" and stable.epochs_run == 3


def test_ff_runs_record_the_range_of_their_margins(synthetic, mnist_small):
    """margin_min/max: the extremes of s = (g+ - theta) (+) (theta - g-) over the samples and
    layers of an epoch, the quantity whose exp leaves float32 near |s| = 88.7."""
    exp = under(get("FFA1"), "code")
    task = FF(exp, synthetic, CPU)
    idx, neg = torch.arange(8), torch.arange(8, 16)
    x = task.fill(torch.empty(16, 784), idx, neg, synthetic.y_train[idx])
    task.layer_losses([0, 1], x, 8)
    with torch.no_grad():
        gs = task.model.goodnesses(task.model.hidden(x, 0), input_normalized=True, first=0, stop=2)
    s = torch.cat([torch.cat([g[:8] - exp.theta, exp.theta - g[8:]]) for g in gs])
    got = task.diagnostics()
    assert got["margin_min"].item() == s.min().item() and got["margin_max"].item() == s.max().item()
    assert task.diagnostics()["margin_max"].item() == -math.inf  # reset for the next epoch
    # the literal plain L1 breaks once a margin passes 88.7: the record shows it did
    blown = train(dataclasses.replace(exp, epochs=40, batch_final=50, lr=1e3), mnist_small, CPU, 0)
    assert blown.status == "diverged", blown.records[-1]
    assert max(abs(blown.records[-1][k]) for k in ("margin_min", "margin_max")) > 87


def test_greedy_layer_order_trains_each_layer_for_all_epochs(synthetic):
    exp = dataclasses.replace(get("adj_FFA0_1"), epochs=2, batch_final=32, layer_order="greedy")
    result = train(exp, synthetic, CPU, seed=0)
    assert [(r["epoch"], r["layer"]) for r in result.records] == [(1, 1), (2, 1), (3, 2), (4, 2)]


def test_same_seed_same_run(synthetic):
    exp = dataclasses.replace(get("adj_FFA1_2"), epochs=3, batch_final=32)
    a, b = (train(exp, synthetic, CPU, seed=7) for _ in range(2))
    assert [r["loss"] for r in a.records] == [r["loss"] for r in b.records]
    assert a.test_accuracy == b.test_accuracy


def test_eval_every_records_accuracy_on_chosen_epochs(synthetic):
    exp = dataclasses.replace(get("DNN_base"), epochs=5, batch_final=16)
    result = train(exp, synthetic, CPU, seed=0, eval_every=2)
    evaluated = [r["epoch"] for r in result.records if not math.isnan(r["test_accuracy"])]
    assert evaluated == [2, 4, 5]


def test_fused_adam_takes_the_same_steps_as_the_plain_one(mnist_small):
    """The Adam rows use torch's fused kernel for speed; the update must be Adam's."""
    exp = dataclasses.replace(get("adj_FFA0_2"), epochs=2, batch_final=100, train_subset=2000)
    losses, weights = [], []
    for fused in (True, False):
        torch.manual_seed(0)
        task = FF(exp, mnist_small, CPU)
        assert all(opt.defaults["fused"] for opt in task.optimizers)
        if not fused:
            task.optimizers = [torch.optim.Adam(m.parameters(), lr=exp.lr)
                               for m in task.model.layers]  # fmt: skip
        gen = torch.Generator().manual_seed(0)
        losses.append([task.train_epoch(None, 100, gen).item() for _ in range(2)])
        weights.append([p.detach().clone() for p in task.model.parameters()])
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for a, b in zip(*weights, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["adj_FFA0_1", "FG_local", "FF_best"])
def test_a_resumed_run_ends_where_the_uninterrupted_one_does(synthetic, name):
    """Every module a task trains is in its checkpoint (FG_local's heads, FF_best's head and
    peer-norm buffers), so stopping after epoch 2 and resuming changes nothing."""
    exp = dataclasses.replace(
        get(name), epochs=4, batch_start=16, batch_final=16, sizes=(784, 20, 20, 10)
    )
    whole = train(exp, synthetic, CPU, seed=0)
    saved = []
    train(exp, synthetic, CPU, seed=0, checkpoint=lambda st: saved.append(copy.deepcopy(st)),
          checkpoint_every=2)  # fmt: skip
    assert [st["epoch"] for st in saved] == [2]
    resumed = train(exp, synthetic, CPU, seed=0, resume=saved[0])
    assert [r["loss"] for r in resumed.records] == [r["loss"] for r in whole.records]
    assert resumed.test_accuracy == whole.test_accuracy
    assert resumed.readouts == whole.readouts


def adam_with_decaying_moments(flush: bool) -> tuple[torch.Tensor, int]:
    """30 fused Adam steps on a 40x20 weight whose first 20 rows get no gradient (dead units)
    and start with denormal moments, as adj_FFA0_2's layer 1 had. Returns the weight and how
    many first moments are denormal at the end (counted before flushing is switched back on:
    with it on, a denormal reads as 0)."""
    torch.set_flush_denormal(False)  # build the same starting state either way
    g = torch.Generator().manual_seed(0)
    w = torch.nn.Parameter(torch.randn(40, 20, generator=g))
    opt = torch.optim.Adam([w], lr=1e-3, fused=True)
    w.grad = torch.randn(40, 20, generator=g)
    opt.step()
    opt.state[w]["exp_avg"][:20] = 3e-39
    opt.state[w]["exp_avg_sq"][:20] = 1e-40
    torch.set_flush_denormal(flush)
    try:
        for _ in range(30):
            w.grad = torch.randn(40, 20, generator=g)
            w.grad[:20] = 0.0
            opt.step()
        m = opt.state[w]["exp_avg"]
        denormal = int(((m != 0) & (m.abs() < torch.finfo(torch.float32).tiny)).sum())
    finally:
        torch.set_flush_denormal(True)  # what `train` sets
    return w.detach(), denormal


def test_flushing_denormals_leaves_adams_weights_unchanged():
    """`flush_denormals` (set by `train`) zeroes the dead units' decaying moments instead of
    carrying them through the slow denormal range; the weights are bit for bit the same."""
    kept, n_kept = adam_with_decaying_moments(flush=False)
    flushed, n_flushed = adam_with_decaying_moments(flush=True)
    assert n_kept == 20 * 20 and n_flushed == 0
    assert torch.equal(kept, flushed)


def l0_terms_and_slopes(mode: str, s: torch.Tensor, scale: float = 1.0):
    """The code reading's plain L0 terms, log(exp(-s)), and their slopes d/ds of `scale` times
    their sum (training's loss is their mean over a batch's 2B terms), with denormals as `mode`
    says (set as `train` sets them)."""
    set_denormals(dataclasses.replace(under(get("FFA0"), "code"), denormals=mode))
    try:
        s = s.clone().requires_grad_()
        terms = code_loss_terms(Loss.L0, s, s[:0], 0.0)
        (slopes,) = torch.autograd.grad(terms.sum() * scale, s)
        return terms.detach(), slopes
    finally:
        torch.set_flush_denormal(False)  # torch's default: a comparison then sees a denormal


def test_keep_and_flush_differ_exactly_where_a_value_falls_under_the_smallest_normal():
    """Margins from 0 to 110 through L0's log(exp(-s)). torch's CPU exp and log build their
    results with integer arithmetic that FTZ/DAZ leave alone, so the terms agree bit for bit
    under both settings; the slope's arithmetic does not: where exp(-s) is denormal (s from
    87.3 to 103.9) `flush` reads it as 0 and the slope is NaN (FFA0's break), `keep` gives ~-1
    until 1/exp(-s) overflows (s past 88.7, for a slope of scale one: the next test) and -inf
    after. Elsewhere they agree."""
    s = torch.linspace(0.0, 110.0, 4401)
    kept, kept_slope = l0_terms_and_slopes("keep", s)
    flushed, flushed_slope = l0_terms_and_slopes("flush", s)
    e, f32 = torch.exp(-s), torch.finfo(torch.float32)
    denormal = (e > 0) & (e < f32.tiny)
    assert 600 < int(denormal.sum()) < 700  # s in (87.3, 103.9), at steps of 0.025
    same = lambda a, b: (a == b) | (a.isnan() & b.isnan())  # noqa: E731
    assert same(kept, flushed).all()
    assert same(kept_slope, flushed_slope)[~denormal].all()
    assert flushed_slope[denormal].isnan().all()
    overflows = s > math.log(f32.max)  # 88.7: 1/exp(-s) is inf
    assert ((kept_slope[denormal & ~overflows] + 1).abs() < 1e-4).all()  # denormals round
    assert (kept_slope[denormal & overflows] == -math.inf).all()


def test_an_epochs_loss_is_the_mean_of_its_batches_to_double_precision(synthetic, monkeypatch):
    """The loss an epoch records is its batches' mean loss summed in float64, as the authors'
    dojo sums `loss.item()` (core/dojo.py:75-77). Summed in float32 it drifted: adj_FFA1_2's
    epoch 1 (1200 windows of 50) read -1.4481179 where its batches' mean is -1.4481015, the
    authors' code -1.4481013. Here 64 windows of one pair under the code reading."""
    terms = []
    original = FF.layer_losses

    def recording(self, layers, x, k):
        loss = original(self, layers, x, k)
        terms.append(float(loss.detach() / (2 * k) * k))  # what the epoch adds, in float32
        return loss

    monkeypatch.setattr(FF, "layer_losses", recording)
    exp = dataclasses.replace(under(get("adj_FFA1_2"), "code"), sizes=(784, 20, 10))
    method = FF(exp, synthetic, CPU)
    loss = method.train_epoch(None, 1, torch.Generator().manual_seed(0))
    assert len(terms) == 2 * 64  # two layers a window
    assert loss.dtype == torch.float64 and float(loss) == pytest.approx(sum(terms) / 64, rel=1e-13)


def test_kept_denormals_break_l0_where_the_batchs_slope_overflows():
    """In training the slope is scaled by 1/(2B) (the mean over a batch's terms), so under
    `keep` log's backward, scale / exp(-s), overflows only past s = 88.7 + ln 2B: FFA0 at its
    final batch of 60000 survives margins to about 100, where `flush` breaks at 87.3."""
    b = 60000
    s = torch.tensor([87.0, 95.0, 99.0, 101.0, 103.0])
    _, kept = l0_terms_and_slopes("keep", s, 1 / (2 * b))
    _, flushed = l0_terms_and_slopes("flush", s, 1 / (2 * b))
    edge = math.log(torch.finfo(torch.float32).max) + math.log(2 * b)  # 100.4
    assert kept[s < edge].isfinite().all() and (kept[s > edge] == -math.inf).all()
    assert flushed[0].isfinite() and flushed[1:].isnan().all()


def test_flush_on_a_gpu_is_said_not_silently_ignored():
    """torch flushes denormals on the CPU only: a run that asks for it on CUDA is told that
    its kernels keep them; `keep`, and any CPU run, need no note."""
    exp = under(get("FF_best"), "text")
    assert "on the CPU only" in denormals_note(exp, torch.device("cuda"))
    assert denormals_note(exp, CPU) is None
    kept = dataclasses.replace(exp, denormals="keep")
    assert denormals_note(kept, torch.device("cuda")) is None


def test_keep_and_flush_train_the_same_where_no_value_is_denormal(synthetic):
    """Two epochs of adj_FFA1_2 (code reading) on the small synthetic set, whose margins stay
    far from where exp leaves the normal range: the two settings train to the same digits."""
    exp = dataclasses.replace(under(get("adj_FFA1_2"), "code"), epochs=2, batch_start=16,
                              batch_final=64, sizes=(784, 20, 10))  # fmt: skip
    runs = [train(dataclasses.replace(exp, denormals=mode), synthetic, CPU, seed=0)
            for mode in ("keep", "flush")]  # fmt: skip
    assert [r["loss"] for r in runs[0].records] == [r["loss"] for r in runs[1].records]
    assert runs[0].confusion == runs[1].confusion


@pytest.mark.parametrize(
    "name, reading",
    [("DNN_base", "code"), ("DNN_base", "text"), ("adj_FFA0_1", "code"), ("adj_FFA0_1", "text"),
     ("FF_best", "text"), ("FG_weight", "text"), ("FG_activity", "text"), ("FG_local", "text")],
)  # fmt: skip
def test_an_epoch_of_steps_never_waits_for_the_device(synthetic, monkeypatch, name, reading):
    """The loop's promise is one wait per epoch (in `train`): no step of any method reads a
    tensor back to the host. Every host read from ffbench's code during an epoch is counted
    (torch's own CPU optimizers read their step counters; on a GPU ASGD is `capturable`)."""
    reads, package = [], str(Path(ffbench.__file__).parent) + os.sep  # not a checkout's venv

    def counting(method):
        original = getattr(torch.Tensor, method)

        def wrapper(self, *args, **kwargs):
            if sys._getframe(1).f_code.co_filename.startswith(package):
                reads.append(f"{method} in {sys._getframe(1).f_code.co_name}")
            return original(self, *args, **kwargs)

        return wrapper

    exp = dataclasses.replace(under(get(name), reading), epochs=1)
    torch.manual_seed(0)
    task = methods.get(exp.method)(exp, synthetic, CPU)
    for method in ("item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, method, counting(method))
    monkeypatch.setattr(torch, "multinomial", lambda *a, **k: reads.append("multinomial"))
    task.train_epoch(None, 16, torch.Generator().manual_seed(0))
    assert reads == []


def test_data_on_another_device_is_one_clear_error(synthetic):
    exp = dataclasses.replace(get("DNN_base"), epochs=1)
    with pytest.raises(ValueError, match="data is on cpu, training on meta; load it with"):
        train(exp, synthetic, torch.device("meta"), seed=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name, reading", [("DNN_base", "code"), ("adj_FFA0_1", "code"),
                                           ("adj_FFA0_1", "text"), ("FF_best", "text"),
                                           ("FG_local", "text")])  # fmt: skip
def test_no_step_syncs_with_the_gpu(synthetic, name, reading):
    """On a GPU, torch itself raises at any synchronising call inside an epoch of steps."""
    cuda = torch.device("cuda")
    data = synthetic.to(cuda)
    exp = dataclasses.replace(under(get(name), reading), epochs=1)
    task = methods.get(exp.method)(exp, data, cuda)
    gen = torch.Generator(device=cuda).manual_seed(0)
    task.train_epoch(None, 16, gen)  # warm-up: lazy state, first kernels
    torch.cuda.set_sync_debug_mode("error")
    try:
        task.train_epoch(None, 16, gen)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_chunks_fit_the_cpus_cache_and_are_whole_batches_on_a_gpu(synthetic):
    assert FF(get("adj_FFA0_1"), synthetic, CPU).chunk == 2048
    assert Backprop(get("DNN_base"), synthetic, CPU).chunk == 4096
    assert chunk_size(torch.device("cuda"), 2048) >= 60000  # a whole batch of the notes
