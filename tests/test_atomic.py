from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from semclust.atomic import current_umask, write_json, write_npy, write_text


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_honour_the_umask(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        assert current_umask() == umask
        write_json(tmp_path / "a.json", {"x": 1})
        write_text(tmp_path / "b.txt", "hello")
        write_npy(tmp_path / "c.npy", np.zeros(3))
    finally:
        os.umask(previous)
    for name in ("a.json", "b.txt", "c.npy"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask
    assert (tmp_path / "b.txt").read_text() == "hello"
    assert list(tmp_path.glob(".*.tmp")) == []
