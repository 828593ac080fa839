from __future__ import annotations

import numpy as np
import pytest
from scipy.io import savemat

from semclust.data.base import SourceError
from semclust.data.svhn import SVHNSource


def _fake(directory, split: str, labels: list[int]) -> np.ndarray:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(labels))
    x = rng.integers(0, 256, (32, 32, 3, len(labels)), dtype=np.uint8)
    y = np.array(labels, dtype=np.uint8).reshape(-1, 1)
    savemat(directory / f"{split}_32x32.mat", {"X": x, "y": y})
    return x


def test_images_and_label_ten_is_zero(tmp_path):
    x = _fake(tmp_path, "test", [10, 1, 9, 10])
    source = SVHNSource(tmp_path)
    assert source.ids == ["test/0", "test/1", "test/2", "test/3"]
    assert source.labels.tolist() == [0, 1, 9, 0]
    assert source.class_names == [str(d) for d in range(10)]
    for i in range(4):
        assert np.array_equal(np.asarray(source.load(i)), x[:, :, :, i])
    assert source.describe() == {"name": "svhn", "split": "test", "root": str(tmp_path), "n": 4}


def test_parent_directory_and_train_split(tmp_path):
    _fake(tmp_path / "svhn", "test", [1])
    x = _fake(tmp_path / "svhn", "train", [3, 4])
    source = SVHNSource(tmp_path, split="train")
    assert source.ids == ["train/0", "train/1"]
    assert np.array_equal(np.asarray(source.load(1)), x[:, :, :, 1])


def test_errors(tmp_path):
    _fake(tmp_path, "test", [0, 1])
    with pytest.raises(SourceError, match="outside 1..10"):
        SVHNSource(tmp_path)
    with pytest.raises(SourceError, match="train_32x32.mat"):
        SVHNSource(tmp_path, split="train")
    with pytest.raises(SourceError, match="valid: test, train, extra"):
        SVHNSource(tmp_path, split="all")
    (tmp_path / "test_32x32.mat").write_bytes(b"garbage")
    with pytest.raises(SourceError, match="cannot read"):
        SVHNSource(tmp_path)
    with pytest.raises(SourceError, match="looked in"):
        SVHNSource(tmp_path / "missing")
