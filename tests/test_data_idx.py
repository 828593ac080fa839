from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from semclust.data.base import SourceError
from semclust.data.idx import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, read_idx


def _idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.tobytes()


def test_plain_and_gzip_round_trip(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    plain = tmp_path / "images-idx3-ubyte"
    plain.write_bytes(_idx_bytes(images))
    zipped = tmp_path / "images-idx3-ubyte.gz"
    zipped.write_bytes(gzip.compress(_idx_bytes(images)))
    for path in (plain, zipped):
        out = read_idx(path, expect_magic=IDX_IMAGES_MAGIC)
        assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
        assert np.array_equal(out, images)


def test_big_endian_types_come_back_native(tmp_path):
    values = np.array([-2, 300, 7], dtype=">i2")
    path = tmp_path / "v.idx"
    path.write_bytes(_idx_bytes(values, 0x0B))
    out = read_idx(path)
    assert out.tolist() == [-2, 300, 7]
    assert out.dtype == np.dtype("int16") and out.dtype.isnative


def test_wrong_magic_names_the_file(tmp_path):
    path = tmp_path / "labels.idx"
    path.write_bytes(_idx_bytes(np.zeros(3, dtype=np.uint8)))
    assert read_idx(path, expect_magic=IDX_LABELS_MAGIC).shape == (3,)
    with pytest.raises(SourceError, match="labels.idx.*magic"):
        read_idx(path, expect_magic=IDX_IMAGES_MAGIC)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x00\x00", "too short"),
        (b"PK\x03\x04rest", "not an IDX"),
        (b"\x00\x00\x08\x03\x00\x00", "ends first"),
        (_idx_bytes(np.zeros((2, 2, 2), np.uint8))[:-1], "holds 7 data bytes"),
        (_idx_bytes(np.zeros((2, 2, 2), np.uint8)) + b"\x00", "holds 9 data bytes"),
    ],
)
def test_malformed_files_are_rejected(tmp_path, data, message):
    path = tmp_path / "broken-idx"
    path.write_bytes(data)
    with pytest.raises(SourceError, match=message) as info:
        read_idx(path)
    assert "broken-idx" in str(info.value)


def test_missing_and_corrupt_gzip(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        read_idx(tmp_path / "absent.gz")
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(_idx_bytes(np.zeros(100, np.uint8)))[:20])
    with pytest.raises(SourceError, match="bad.gz"):
        read_idx(path)
