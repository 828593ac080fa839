"""Atomic file writes: a reader (or a resumed run) never sees a half-written file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    _atomic_write(Path(path), lambda h: h.write(json.dumps(data, indent=2, sort_keys=False) + "\n"), "w")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    _atomic_write(Path(path), lambda h: h.write(text), "w")


def write_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    _atomic_write(Path(path), lambda h: np.save(h, array, allow_pickle=False), "wb")


def as_stored_json(value: Any) -> Any:
    """``value`` as it reads back from a JSON file (tuples become lists): compare in that form."""
    return json.loads(json.dumps(value))


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
