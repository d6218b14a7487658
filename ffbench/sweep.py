"""`ffbench sweep`: one job per (experiment, seed), submitted with submitit.

On a cluster the jobs go out as one SLURM job array; `--executor local` runs them as local
processes (what the tests use). Every job writes its run directory into the shared runs dir,
exactly as `ffbench run` would, so `ffbench table` aggregates them the same way.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ffbench import data as mnist
from ffbench.experiments import Experiment
from ffbench.runner import execute

if TYPE_CHECKING:
    import submitit


class ExecutorKind(str, Enum):
    local = "local"
    slurm = "slurm"


def run_job(exp: Experiment, seed: int, options: dict) -> dict:
    """One (experiment, seed) run inside a job; returns its result.json contents. `options`:
    runs_dir, data_dir, device, eval_every, force, resume, checkpoint_every."""
    device = options["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    data = mnist.load(options["data_dir"], dev, exp.train_subset)

    def log(record: dict) -> None:
        epoch = f"epoch {record['epoch']}/{exp.epochs}"
        print(f"{exp.name} seed {seed} {epoch} loss {record['loss']:.4f}", flush=True)

    out = execute(
        exp, seed, data, dev, options["runs_dir"], options["eval_every"], options["force"], log,
        resume=options["resume"], checkpoint_every=options["checkpoint_every"],
    )  # fmt: skip
    return out.result


def make_executor(
    kind: ExecutorKind,
    folder: Path,
    timeout_min: int,
    partition: str | None = None,
    gpus_per_node: int = 0,
    cpus_per_task: int | None = None,
) -> submitit.Executor:
    import submitit

    if kind == ExecutorKind.local:
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=timeout_min)
        return executor
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    params = {"timeout_min": timeout_min, "gpus_per_node": gpus_per_node, "name": "ffbench"}
    if partition:
        params["slurm_partition"] = partition
    if cpus_per_task:
        params["cpus_per_task"] = cpus_per_task
    executor.update_parameters(**params)
    return executor


def submit(
    executor: submitit.Executor, matrix: list[tuple[Experiment, int]], options: dict
) -> list[submitit.Job]:
    """Submit the whole matrix at once (a job array on SLURM)."""
    exps, seeds = [exp for exp, _ in matrix], [seed for _, seed in matrix]
    return executor.map_array(run_job, exps, seeds, [options] * len(matrix))
