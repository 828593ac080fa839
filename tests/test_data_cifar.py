from __future__ import annotations

import numpy as np
import pytest

from semclust.data.base import SourceError
from semclust.data.cifar import CIFAR10Source, CIFAR100Source

C10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _image(code: int) -> np.ndarray:
    """32x32x3 with R = row, G = column, B = code, so orientation and identity are checkable."""
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    return np.stack([rows, cols * 2, np.full_like(rows, code)], axis=-1).astype(np.uint8)


def _record(labels: list[int], code: int) -> bytes:
    # Binary layout: label byte(s), then the R, G and B planes, each row-major.
    return bytes(labels) + _image(code).transpose(2, 0, 1).tobytes()


def _fake_cifar10(directory, per_batch: int = 2, n_test: int = 3):
    directory.mkdir(parents=True)
    (directory / "batches.meta.txt").write_text("\n".join(C10_NAMES) + "\n\n")
    train_labels = []
    for batch in range(5):
        records = []
        for row in range(per_batch):
            k = batch * per_batch + row
            train_labels.append(k % 10)
            records.append(_record([k % 10], code=100 + k))
        (directory / f"data_batch_{batch + 1}.bin").write_bytes(b"".join(records))
    test_labels = [(9 - k) % 10 for k in range(n_test)]
    (directory / "test_batch.bin").write_bytes(
        b"".join(_record([label], code=200 + k) for k, label in enumerate(test_labels))
    )
    return train_labels, test_labels


def _fake_cifar100(directory):
    directory.mkdir(parents=True)
    (directory / "fine_label_names.txt").write_text("\n".join(f"fine{k}" for k in range(100)))
    (directory / "coarse_label_names.txt").write_text("\n".join(f"coarse{k}" for k in range(20)))
    train = [(3, 42), (19, 99)]
    test = [(0, 5), (7, 61), (12, 0)]
    (directory / "train.bin").write_bytes(b"".join(_record([c, f], code=100 + k) for k, (c, f) in enumerate(train)))
    (directory / "test.bin").write_bytes(b"".join(_record([c, f], code=200 + k) for k, (c, f) in enumerate(test)))
    return train, test


def test_cifar10_pixels_orientation_and_labels(tmp_path):
    train_labels, test_labels = _fake_cifar10(tmp_path / "cifar-10-batches-bin")
    test = CIFAR10Source(tmp_path / "cifar-10-batches-bin")
    assert test.ids == ["test/0", "test/1", "test/2"]
    assert test.labels.tolist() == test_labels
    assert test.class_names == C10_NAMES
    image = np.asarray(test.load(1))
    assert image.shape == (32, 32, 3)
    assert np.array_equal(image, _image(201))
    assert image[5, 9].tolist() == [5, 18, 201]  # row 5, column 9

    train = CIFAR10Source(tmp_path, split="train")  # parent directory is accepted too
    assert train.ids == [f"train/{k}" for k in range(10)]
    assert train.labels.tolist() == train_labels
    assert np.array_equal(np.asarray(train.load(7)), _image(107))  # batch 4, second record
    assert train.describe()["split"] == "train"


def test_cifar10_all_is_train_then_test(tmp_path):
    _fake_cifar10(tmp_path / "cifar-10-batches-bin")
    both = CIFAR10Source(tmp_path, split="all")
    assert len(both) == 13
    assert both.ids[9:11] == ["train/9", "test/0"]
    assert np.asarray(both.load(10))[0, 0, 2] == 200


def test_cifar10_errors(tmp_path):
    directory = tmp_path / "cifar-10-batches-bin"
    _fake_cifar10(directory)
    with pytest.raises(SourceError, match="valid: test, train, all"):
        CIFAR10Source(tmp_path, split="val")
    (directory / "data_batch_3.bin").unlink()
    with pytest.raises(SourceError, match="data_batch_3.bin"):
        CIFAR10Source(tmp_path, split="train")
    (directory / "test_batch.bin").write_bytes(b"\x00" * 3000)
    with pytest.raises(SourceError, match="3073-byte records"):
        CIFAR10Source(tmp_path)
    (directory / "test_batch.bin").write_bytes(_record([12], code=0))
    with pytest.raises(SourceError, match="label 12"):
        CIFAR10Source(tmp_path)
    with pytest.raises(SourceError, match="looked in"):
        CIFAR10Source(tmp_path / "elsewhere")


def test_cifar100_fine_and_coarse(tmp_path):
    train, test = _fake_cifar100(tmp_path / "cifar-100-binary")
    fine = CIFAR100Source(tmp_path)
    assert fine.name == "cifar100"
    assert fine.labels.tolist() == [f for _, f in test]
    assert len(fine.class_names) == 100 and fine.class_names[61] == "fine61"
    assert np.array_equal(np.asarray(fine.load(2)), _image(202))

    coarse = CIFAR100Source(tmp_path / "cifar-100-binary", split="train", label_set="coarse")
    assert coarse.name == "cifar20"
    assert coarse.labels.tolist() == [c for c, _ in train]
    assert coarse.class_names == [f"coarse{k}" for k in range(20)]
    assert coarse.ids == ["train/0", "train/1"]
    assert np.array_equal(np.asarray(coarse.load(1)), _image(101))
    assert coarse.describe()["label_set"] == "coarse"

    with pytest.raises(SourceError, match="fine' or 'coarse"):
        CIFAR100Source(tmp_path, label_set="medium")
