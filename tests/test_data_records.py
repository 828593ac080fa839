from __future__ import annotations

import pickle
from functools import partial

import numpy as np
import pytest

from semclust.data.base import SourceError
from semclust.data.records import RecordFile, RecordImageSource


def _constant_image(record: np.ndarray, size: int) -> np.ndarray:
    return np.full((size, size, 3), record[0], dtype=np.uint8)


def _file(path, values: list[int], record_size: int = 4) -> RecordFile:
    path.write_bytes(bytes(v for v in values for _ in range(record_size)))
    return RecordFile(path, record_size, "test")


def test_record_file_size_is_validated(tmp_path):
    path = tmp_path / "odd.bin"
    path.write_bytes(b"\x00" * 10)
    with pytest.raises(SourceError, match="odd.bin is 10 bytes"):
        RecordFile(path, 4, "test")
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match="empty.bin"):
        RecordFile(empty, 4, "test")
    with pytest.raises(SourceError, match="absent.bin"):
        RecordFile(tmp_path / "absent.bin", 4, "test")


def test_records_are_memory_mapped_and_not_pickled(tmp_path):
    record_file = _file(tmp_path / "r.bin", [1, 2, 3], record_size=1000)
    assert len(record_file) == 3
    assert isinstance(record_file.records, np.memmap)
    assert record_file.records[2, 999] == 3
    blob = pickle.dumps(record_file)
    assert len(blob) < 1000  # the data stayed in the file
    assert pickle.loads(blob).records[1, 0] == 2


def test_ids_continue_across_files_sharing_a_prefix(tmp_path):
    parts = [
        ("train/", _file(tmp_path / "a.bin", [10, 11])),
        ("train/", _file(tmp_path / "b.bin", [12])),
        ("test/", _file(tmp_path / "c.bin", [20, 21])),
    ]
    source = RecordImageSource(
        parts,
        partial(_constant_image, size=2),
        labels=np.array([0, 1, 0, 1, 1]),
        class_names=["x", "y"],
        name="demo",
        info={"split": "all"},
    )
    assert source.ids == ["train/0", "train/1", "train/2", "test/0", "test/1"]
    assert [source.load(i).getpixel((0, 0))[0] for i in range(5)] == [10, 11, 12, 20, 21]
    assert source.load(-1).getpixel((1, 1)) == (21, 21, 21)
    with pytest.raises(IndexError):
        source.load(5)
    assert source.describe() == {"name": "demo", "split": "all", "n": 5}
    assert pickle.loads(pickle.dumps(source)).load(2).getpixel((0, 0)) == (12, 12, 12)


def test_label_count_must_match(tmp_path):
    with pytest.raises(SourceError, match="1 labels for 2 images"):
        RecordImageSource(
            [("x/", _file(tmp_path / "a.bin", [1, 2]))],
            partial(_constant_image, size=1),
            labels=np.array([0]),
            class_names=None,
            name="demo",
        )
