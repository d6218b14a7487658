"""The method contract: a method says what it reads and honours exactly that; a new method is
one class registered from outside the package, and runs, resumes and tabulates like the others."""

import dataclasses
from enum import Enum

import pytest
import torch
import torch.nn.functional as F

import ffbench
from ffbench import methods
from ffbench.core.optimizers import make_optimizer
from ffbench.core.settings import HINTS, SETTINGS, Experiment
from ffbench.rows import REGISTRY
from ffbench.runner.local import LaunchError
from ffbench.runner.loop import train


def other_value(key: str, value):
    """A value of the setting `key` other than `value`, of its type."""
    if isinstance(value, Enum):
        return next(m for m in type(value) if m != value)
    if isinstance(value, bool):
        return not value
    if isinstance(value, float | int):
        return value * 2 + 1
    if value is None:  # an optional count (group_size): one that divides tiny's layers
        return 16
    raise AssertionError(f"no other value for {key}: {HINTS[key]}")


def tiny(exp: Experiment) -> Experiment:
    sizes = (784, 32, 10) if exp.method != "ff_best" else (784, 32, 32)
    return dataclasses.replace(exp, epochs=1, batch_start=16, batch_final=16, sizes=sizes,
                               validation=0, train_subset=None)  # fmt: skip


def trained(exp: Experiment, data) -> list[dict]:
    """The records of one training, less their timings."""
    records = train(exp, data, torch.device("cpu"), seed=0).records
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


ROWS_OF = {cls.name: next(e for e in REGISTRY.values() if e.method == cls.name)
           for cls in methods.METHODS.values()}  # fmt: skip


@pytest.mark.parametrize("method", sorted(ROWS_OF))
def test_a_setting_a_method_does_not_read_changes_nothing_it_trains(method, synthetic):
    """For every method and every setting outside its `reads`: one epoch with the setting
    changed is the same epoch to the last digit. So `reads` is what the method honours, and
    refusing the others (plan, derive) refuses only what would silently do nothing."""
    exp = tiny(ROWS_OF[method])
    cls = methods.get(method)
    unread = [k for k in SETTINGS if k not in cls.reads]
    assert unread, f"{method} reads every setting"
    base = trained(exp, synthetic)
    for key in unread:
        changed = dataclasses.replace(exp, **{key: other_value(key, getattr(exp, key))})
        if cls.check(changed):
            continue  # refused before any work: not silently ignored either
        assert trained(changed, synthetic) == base, f"{method} reads {key} but does not say so"


@pytest.mark.parametrize("method", sorted(ROWS_OF))
def test_each_setting_a_method_reads_is_in_the_schema(method):
    assert methods.get(method).reads <= set(SETTINGS)


class SoftmaxRegression(ffbench.Method):
    """The smallest method: a linear softmax classifier, trained with the loop's optimizer."""

    name = "test_softmax_regression"

    @classmethod
    def flops_per_sample(cls, exp):
        return 4 * exp.sizes[0] * exp.sizes[-1]

    def __init__(self, exp, data, device):
        self.exp, self.data = exp, data
        self.model = torch.nn.Linear(exp.sizes[0], exp.sizes[-1]).to(device)
        self.optimizers = [make_optimizer(exp, self.model.parameters(), device)]

    def train_epoch(self, phase, batch, gen):
        (opt,) = self.optimizers
        perm = torch.randperm(len(self.data.x_train), generator=gen)
        total = torch.zeros(())
        for s in range(0, len(perm), batch):
            idx = perm[s : s + batch]
            opt.zero_grad()
            loss = F.cross_entropy(self.model(self.data.x_train[idx]), self.data.y_train[idx])
            loss.backward()
            opt.step()
            total += loss.detach() * len(idx)
        return total / len(perm)

    def predict(self, x):
        return self.model(x).argmax(dim=1)


@pytest.fixture
def toy_row():
    """The toy method and a row of it, registered from this file only; taken back after."""
    ffbench.register_method(SoftmaxRegression)
    exp = ffbench.register(Experiment(
        name="test_toy", method=SoftmaxRegression.name, loss="cross_entropy", lr=0.5, epochs=4,
        batch_start=100, batch_final=100, lr_scaling="none", sizes=(784, 10), train_subset=2000,
    ))  # fmt: skip
    yield exp
    REGISTRY.pop(exp.name)
    methods.METHODS.pop(SoftmaxRegression.name)


def test_a_method_registered_from_outside_runs_resumes_and_tabulates(
    toy_row, tmp_path, mnist_root, monkeypatch
):
    whole = ffbench.run("test_toy", runs_dir=tmp_path / "a", checkpoint_every=1, progress=False)
    assert whole.status == "finished" and whole.test_accuracy > 0.7
    assert whole.path.parent == tmp_path / "a" / "text" / "test_toy"

    calls = []
    original = SoftmaxRegression.train_epoch

    def interrupted(self, phase, batch, gen):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, phase, batch, gen)

    monkeypatch.setattr(SoftmaxRegression, "train_epoch", interrupted)
    with pytest.raises(LaunchError, match="--resume"):
        ffbench.run("test_toy", runs_dir=tmp_path / "b", checkpoint_every=1, progress=False)
    monkeypatch.setattr(SoftmaxRegression, "train_epoch", original)
    resumed = ffbench.run("test_toy", runs_dir=tmp_path / "b", checkpoint_every=1, resume=True,
                          progress=False)  # fmt: skip
    assert resumed.test_accuracy == whole.test_accuracy
    assert list(resumed.records.loss) == list(whole.records.loss)

    row = ffbench.table(tmp_path / "b").set_index("experiment").loc["test_toy"]
    assert row.n == 1 and row.accuracy == pytest.approx(100 * whole.test_accuracy)
    with pytest.raises(ffbench.BadRequest, match="reads --theta .only ff and ff_best rows do"):
        ffbench.run("test_toy", runs_dir=tmp_path / "c", theta=1.0)


def test_a_row_of_an_unknown_method_is_refused_when_registered():
    with pytest.raises(ffbench.BadRequest, match="unknown method 'no_such'"):
        ffbench.register(Experiment(name="test_bad", method="no_such", loss="cross_entropy"))
    assert "test_bad" not in REGISTRY


def test_the_optimizer_a_row_is_asked_for_is_the_one_it_trains_with(synthetic):
    """`--set optimizer=sgd` on DNN_base trains with SGD; FF_best with Adam once its momentum
    (an SGD setting) is dropped."""
    dnn = dataclasses.replace(tiny(REGISTRY["DNN_base"]), optimizer="sgd", momentum=0.9)
    trainer = methods.get("backprop")(dnn, synthetic, torch.device("cpu"))
    (opt,) = trainer.optimizers
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9
    best = dataclasses.replace(tiny(REGISTRY["FF_best"]), optimizer="adam")
    assert "momentum=0.9 is read by sgd only" in methods.get("ff_best").check(best)
    best = dataclasses.replace(best, momentum=0.0)
    assert methods.get("ff_best").check(best) is None
    (opt,) = methods.get("ff_best")(best, synthetic, torch.device("cpu")).optimizers
    assert isinstance(opt, torch.optim.Adam)
    assert [g["weight_decay"] for g in opt.param_groups] == pytest.approx([3e-4, 3e-3])  # head x10
