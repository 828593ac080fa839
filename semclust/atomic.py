"""Atomic file writes: a reader (or a resumed run) never sees a half-written file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def current_umask() -> int:
    """The process's umask, read without changing it where Linux allows (no window in which
    another thread's files would be created with the wrong mode)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Any], None], mode: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 files; outputs are shared (a report served, a store read by another
        # user), so they get the mode an ordinary open() would give: 0666 less the umask.
        os.chmod(tmp_name, 0o666 & ~current_umask())
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
    atomic_write(Path(path), lambda h: h.write(json.dumps(data, indent=2, sort_keys=False) + "\n"), "w")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write(Path(path), lambda h: h.write(text), "w")


def write_npy(path: str | os.PathLike[str], array: np.ndarray) -> None:
    atomic_write(Path(path), lambda h: np.save(h, array, allow_pickle=False), "wb")


def as_stored_json(value: Any) -> Any:
    """``value`` as it reads back from a JSON file (tuples become lists): compare in that form."""
    return json.loads(json.dumps(value))


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def json_plain(value: Any) -> Any:
    """numpy scalars and arrays inside JSON-able values as Python numbers and lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): json_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_plain(v) for v in value]
    return value
