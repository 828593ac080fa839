from __future__ import annotations

import pytest

from semclust.data.base import SourceError
from semclust.data.locate import find_dataset_dir, first_existing


def test_accepts_the_directory_itself_or_its_parent(tmp_path):
    inner = tmp_path / "set-bin"
    inner.mkdir()
    (inner / "meta.txt").write_text("x")
    (inner / "data.bin").write_bytes(b"x")
    markers = [["meta.txt", "data.bin"]]
    assert find_dataset_dir(inner, ["set-bin"], markers, "demo") == inner
    assert find_dataset_dir(tmp_path, ["set-bin"], markers, "demo") == inner


def test_any_complete_marker_set_is_enough(tmp_path):
    (tmp_path / "a.gz").write_bytes(b"x")
    assert find_dataset_dir(tmp_path, [], [["a"], ["a.gz"]], "demo") == tmp_path


def test_error_lists_every_place_looked(tmp_path):
    (tmp_path / "meta.txt").write_text("only half")
    with pytest.raises(SourceError) as info:
        find_dataset_dir(tmp_path, ["sub"], [["meta.txt", "data.bin"]], "demo")
    message = str(info.value)
    assert message.startswith("demo:")
    assert str(tmp_path) in message and str(tmp_path / "sub") in message
    assert "meta.txt+data.bin" in message


def test_first_existing(tmp_path):
    (tmp_path / "b").write_text("x")
    assert first_existing(tmp_path, ["a", "b"], "demo") == tmp_path / "b"
    with pytest.raises(SourceError, match="missing a or c"):
        first_existing(tmp_path, ["a", "c"], "demo")
