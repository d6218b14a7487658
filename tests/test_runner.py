import dataclasses
import json
import os
import socket

import pytest
import torch

from ffbench.experiment import get
from ffbench.runner import (
    LOCK,
    RESULT,
    ResumeRefused,
    RunDiffers,
    RunTaken,
    claim,
    execute,
    load_checkpoint,
    read_json,
    run_dir,
    save_checkpoint,
    short_hash,
    stray,
    write_json,
)

CPU = torch.device("cpu")


def small(name="DNN_base", **kw):
    return dataclasses.replace(get(name), epochs=2, batch_final=16, **kw)


def test_run_directory_holds_config_metrics_env_and_result(synthetic, tmp_path):
    out = execute(small(), 3, synthetic, CPU, tmp_path)
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


def test_registry_settings_use_the_plain_seed_directory(tmp_path):
    assert run_dir(tmp_path, get("FFA1"), 0) == tmp_path / "text" / "FFA1" / "seed-0"


def test_different_overrides_do_not_overwrite_each_other(synthetic, tmp_path):
    a = execute(small(), 0, synthetic, CPU, tmp_path)
    b = execute(small(lr=0.05), 0, synthetic, CPU, tmp_path)
    assert a.path != b.path and (a.path / RESULT).exists() and (b.path / RESULT).exists()


def test_finished_run_is_skipped_unless_forced(synthetic, tmp_path):
    first = execute(small(), 0, synthetic, CPU, tmp_path)
    stamp = (first.path / RESULT).stat().st_mtime_ns
    again = execute(small(), 0, synthetic, CPU, tmp_path)
    assert again.skipped and (first.path / RESULT).stat().st_mtime_ns == stamp
    forced = execute(small(), 0, synthetic, CPU, tmp_path, force=True)
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
    out = execute(small(), 0, synthetic, CPU, tmp_path)
    assert out.result["status"] == "finished" and not out.skipped
    assert not (path / LOCK).exists()


def test_a_diverged_run_records_its_epoch(synthetic, tmp_path):
    exp = small("FFA0", lr=1e4)
    out = execute(exp, 0, synthetic, CPU, tmp_path)
    assert out.result["status"] == "diverged" and out.result["diverged_epoch"] == 1


def test_an_interrupt_leaves_no_result(synthetic, tmp_path):
    def interrupt(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        execute(small(), 0, synthetic, CPU, tmp_path, on_epoch=interrupt)
    path = run_dir(tmp_path, small(), 0)
    assert path.is_dir() and not (path / RESULT).exists()
    assert json.loads((path / LOCK).read_text())["interrupted"]
    assert execute(small(), 0, synthetic, CPU, tmp_path).result["status"] == "finished"


def test_a_gpu_run_is_another_run_than_the_cpu_one(tmp_path):
    exp = get("FFA1")
    assert run_dir(tmp_path, exp, 0, "cuda") == tmp_path / "text" / "FFA1" / "seed-0-cuda"
    assert run_dir(tmp_path, exp, 0, "cpu") != run_dir(tmp_path, exp, 0, "cuda")


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


def test_a_finished_run_made_with_other_settings_moves_to_its_own_name(tmp_path, synthetic):
    """A run directory's name holds overrides, not settings: after a row's rate is chosen anew,
    its old run sits where the new one goes. The old run moves to the name its settings have now
    (the hash of lr=0.0003, as `--lr 0.0003` would name it), untouched; the row runs anew."""
    exp = dataclasses.replace(get("DNN_base"), epochs=1, train_subset=64)
    path = run_dir(tmp_path, exp, 0)
    path.mkdir(parents=True)
    write_json(path / "config.json", exp.settings() | {"lr": 3e-4})
    write_json(path / RESULT, {"experiment": "DNN_base", "status": "finished",
                               "test_accuracy": 0.9})  # fmt: skip
    out = execute(exp, 0, synthetic, CPU, tmp_path)
    assert not out.skipped and read_json(path / "config.json")["lr"] == exp.lr
    old = path.with_name(f"seed-0-{short_hash({'epochs': 1, 'lr': 3e-4, 'train_subset': 64})}")
    assert read_json(old / RESULT)["test_accuracy"] == 0.9
    assert read_json(old / "config.json")["lr"] == 3e-4


def finished(path, settings, accuracy=0.9):
    path.mkdir(parents=True)
    write_json(path / "config.json", settings)
    write_json(path / RESULT, {"experiment": "DNN_base", "status": "finished",
                               "test_accuracy": accuracy})  # fmt: skip


def test_a_run_made_at_the_rate_its_row_now_has_moves_in_and_is_not_run_again(tmp_path, synthetic):
    """The other half of a rate chosen anew: the run made at the new rate while it was an
    override (`--lr`, so `seed-0-<hash of lr>`) is the row's run now. It moves to the row's name
    and the row is not trained again; the run at the old rate moves out to its own hash. A run of
    another seed, or on another device, with the same settings stays where it is."""
    exp = dataclasses.replace(get("DNN_base"), epochs=1, train_subset=64)
    path = run_dir(tmp_path, exp, 0)
    was_override = path.with_name(f"seed-0-{short_hash({'lr': exp.lr})}")
    finished(path, exp.settings() | {"lr": 3e-4}, accuracy=0.8)
    finished(was_override, exp.settings(), accuracy=0.9)
    for seed, device in ((1, "cpu"), (0, "cuda")):
        other = run_dir(tmp_path, exp, seed, device, overrides={"lr": exp.lr})
        finished(other, exp.settings())
    out = execute(exp, 0, synthetic, CPU, tmp_path)
    assert out.skipped and read_json(path / RESULT)["test_accuracy"] == 0.9
    old = path.with_name(f"seed-0-{short_hash({'epochs': 1, 'lr': 3e-4, 'train_subset': 64})}")
    assert read_json(old / RESULT)["test_accuracy"] == 0.8
    lr = short_hash({"lr": exp.lr})
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(
        [path.name, old.name, f"seed-1-{lr}", f"seed-0-cuda-{lr}"]
    )
    assert stray(tmp_path, exp, 1, "cpu") == path.with_name(f"seed-1-{lr}")


def test_a_changed_run_whose_own_name_is_taken_is_refused(tmp_path, synthetic):
    """Neither run is lost: the row's run is refused, naming the setting."""
    exp = get("DNN_base")  # never trained here: the last call finds the row's run done
    path, other = run_dir(tmp_path, exp, 0), run_dir(tmp_path, exp, 0, overrides={"lr": 3e-4})
    for p in (path, other):
        p.mkdir(parents=True)
        write_json(p / "config.json", exp.settings() | {"lr": 3e-4})
        write_json(p / RESULT, {"experiment": "DNN_base", "status": "finished"})
    with pytest.raises(RunDiffers, match=r"made with lr=0.0003, not DNN_base's settings now"):
        execute(exp, 0, synthetic, CPU, tmp_path)
    assert read_json(path / "config.json")["lr"] == 3e-4
    write_json(path / "config.json", exp.settings())  # made with the row's settings: done
    assert execute(exp, 0, synthetic, CPU, tmp_path).skipped
