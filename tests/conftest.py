import pytest
import torch

from ffbench.core import data


@pytest.fixture(scope="session")
def mnist_root():
    """The real MNIST raw files (fetched and verified by `make test` before pytest runs)."""
    root = data.default_data_dir()
    data.fetch(root, log=lambda _: None)
    return root


@pytest.fixture(scope="session")
def mnist_small(mnist_root):
    """The first 2000 training images and the whole 10k test set, on the CPU."""
    return data.load(mnist_root, "cpu", train_subset=2000, log=lambda _: None)


@pytest.fixture
def synthetic():
    """A tiny random data set with MNIST's shapes, for tests of the plumbing, not of learning."""
    g = torch.Generator().manual_seed(0)
    return data.MNIST(
        torch.rand(64, 784, generator=g),
        torch.randint(0, 10, (64,), generator=g),
        torch.rand(32, 784, generator=g),
        torch.randint(0, 10, (32,), generator=g),
    )
