import shutil

import pytest

from ffbench.core import data


@pytest.fixture
def copied_root(mnist_root, tmp_path):
    for name in data.RAW_MD5:
        dest = data.raw_dir(tmp_path) / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data.raw_dir(mnist_root) / name, dest)
    return tmp_path


def test_verified_files_are_used_as_they_are(copied_root):
    assert data.check_raw_files(copied_root) == []
    assert data.fetch(copied_root, log=lambda _: None) == data.raw_dir(copied_root)


def test_a_corrupted_file_is_refused_naming_it_and_the_fix(copied_root):
    path = data.raw_dir(copied_root) / "t10k-labels-idx1-ubyte"
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(data.DataError) as e:
        data.fetch(copied_root, log=lambda _: None)
    assert "t10k-labels-idx1-ubyte" in str(e.value) and "--refetch" in str(e.value)


def test_a_truncated_file_is_refused(copied_root):
    path = data.raw_dir(copied_root) / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(data.DataError, match="train-labels-idx1-ubyte"):
        data.check_raw_files(copied_root)


def test_missing_files_are_listed(copied_root):
    (data.raw_dir(copied_root) / "t10k-images-idx3-ubyte").unlink()
    assert data.check_raw_files(copied_root) == ["t10k-images-idx3-ubyte"]


def test_load_gives_flat_unit_range_tensors(mnist_small):
    assert mnist_small.x_train.shape == (2000, 784) and mnist_small.x_test.shape == (10000, 784)
    assert mnist_small.x_train.min() >= 0 and mnist_small.x_train.max() <= 1
    assert set(mnist_small.y_test.unique().tolist()) == set(range(10))


def test_standard_pixels_have_mean_0_and_std_1_over_the_training_images(mnist_root):
    x = data.load(mnist_root, "cpu", log=lambda _: None).x_train
    z = data.pixel_values(x, data.Pixels.standard)
    assert abs(z.mean().item()) < 1e-3 and abs(z.std().item() - 1) < 1e-3
    assert data.pixel_values(x[:5], data.Pixels.raw).max().item() == 255.0
    assert data.pixel_values(x, data.Pixels.unit) is x


def test_refetch_replaces_a_corrupted_file(copied_root):
    path = data.raw_dir(copied_root) / "t10k-labels-idx1-ubyte"
    path.write_bytes(b"not mnist")
    data.fetch(copied_root, refetch=True, log=lambda _: None)
    assert data.check_raw_files(copied_root) == []
