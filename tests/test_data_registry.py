from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from semclust.data.base import SourceError
from semclust.data.cifar import CIFAR10Source, CIFAR100Source
from semclust.data.digits import DigitsSource
from semclust.data.fashion_mnist import DEFAULT_FASHION_MNIST_ROOT, FashionMNISTSource
from semclust.data.folder import FolderSource
from semclust.data.registry import DATA_ROOT_ENV, list_datasets, open_source

fashion_installed = pytest.mark.skipif(
    not (DEFAULT_FASHION_MNIST_ROOT / "t10k-images-idx3-ubyte.gz").exists(),
    reason="Fashion-MNIST not installed at the default location",
)


@pytest.fixture(autouse=True)
def _no_env_root(monkeypatch):
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)


def _fake_cifar(root):
    directory = root / "cifar-10-batches-bin"
    directory.mkdir(parents=True)
    (directory / "batches.meta.txt").write_text("\n".join(f"c{k}" for k in range(10)))
    record = bytes([3]) + bytes(3072)
    (directory / "test_batch.bin").write_bytes(record * 2)
    for k in range(1, 6):
        (directory / f"data_batch_{k}.bin").write_bytes(record)
    hundred = root / "cifar-100-binary"
    hundred.mkdir()
    (hundred / "fine_label_names.txt").write_text("\n".join(f"f{k}" for k in range(100)))
    (hundred / "coarse_label_names.txt").write_text("\n".join(f"g{k}" for k in range(20)))
    (hundred / "test.bin").write_bytes(bytes([4, 77]) + bytes(3072))


def test_directory_spec_opens_a_folder(tmp_path):
    Image.new("RGB", (2, 2)).save(tmp_path / "a.png")
    (tmp_path / "dog").mkdir()
    Image.new("RGB", (2, 2)).save(tmp_path / "dog" / "b.png")
    source = open_source(str(tmp_path))
    assert isinstance(source, FolderSource)
    assert source.ids == ["a.png", "dog/b.png"]
    (tmp_path / "a.png").unlink()
    labelled = open_source(str(tmp_path), labels_from_folders=True)
    assert labelled.class_names == ["dog"]


def test_directory_without_images_is_a_source_error(tmp_path):
    (tmp_path / "features.npy").write_bytes(b"\x93NUMPY")
    with pytest.raises(SourceError, match="no image files"):
        open_source(str(tmp_path))


def test_bad_paths(tmp_path):
    with pytest.raises(SourceError, match="neither an existing directory"):
        open_source(str(tmp_path / "missing"))
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(SourceError, match="is a file"):
        open_source(str(tmp_path / "x.png"))


@fashion_installed
def test_fashion_mnist_defaults_to_test_split():
    source = open_source("dataset:fashion-mnist")
    assert isinstance(source, FashionMNISTSource)
    assert len(source) == 10_000
    assert open_source("dataset:Fashion-MNIST:train").ids[-1] == "train/59999"


@fashion_installed
def test_fashion_mnist_falls_back_to_system_copy_when_data_root_lacks_it(tmp_path):
    assert len(open_source("dataset:fashion-mnist", data_root=tmp_path)) == 10_000


def test_digits():
    source = open_source("dataset:digits")
    assert isinstance(source, DigitsSource) and len(source) == 1797


def test_unknown_dataset_and_split_list_valid_choices():
    with pytest.raises(SourceError, match="fashion-mnist, digits, cifar10, cifar100, cifar20"):
        open_source("dataset:imagenet")
    with pytest.raises(SourceError, match="valid splits: test, train, all"):
        open_source("dataset:fashion-mnist:val")
    with pytest.raises(SourceError, match="valid splits: all"):
        open_source("dataset:digits:test")


def test_root_datasets_need_a_root_and_say_where_they_looked(tmp_path):
    with pytest.raises(SourceError, match=DATA_ROOT_ENV):
        open_source("dataset:cifar10")
    with pytest.raises(SourceError, match=f"looked in {tmp_path}"):
        open_source("dataset:stl10", data_root=tmp_path)


def test_data_root_argument_and_environment(tmp_path, monkeypatch):
    _fake_cifar(tmp_path)
    source = open_source("dataset:cifar10", data_root=tmp_path)
    assert isinstance(source, CIFAR10Source) and len(source) == 2
    assert len(open_source("dataset:cifar10:train", data_root=str(tmp_path))) == 5
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    fine = open_source("dataset:cifar100")
    coarse = open_source("dataset:cifar20")
    assert isinstance(fine, CIFAR100Source) and fine.labels.tolist() == [77]
    assert coarse.labels.tolist() == [4] and len(coarse.class_names) == 20
    assert np.asarray(coarse.load(0)).shape == (32, 32, 3)


def test_list_datasets_reports_availability(tmp_path):
    rows = {row["name"]: row for row in list_datasets()}
    assert set(rows) == {"fashion-mnist", "digits", "cifar10", "cifar100", "cifar20", "stl10", "svhn", "emoji"}
    assert rows["digits"]["available"] is True
    assert rows["cifar10"]["available"] is False
    assert rows["stl10"]["splits"] == ["test", "train", "unlabeled", "all"]
    assert all(row["description"] for row in rows.values())
    assert rows["fashion-mnist"]["available"] == (DEFAULT_FASHION_MNIST_ROOT / "t10k-images-idx3-ubyte.gz").exists()

    _fake_cifar(tmp_path)
    rows = {row["name"]: row for row in list_datasets(tmp_path)}
    assert rows["cifar10"]["available"] is True
    assert rows["cifar10"]["location"] == str(tmp_path / "cifar-10-batches-bin")
    assert rows["cifar20"]["available"] is True
    assert rows["svhn"]["available"] is False
