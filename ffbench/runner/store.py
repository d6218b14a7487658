"""Run directories: `RUNS/<reading>/<experiment>/seed-<S>-<device>-<hash>/`, one per run, named
by what the run is: the hash is of every setting, the reading, the seed and the device type (as
sacred and DomainBed name runs by their whole configuration), so a run's name never depends on
what the registry holds today.

`os.mkdir` is the lock (as sacred does): whoever creates the directory owns the run. Every file is
written to a temporary name and moved into place with `os.replace` (as timm does); `result.json`
comes last, so a run directory without one is still running or was interrupted.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import platform
import shutil
import socket
import subprocess
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ffbench._version import __version__
from ffbench.core.data import MNIST, digest, validation_indices
from ffbench.core.settings import SETTINGS, Experiment
from ffbench.methods import Method
from ffbench.runner import RunOptions
from ffbench.runner.loop import train

RESULT = "result.json"
LOCK = "lock"
CHECKPOINT = "checkpoint.pt"
FRESH_DIR_S = 60  # a lock-less directory younger than this is still being set up by its owner


class RunTaken(Exception):
    """Another live process owns this run directory."""


class ResumeRefused(Exception):
    """A checkpoint cannot be resumed here; the message says how to go on."""


def identity(settings: dict, reading: str, seed: int, device_type: str) -> str:
    """The hash that names a run: of every setting (`Experiment.settings()`, or a run's
    config.json), the reading, the seed and the device type."""
    what = {k: settings[k] for k in SETTINGS} | {"reading": reading, "seed": seed,
                                                 "device": device_type}  # fmt: skip
    return hashlib.sha1(json.dumps(what, sort_keys=True).encode()).hexdigest()[:8]


def run_dir(runs_dir: Path, exp: Experiment, seed: int, device_type: str = "cpu") -> Path:
    """Where a run lives: `RUNS/<reading>/<experiment>/seed-<S>-<device type>-<identity>`."""
    name = f"seed-{seed}-{device_type}-{identity(exp.settings(), exp.reading, seed, device_type)}"
    return Path(runs_dir) / exp.reading / exp.name / name


def load_checkpoint(path: Path, device: torch.device) -> dict:
    """A run's checkpoint, read onto the CPU: the generator state must stay a CPU ByteTensor
    (`Generator.set_state` refuses one on the GPU); `load_state_dict` moves the weights and the
    optimizer states to where the task's parameters are. One made on another device type is
    refused: its optimizer states (ASGD's `capturable`) and kernels belong to that device."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    made_on = state.get("device_type", "cpu")
    if made_on != device.type:
        raise ResumeRefused(
            f"{path} was made on {made_on}; resume it with --device {made_on}, or run it again "
            f"on {device.type} without --resume"
        )
    return state


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, obj: dict) -> None:
    write_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


def read_json(path: Path) -> dict:
    with open(path) as f:
        return json.load(f)


def write_metrics(path: Path, records: list[dict]) -> None:
    out = io.StringIO()
    columns = list(dict.fromkeys(k for r in records for k in r))  # a resumed run's may grow
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v
                         for k, v in r.items()})  # fmt: skip
    write_atomic(path, out.getvalue())


def check_writable(runs_dir: Path) -> None:
    """Fail before any training if `runs_dir` cannot hold run directories."""
    runs_dir = Path(runs_dir)
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        probe = runs_dir / f".probe-{os.getpid()}"
        probe.mkdir()
        probe.rmdir()
    except OSError as e:
        raise OSError(f"runs dir {runs_dir} is not writable ({e.strerror}); fix: pass "
                      "--runs-dir") from e  # fmt: skip


def _holder(path: Path) -> dict | None:
    """The lock of a run directory if its owner is a live process on this host, else None."""
    try:
        lock = read_json(path / LOCK)
    except (OSError, ValueError):
        if (path / RESULT).exists():
            return None  # finished
        young = time.time() - path.stat().st_mtime < FRESH_DIR_S
        return {"pid": "?", "host": "?"} if young else None
    if lock.get("interrupted"):
        return None
    if lock.get("host") != socket.gethostname():
        return lock  # cannot tell whether a process on another host is alive: assume it is
    try:
        os.kill(int(lock["pid"]), 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return lock


def claim(path: Path, force: bool, resume: bool = False) -> tuple[bool, Path | None]:
    """Own `path` by creating it. Returns (claimed, aside): claimed is False when a finished run
    is there and not `force`; aside is where a replaced (finished or interrupted) run was moved.
    With `resume`, an interrupted run that has a checkpoint is taken over in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = None
    try:
        os.mkdir(path)
    except FileExistsError:
        finished = (path / RESULT).exists()
        if finished and not force:
            return False, None
        if (holder := _holder(path)) is not None:
            raise RunTaken(
                f"run {path} is taken by pid {holder['pid']} on {holder['host']}; wait for it, "
                f"pick another --seed, or if that process is gone delete {path / LOCK}"
            ) from None
        if resume and not finished and (path / CHECKPOINT).exists():
            write_json(path / LOCK, {"pid": os.getpid(), "host": socket.gethostname()})
            return True, None
        aside = path.with_name(f".{path.name}.replaced-{time.time_ns()}")
        os.rename(path, aside)
        try:
            os.mkdir(path)
        except FileExistsError:  # another process took it in between; the old run stays aside
            raise RunTaken(f"run {path} was taken by another process; pick another "
                           "--seed") from None  # fmt: skip
    write_json(path / LOCK, {"pid": os.getpid(), "host": socket.gethostname()})
    return True, aside


def run_state(path: Path) -> str:
    """What `--dry-run` says of a run directory: its status, running, interrupted or missing."""
    if not path.is_dir():
        return "missing"
    if (path / RESULT).exists():
        try:
            return read_json(path / RESULT)["status"]
        except (OSError, ValueError, KeyError, TypeError):
            return "unreadable result.json"
    if (holder := _holder(path)) is not None:
        return f"running (pid {holder['pid']} on {holder['host']})"
    try:
        epochs = len((path / "metrics.csv").read_text().splitlines()) - 1
    except OSError:
        epochs = 0
    resumable = ", resumable" if (path / CHECKPOINT).exists() else ""
    return f"interrupted after epoch {max(epochs, 0)}{resumable}"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def environment(device: torch.device) -> dict:
    sha = _git("rev-parse", "HEAD")
    return {"ffbench": __version__, "git_sha": sha,
            "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")) if sha
            else None, "torch": torch.__version__,
            "cuda": torch.version.cuda if device.type == "cuda" else None,
            "python": platform.python_version(), "device": str(device),
            "device_name": device_name(device), "threads": torch.get_num_threads(),
            "host": socket.gethostname(), "platform": platform.platform()}  # fmt: skip


@dataclass
class Outcome:
    path: Path
    result: dict
    skipped: bool = False


def record_failure(runs_dir: Path, exp: Experiment, seed: int, device: torch.device, error,
                   overrides: dict) -> Outcome:  # fmt: skip
    """A run that could not start (no GPU in the job, no data): a failed result.json in its run
    directory saying why, unless a finished run is already there."""
    path = run_dir(runs_dir, exp, seed, device.type)
    path.mkdir(parents=True, exist_ok=True)
    if (path / RESULT).exists():
        return Outcome(path, read_json(path / RESULT), skipped=True)
    result = failed_result(exp, seed, device, f"could not start: {error}")
    write_json(path / RESULT, result | {"overrides": overrides})
    return Outcome(path, result)


def failed_result(exp: Experiment, seed: int, device: torch.device, error: str) -> dict:
    return {"experiment": exp.name, "reading": exp.reading, "seed": seed, "device": str(device),
            "status": "failed", "test_accuracy": math.nan, "error": error}  # fmt: skip


def save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def mark_interrupted(path: Path) -> None:
    write_json(path / LOCK, {"pid": os.getpid(), "host": socket.gethostname(),
                             "interrupted": True})  # fmt: skip


def execute(
    exp: Experiment,
    seed: int,
    data: MNIST,
    device: torch.device,
    options: RunOptions,
    overrides: dict,
    on_epoch: Callable[[dict], None] | None = None,
    method: type[Method] | None = None,
) -> Outcome:
    """Run `exp` with `seed` into its run directory under `options.runs_dir`, or return the
    finished result already there. A checkpoint is kept every `options.checkpoint_every` epochs;
    `options.resume` continues from it. `overrides` (its settings against its row, computed where
    the registry is) are recorded for the table."""
    path = run_dir(options.runs_dir, exp, seed, device.type)
    claimed, aside = claim(path, options.force, options.resume)
    if not claimed:
        return Outcome(path, read_json(path / RESULT), skipped=True)
    base = {"experiment": exp.name, "reading": exp.reading, "seed": seed, "device": str(device)}
    state = None
    if options.resume and (path / CHECKPOINT).exists():
        try:
            state = load_checkpoint(path / CHECKPOINT, device)
        except ResumeRefused:
            mark_interrupted(path)
            raise
    records: list[dict] = list(state["records"]) if state else []

    def record_epoch(record: dict) -> None:
        records.append(record)
        write_metrics(path / "metrics.csv", records)
        if on_epoch:
            on_epoch(record)

    try:
        config = {**exp.config(), "seed": seed, "device": str(device),
                  "eval_every": options.eval_every, "overrides": overrides}  # fmt: skip
        if exp.validation:  # which images were held out: the rule, and their fingerprint
            held = validation_indices(len(data.x_train), exp.validation, seed)
            config["validation_split"] = {
                "held_out": exp.validation, "of": len(data.x_train), "seed": seed,
                "rule": "ffbench.core.data.validation_indices", "indices_sha1": digest(held),
            }  # fmt: skip
        write_json(path / "config.json", config)
        write_json(path / "env.json", environment(device))
        trained = train(
            exp, data, device, seed, options.eval_every, on_epoch=record_epoch,
            checkpoint=lambda st: save_checkpoint(path / CHECKPOINT,
                                                  {**st, "device_type": device.type}),
            checkpoint_every=options.checkpoint_every, resume=state, method=method,
        )  # fmt: skip
        result = {**base, "status": trained.status, "test_accuracy": trained.test_accuracy,
                  "train_seconds": trained.train_seconds, "epochs": exp.epochs,
                  "epochs_run": trained.epochs_run, "diverged_epoch": trained.diverged_epoch,
                  "resumed_from_epoch": state["epoch"] if state else None}  # fmt: skip
        if exp.validation:
            result["validation_accuracy"] = trained.validation_accuracy
        if trained.readouts:  # a second prediction of the same run (FF_best's head)
            result["readouts"] = trained.readouts
        if trained.confusion is not None:  # the test set's, [true label][predicted label]
            result["confusion"] = trained.confusion
    except KeyboardInterrupt:
        if aside is not None:  # give back the run this one was replacing
            shutil.rmtree(path)
            os.rename(aside, path)
        else:  # no result.json: the run shows as interrupted, free to be resumed or run again
            mark_interrupted(path)
        raise
    except Exception as e:
        result = failed_result(exp, seed, device, repr(e))
        result["traceback"] = traceback.format_exc()
    result["overrides"] = overrides
    write_json(path / RESULT, result)
    (path / LOCK).unlink(missing_ok=True)
    (path / CHECKPOINT).unlink(missing_ok=True)  # results only: no weights are kept
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)
    return Outcome(path, result)
