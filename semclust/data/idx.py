"""Reader for the IDX format used by MNIST-style datasets (optionally gzipped)."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from semclust.data.base import SourceError

# IDX type byte -> big-endian numpy dtype, as in the format's original description.
_IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}

IDX_IMAGES_MAGIC = 0x00000803  # 2051: ubyte, 3 dims
IDX_LABELS_MAGIC = 0x00000801  # 2049: ubyte, 1 dim


def read_idx(path: str | os.PathLike[str], *, expect_magic: int | None = None) -> np.ndarray:
    """Return the array stored in an IDX file (plain or gzip, detected from the content).

    Every inconsistency (wrong magic, truncated data, trailing bytes) raises
    :class:`SourceError` naming the file, because a half-read dataset would silently skew
    every number computed from it.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise SourceError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    magic = int.from_bytes(data[:4], "big")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES or data[3] == 0:
        raise SourceError(f"{path}: not an IDX file (magic number 0x{magic:08x})")
    if expect_magic is not None and magic != expect_magic:
        raise SourceError(
            f"{path}: IDX magic number is 0x{magic:08x} ({magic}), expected 0x{expect_magic:08x} ({expect_magic})"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise SourceError(f"{path}: header declares {ndim} dimensions but the file ends first")
    shape = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header
    if actual != expected:
        raise SourceError(
            f"{path}: header says shape {shape} ({expected} data bytes) but the file holds {actual} data bytes"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def _read_bytes(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            head = handle.read(2)
            handle.seek(0)
            if head == b"\x1f\x8b":
                with gzip.GzipFile(fileobj=handle) as unzipped:
                    return unzipped.read()
            return handle.read()
    except FileNotFoundError:
        raise SourceError(f"IDX file not found: {path}") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise SourceError(f"{path}: cannot read ({exc})") from None
