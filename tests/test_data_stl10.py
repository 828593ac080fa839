from __future__ import annotations

import pickle

import numpy as np
import pytest

from semclust.data.base import SourceError
from semclust.data.records import RecordFile
from semclust.data.stl10 import STL10Source

NAMES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def _image(code: int) -> np.ndarray:
    """96x96x3 with R = row, G = column, B = code."""
    rows, cols = np.meshgrid(np.arange(96), np.arange(96), indexing="ij")
    return np.stack([rows, cols + 100, np.full_like(rows, code)], axis=-1).astype(np.uint8)


def _column_major(image: np.ndarray) -> bytes:
    # MATLAB order for a 96x96x3 array: row fastest, then column, then channel.
    return image.transpose(2, 1, 0).tobytes()


def _fake(directory, stored_labels: dict[str, list[int]], n_unlabeled: int = 0):
    directory.mkdir(parents=True)
    (directory / "class_names.txt").write_text("\n".join(NAMES) + "\n")
    for split, labels in stored_labels.items():
        base = 0 if split == "train" else 50
        images = b"".join(_column_major(_image(base + k)) for k in range(len(labels)))
        (directory / f"{split}_X.bin").write_bytes(images)
        (directory / f"{split}_y.bin").write_bytes(bytes(labels))
    if n_unlabeled:
        images = b"".join(_column_major(_image(200 + k)) for k in range(n_unlabeled))
        (directory / "unlabeled_X.bin").write_bytes(images)


def test_pixels_orientation_and_shifted_labels(tmp_path):
    _fake(tmp_path / "stl10_binary", {"test": [1, 10, 4], "train": [2, 2]})
    test = STL10Source(tmp_path)
    assert test.ids == ["test/0", "test/1", "test/2"]
    assert test.labels.tolist() == [0, 9, 3]
    assert test.class_names == NAMES
    image = np.asarray(test.load(1))
    assert image.shape == (96, 96, 3)
    assert image[7, 40].tolist() == [7, 140, 51]  # row 7, column 40: not transposed
    assert np.array_equal(image, _image(51))

    both = STL10Source(tmp_path / "stl10_binary", split="all")
    assert both.ids == ["train/0", "train/1", "test/0", "test/1", "test/2"]
    assert both.labels.tolist() == [1, 1, 0, 9, 3]


def test_unlabeled_split_is_memory_mapped_and_label_free(tmp_path):
    _fake(tmp_path / "stl10_binary", {"test": [1]}, n_unlabeled=4)
    source = STL10Source(tmp_path, split="unlabeled")
    assert len(source) == 4
    assert source.labels is None and source.class_names is None
    assert isinstance(source._files[0], RecordFile)
    assert isinstance(source._files[0].records, np.memmap)
    assert np.array_equal(np.asarray(source.load(3)), _image(203))
    assert len(pickle.dumps(source)) < 4 * 96 * 96 * 3  # workers reopen the file


def test_errors(tmp_path):
    directory = tmp_path / "stl10_binary"
    _fake(directory, {"test": [1, 11]})
    with pytest.raises(SourceError, match="outside 1..10"):
        STL10Source(tmp_path)
    (directory / "test_y.bin").write_bytes(bytes([1]))
    with pytest.raises(SourceError, match="1 labels for 2 images"):
        STL10Source(tmp_path)
    with pytest.raises(SourceError, match="train_X.bin"):
        STL10Source(tmp_path, split="train")
    with pytest.raises(SourceError, match="unlabeled, all"):
        STL10Source(tmp_path, split="extra")
    with pytest.raises(SourceError, match="looked in"):
        STL10Source(tmp_path / "nothing")
