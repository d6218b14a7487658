"""The authors' own FF code, run here as an instrument (issue 23): it separates "ffbench's code
reading differs from their code" from "their CPU run differs from their GPU run".

Their files are fetched, never committed or copied: `--core DIR` is a folder holding their
`FFA.py`, `FFALayer.py` and `dojo.py` as of akhilsadam/pho-ices-ml d04dcf3 (`git show
d04dcf3:core/FFA.py > DIR/FFA.py`, ...). This script is ours: it loads MNIST from the IDX files
`ffbench data` keeps, the way their loader hands it over (core/mnist.py: raw 0..255 pixels as
float32, one-hot float32 labels), and calls their classes as their notebook does (FFA/FFA.ipynb
cells 1, 5 and 7): `torch.manual_seed`, `dojo.dojo()` with ASGD at the row's rate and
`max_batch_size` at the row's Final, `FFA(device, losstype=...)`, `train(..., start_batch_size=)`.
The row's settings are read from the notes' table in ffbench/rows/paper.py (parsed, not imported:
ffbench needs a newer torch than theirs). Run it with their torch (1.13):

    /path/to/venv-torch1.13/bin/python tests/authors_code.py adj_FFA1_2 --core DIR --seed 0

It writes `runs/reference/authors/<row>/seed-<S>-torch<version>/` (metrics.csv: epoch, batch,
rate, loss; outcome.json: status, test accuracy, the test confusion matrix, training seconds;
not named result.json, because it is not an ffbench run and `ffbench table` must not read it as
one), each file written to a temporary name and moved into place; the report's `authors`
placeholders (ffbench/report/commentary.py) read it there.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import re
import sys
import time
from pathlib import Path

# torch 1.13's MKL takes a slow generic path on AMD CPUs (a 2048² matmul read 12 GFLOP/s here
# against 42 with this set, where torch 2.14 read 36); 5 makes it use its AVX2 kernels. Speed
# only: the kernels round differently, which a CPU run of theirs differs from their GPU run by
# anyway. outcome.json records it.
os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).parents[1]
# The adjusted rows their committed code can train: FFA.py's FFALayer is the adjusted L0 in the
# code's form, FFALayer1 the adjusted L1 (losstype 0 and 1); the plain rows' layer is not in the
# commit, and the Adam rows ran ASGD as committed (the report's readings section).
LOSSTYPE = {"adj_FFA0_0": 0, "adj_FFA0_1": 0, "adj_FFA1_0": 1, "adj_FFA1_1": 1, "adj_FFA1_2": 1}


def notes_row(name: str) -> dict:
    """The row's line of the notes' table in ffbench/rows/paper.py."""
    text = (ROOT / "ffbench" / "rows" / "paper.py").read_text()
    table = re.search(r'PAPER_TABLE = """\\\n(.*?)"""', text, re.S).group(1)
    for line in table.splitlines()[1:]:
        row, opt, epochs, rate, start, final, _, _ = line.split()
        if row == name:
            return {"opt": opt, "epochs": int(epochs), "lr": float(rate), "start": int(start),
                    "final": int(final)}  # fmt: skip
    raise SystemExit(f"error: no row {name} in the notes' table")


def idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not) as a numpy array of its shape."""
    data = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def mnist(raw: Path) -> tuple[torch.Tensor, ...]:
    def one(stem: str) -> np.ndarray:
        found = [p for p in (raw / stem, raw / f"{stem}.gz") if p.exists()]
        if not found:
            raise SystemExit(f"error: {raw / stem} is missing; fix: run ffbench data")
        return idx(found[0])

    def hot(labels: np.ndarray) -> torch.Tensor:
        y = np.zeros((len(labels), 10), np.float32)
        y[np.arange(len(labels)), labels] = 1.0
        return torch.from_numpy(y)

    x, y = one("train-images-idx3-ubyte"), one("train-labels-idx1-ubyte")
    tx, ty = one("t10k-images-idx3-ubyte"), one("t10k-labels-idx1-ubyte")
    as_float = lambda a: torch.from_numpy(a.astype(np.float32))  # noqa: E731
    return as_float(x), hot(y), as_float(tx), torch.from_numpy(ty.astype(np.int64))


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("row", choices=sorted(LOSSTYPE))
    parser.add_argument("--core", type=Path, required=True, help="their core/ folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=Path.home() / ".cache/ffbench/MNIST/raw")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "reference" / "authors")
    args = parser.parse_args()
    missing = [f for f in ("FFA.py", "FFALayer.py", "dojo.py") if not (args.core / f).exists()]
    if missing:
        raise SystemExit(f"error: {', '.join(missing)} not in {args.core}; fix: git show "
                         f"d04dcf3:core/<file> of akhilsadam/pho-ices-ml into it")  # fmt: skip
    row = notes_row(args.row)
    torch.set_num_threads(1)
    sys.path.insert(0, str(args.core))
    import dojo  # noqa: PLC0415  (theirs)
    from FFA import FFA  # noqa: PLC0415  (theirs)

    train_x, train_y, test_x, test_labels = mnist(args.data)
    torch.manual_seed(args.seed)
    device = torch.device("cpu")
    trainer = dojo.dojo()
    trainer.optimizer_lambda = lambda p: torch.optim.ASGD(p, lr=row["lr"])
    trainer.max_batch_size, trainer.epochs = row["final"], row["epochs"]
    net = FFA(device, losstype=LOSSTYPE[args.row])
    start = time.perf_counter()
    rates, sizes, _, _, losses = trainer.train(net, train_x, train_y,
                                               start_batch_size=row["start"])  # fmt: skip
    seconds = time.perf_counter() - start
    with torch.no_grad():
        predicted = net.forward(test_x).argmax(1)
    confusion = np.zeros((10, 10), np.int64)
    np.add.at(confusion, (test_labels.numpy(), predicted.numpy()), 1)
    diverged = len(losses) < row["epochs"] or any(math.isnan(v) for v in losses)
    out = args.out / args.row / f"seed-{args.seed}-torch{torch.__version__.split('+')[0]}"
    out.mkdir(parents=True, exist_ok=True)
    epochs = zip(sizes, rates, losses, strict=True)  # dojo appends the three each epoch
    lines = ["epoch,batch,rate,loss"] + [
        f"{e + 1},{b},{r[0]},{v}" for e, (b, r, v) in enumerate(epochs)
    ]
    write(out / "metrics.csv", "\n".join(lines) + "\n")
    result = {"row": args.row, "seed": args.seed, "torch": torch.__version__,
              "status": "diverged" if diverged else "finished", "epochs_run": len(losses),
              "test_accuracy": float(confusion.trace() / confusion.sum()),
              "confusion": confusion.tolist(), "train_seconds": seconds,
              "source": "akhilsadam/pho-ices-ml d04dcf3 core/FFA.py, FFALayer.py, dojo.py",
              "settings": row, "mkl_debug_cpu_type": os.environ["MKL_DEBUG_CPU_TYPE"],
              "cpu": cpu_name()}  # fmt: skip
    write(out / "outcome.json", json.dumps(result, indent=2) + "\n")
    print(f"{args.row} seed {args.seed}: {result['status']}, test accuracy "
          f"{result['test_accuracy']:.4f}, {seconds:.0f} s -> {out}")  # fmt: skip


if __name__ == "__main__":
    main()
