from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from semclust.data.base import SourceError
from semclust.data.fashion_mnist import (
    DEFAULT_FASHION_MNIST_ROOT,
    FASHION_MNIST_CLASSES,
    FashionMNISTSource,
)
from semclust.data.idx import read_idx

real_data = pytest.mark.skipif(
    not (DEFAULT_FASHION_MNIST_ROOT / "t10k-images-idx3-ubyte.gz").exists(),
    reason="Fashion-MNIST not installed at the default location",
)


def _write_idx(path, array: np.ndarray, compress: bool) -> None:
    data = bytes([0, 0, 8, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    data += array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def _fake(directory, n_test: int = 3, n_train: int = 4, compress: bool = False, n_labels=None):
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    made = {}
    suffix = ".gz" if compress else ""
    for stem, n in (("t10k", n_test), ("train", n_train)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        _write_idx(directory / f"{stem}-images-idx3-ubyte{suffix}", images, compress)
        count = n if n_labels is None else n_labels
        _write_idx(directory / f"{stem}-labels-idx1-ubyte{suffix}", labels[:count], compress)
        made[stem] = (images, labels)
    return made


@real_data
def test_real_test_split():
    source = FashionMNISTSource()
    assert len(source) == 10_000
    assert source.ids[0] == "test/0" and source.ids[-1] == "test/9999"
    assert source.class_names == FASHION_MNIST_CLASSES
    assert np.bincount(source.labels).tolist() == [1000] * 10
    raw = read_idx(DEFAULT_FASHION_MNIST_ROOT / "t10k-images-idx3-ubyte.gz")
    image = np.asarray(source.load(123))
    assert image.shape == (28, 28)
    assert np.array_equal(image, raw[123])
    assert source.describe()["split"] == "test"


@real_data
def test_real_all_split_is_train_then_test():
    source = FashionMNISTSource(split="all")
    assert len(source) == 70_000
    assert source.ids[59_999] == "train/59999" and source.ids[60_000] == "test/0"
    assert np.bincount(source.labels).tolist() == [7000] * 10


def test_user_directory_plain_files(tmp_path):
    made = _fake(tmp_path)
    test = FashionMNISTSource(root=tmp_path)
    assert test.ids == ["test/0", "test/1", "test/2"]
    assert np.array_equal(np.asarray(test.load(2)), made["t10k"][0][2])
    train = FashionMNISTSource("train", tmp_path)
    assert train.labels.tolist() == [0, 1, 2, 3]
    both = FashionMNISTSource("all", tmp_path)
    assert both.ids == ["train/0", "train/1", "train/2", "train/3", "test/0", "test/1", "test/2"]
    assert np.array_equal(np.asarray(both.load(4)), made["t10k"][0][0])


def test_parent_directory_with_standard_subfolder(tmp_path):
    _fake(tmp_path / "fashion-mnist", compress=True)
    source = FashionMNISTSource(root=tmp_path)
    assert len(source) == 3
    assert source.root == tmp_path / "fashion-mnist"


def test_mismatched_counts_and_bad_split(tmp_path):
    _fake(tmp_path, n_labels=2)
    with pytest.raises(SourceError, match="3 images.*2 labels"):
        FashionMNISTSource(root=tmp_path)
    with pytest.raises(SourceError, match="valid: test, train, all"):
        FashionMNISTSource("validation", tmp_path)


def test_missing_directory_says_where_it_looked(tmp_path):
    with pytest.raises(SourceError, match=str(tmp_path)):
        FashionMNISTSource(root=tmp_path)


def test_missing_train_file_is_named(tmp_path):
    _fake(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(SourceError, match="train-labels-idx1-ubyte"):
        FashionMNISTSource("train", tmp_path)
