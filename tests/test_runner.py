import dataclasses
import json
import os
import socket

import pytest
import torch

from ffbench.rows import get, overrides, under
from ffbench.runner import RunOptions
from ffbench.runner.store import (
    LOCK,
    RESULT,
    ResumeRefused,
    RunTaken,
    claim,
    execute,
    identity,
    load_checkpoint,
    read_json,
    run_dir,
    save_checkpoint,
    write_json,
)

CPU = torch.device("cpu")


def small(name="DNN_base", **kw):
    return dataclasses.replace(get(name), epochs=2, batch_final=16, **kw)


def run(exp, seed, data, runs_dir, on_epoch=None, **options):
    return execute(exp, seed, data, CPU, RunOptions(runs_dir, **options), overrides(exp),
                   on_epoch)  # fmt: skip


def test_run_directory_holds_config_metrics_env_and_result(synthetic, tmp_path):
    out = run(small(), 3, synthetic, tmp_path)
    assert out.path.parent == tmp_path / "text" / "DNN_base" and out.path.name.startswith("seed-3-")
    assert sorted(p.name for p in out.path.iterdir()) == [
        "config.json", "env.json", "metrics.csv", "result.json",
    ]  # fmt: skip
    config = json.loads((out.path / "config.json").read_text())
    assert config["epochs"] == 2 and config["seed"] == 3 and config["optimizer"] == "asgd"
    assert config["overrides"] == {"epochs": 2, "batch_final": 16}
    env = json.loads((out.path / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["threads"] >= 1 and env["host"]
    lines = (out.path / "metrics.csv").read_text().splitlines()
    assert lines[0] == "epoch,batch,rate,loss,seconds,test_accuracy" and len(lines) == 3
    result = json.loads((out.path / RESULT).read_text())
    for key in (
        "experiment",
        "seed",
        "status",
        "test_accuracy",
        "train_seconds",
        "epochs",
        "device",
    ):
        assert key in result
    assert result["status"] == "finished" and 0 <= result["test_accuracy"] <= 1
    assert not list(out.path.parent.glob(".*")), "no temporary files left behind"


def test_a_run_is_named_by_every_setting_its_reading_seed_and_device(tmp_path, synthetic):
    """`seed-<S>-<device>-<hash>`: the hash is of the run's whole configuration, so the name
    can be computed from its config.json alone, whatever the registry holds now."""
    exp = get("FFA1")
    path = run_dir(tmp_path, exp, 0)
    assert path.parent == tmp_path / "text" / "FFA1" and path.name.startswith("seed-0-cpu-")
    assert path.name.endswith(identity(exp.settings(), "text", 0, "cpu"))
    assert run_dir(tmp_path, under(exp, "code"), 0).parent == tmp_path / "code" / "FFA1"
    for other in (dataclasses.replace(exp, theta=1.0), under(exp, "code")):
        assert run_dir(tmp_path, other, 0).name != path.name
    assert run_dir(tmp_path, exp, 1).name.startswith("seed-1-cpu-")
    out = run(small(), 0, synthetic, tmp_path)
    config = read_json(out.path / "config.json")
    name = f"seed-0-cpu-{identity(config, config['reading'], config['seed'], 'cpu')}"
    assert out.path.name == name


def test_different_overrides_do_not_overwrite_each_other(synthetic, tmp_path):
    a = run(small(), 0, synthetic, tmp_path)
    b = run(small(lr=0.05), 0, synthetic, tmp_path)
    assert a.path != b.path and (a.path / RESULT).exists() and (b.path / RESULT).exists()


def test_finished_run_is_skipped_unless_forced(synthetic, tmp_path):
    first = run(small(), 0, synthetic, tmp_path)
    stamp = (first.path / RESULT).stat().st_mtime_ns
    again = run(small(), 0, synthetic, tmp_path)
    assert again.skipped and (first.path / RESULT).stat().st_mtime_ns == stamp
    forced = run(small(), 0, synthetic, tmp_path, force=True)
    assert not forced.skipped and (forced.path / RESULT).stat().st_mtime_ns != stamp
    assert [p.name for p in forced.path.parent.iterdir()] == [forced.path.name]


def test_a_run_held_by_a_live_process_is_not_taken(tmp_path):
    path = tmp_path / "text" / "FFA0" / "seed-0"
    path.mkdir(parents=True)
    write_json(path / LOCK, {"pid": os.getpid(), "host": socket.gethostname()})
    with pytest.raises(RunTaken, match="taken"):
        claim(path, force=False)
    assert (path / LOCK).exists()


def test_an_interrupted_run_is_started_again(synthetic, tmp_path):
    path = run_dir(tmp_path, small(), 0)
    path.mkdir(parents=True)
    write_json(path / LOCK, {"pid": 2**22 + 12345, "host": socket.gethostname()})  # no such pid
    (path / "metrics.csv").write_text("epoch\n1\n")
    out = run(small(), 0, synthetic, tmp_path)
    assert out.result["status"] == "finished" and not out.skipped
    assert not (path / LOCK).exists()


def test_a_diverged_run_records_its_epoch(synthetic, tmp_path):
    exp = small("FFA0", lr=1e4)
    out = run(exp, 0, synthetic, tmp_path)
    assert out.result["status"] == "diverged" and out.result["diverged_epoch"] == 1


def test_an_interrupt_leaves_no_result(synthetic, tmp_path):
    def interrupt(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(small(), 0, synthetic, tmp_path, on_epoch=interrupt)
    path = run_dir(tmp_path, small(), 0)
    assert path.is_dir() and not (path / RESULT).exists()
    assert json.loads((path / LOCK).read_text())["interrupted"]
    assert run(small(), 0, synthetic, tmp_path).result["status"] == "finished"


def test_a_gpu_run_is_another_run_than_the_cpu_one(tmp_path):
    exp = get("FFA1")
    assert run_dir(tmp_path, exp, 0, "cuda").name.startswith("seed-0-cuda-")
    assert run_dir(tmp_path, exp, 0, "cpu").name[11:] != run_dir(tmp_path, exp, 0, "cuda").name[12:]


def test_a_checkpoint_loads_its_generator_state_on_the_cpu(tmp_path):
    """Generator.set_state takes a CPU ByteTensor only: a checkpoint read with map_location=cuda
    could not be resumed on a GPU. Whatever the device, the state comes back on the CPU."""
    gen = torch.Generator().manual_seed(3)
    save_checkpoint(tmp_path / "c.pt", {"generator": gen.get_state(), "device_type": "cuda",
                                        "records": []})  # fmt: skip
    state = load_checkpoint(tmp_path / "c.pt", torch.device("cuda"))
    assert state["generator"].device.type == "cpu" and state["generator"].dtype == torch.uint8
    again = torch.Generator()
    again.set_state(state["generator"])
    assert torch.equal(torch.rand(3, generator=again), torch.rand(3, generator=gen))


def test_a_cpu_checkpoint_is_not_resumed_on_a_gpu(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"generator": torch.Generator().get_state(),
                                        "records": []})  # fmt: skip
    with pytest.raises(ResumeRefused, match="made on cpu; resume it with --device cpu"):
        load_checkpoint(tmp_path / "c.pt", torch.device("cuda"))


def test_a_run_stays_its_rows_run_only_while_the_row_keeps_its_settings(tmp_path, synthetic):
    """When a row changes (a rate chosen anew), its runs at the old rate keep their names: the
    row's name now leads to another directory, where it runs anew; asked for at the old rate, it
    finds the old run done."""
    exp = dataclasses.replace(get("DNN_base"), epochs=1, train_subset=64)
    old = run(exp, 0, synthetic, tmp_path)
    changed = dataclasses.replace(exp, lr=3e-4)
    new = run(changed, 0, synthetic, tmp_path)
    assert not new.skipped and new.path != old.path and (old.path / RESULT).exists()
    assert run(exp, 0, synthetic, tmp_path).skipped
