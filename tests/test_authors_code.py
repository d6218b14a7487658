"""tests/authors_code.py, the instrument that runs the authors' own code under their torch: what
it hands their classes must be what their notebook did. (Running their code needs torch 1.13 and
their files, fetched; neither is here in `make test`, so the run itself is not a test.)"""

import math

import authors_code
import torch

from ffbench.core import data
from ffbench.rows.paper import PAPER


def test_it_reads_each_rows_settings_from_the_notes_table():
    for name in authors_code.LOSSTYPE:
        row, paper = authors_code.notes_row(name), PAPER[name]
        assert row == {"opt": "ASGD", "epochs": paper.epochs, "lr": paper.lr,
                       "start": paper.batch_start, "final": paper.batch_final}  # fmt: skip
    assert authors_code.LOSSTYPE["adj_FFA1_2"] == 1 and authors_code.LOSSTYPE["adj_FFA0_1"] == 0


def test_it_loads_mnist_as_their_keras_loader_did(mnist_small):
    """Raw 0..255 pixels as float32 (core/mnist.py), one-hot float32 labels, integer test labels:
    the same images and labels ffbench loads, unscaled."""
    train_x, train_y, test_x, test_labels = authors_code.mnist(
        data.raw_dir(data.default_data_dir())
    )
    assert train_x.shape == (60000, 28, 28) and train_x.dtype == torch.float32
    assert train_x.max() == 255 and torch.equal(train_y.sum(1), torch.ones(60000))
    assert torch.equal(train_x[:2000].reshape(2000, -1) / 255, mnist_small.x_train)
    assert torch.equal(train_y[:2000].argmax(1), mnist_small.y_train)
    assert torch.equal(test_x.reshape(10000, -1) / 255, mnist_small.x_test)
    assert torch.equal(test_labels, mnist_small.y_test) and not math.isnan(test_x.sum())
