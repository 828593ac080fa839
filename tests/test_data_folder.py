from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semclust.data.base import ImageDecodeError, SourceError
from semclust.data.folder import FolderSource


def _image(path: Path, color: tuple[int, int, int] = (0, 0, 0), fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 3), color).save(path, fmt)


def test_recursive_scan_sorted_case_insensitive_and_filtered(tmp_path):
    _image(tmp_path / "b" / "z.png")
    _image(tmp_path / "b" / "A.JPG", fmt="JPEG")
    _image(tmp_path / "a" / "deep" / "x.Png")
    _image(tmp_path / "a-b" / "y.tif")
    _image(tmp_path / "top.jpeg", fmt="JPEG")
    (tmp_path / "b" / "readme.txt").write_text("not an image")
    (tmp_path / "b" / "noext").write_bytes(b"x")
    _image(tmp_path / ".hidden" / "h.png")
    _image(tmp_path / "b" / "._z.png")  # macOS resource-fork dropping

    source = FolderSource(tmp_path)
    assert source.ids == ["a/deep/x.Png", "a-b/y.tif", "b/A.JPG", "b/z.png", "top.jpeg"]
    assert source.labels is None and source.class_names is None
    assert [p.relative_to(tmp_path).as_posix() for p in source.paths] == source.ids
    # Same tree, same order on a second scan.
    assert FolderSource(tmp_path).ids == source.ids


def test_load_decodes_the_right_file(tmp_path):
    _image(tmp_path / "r.png", (255, 0, 0))
    _image(tmp_path / "g.png", (0, 255, 0))
    source = FolderSource(tmp_path)
    assert source.ids == ["g.png", "r.png"]
    assert source.load(0).getpixel((0, 0)) == (0, 255, 0)
    assert source.load(1).getpixel((0, 0)) == (255, 0, 0)
    assert source.load(1).mode == "RGB"


def test_broken_file_raises_decode_error_with_relative_id(tmp_path):
    _image(tmp_path / "ok.png")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bad.jpg").write_text("hello")
    source = FolderSource(tmp_path)
    with pytest.raises(ImageDecodeError) as info:
        source.load(source.ids.index("sub/bad.jpg"))
    assert info.value.item_id == "sub/bad.jpg"


def test_pixel_limit_is_passed_to_decoder(tmp_path):
    _image(tmp_path / "a.png")
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        FolderSource(tmp_path, max_pixels=5).load(0)


def test_labels_from_first_level_folders(tmp_path):
    _image(tmp_path / "dog" / "1.png")
    _image(tmp_path / "cat" / "2.png")
    _image(tmp_path / "cat" / "inner" / "3.png")
    _image(tmp_path / "bird" / "4.png")
    source = FolderSource(tmp_path, labels_from_folders=True)
    assert source.class_names == ["bird", "cat", "dog"]
    assert source.ids == ["bird/4.png", "cat/2.png", "cat/inner/3.png", "dog/1.png"]
    assert source.labels.tolist() == [0, 1, 1, 2]
    assert source.labels.dtype == np.int64
    assert source.describe()["n_classes"] == 3


def test_labels_from_folders_rejects_loose_files(tmp_path):
    _image(tmp_path / "dog" / "1.png")
    _image(tmp_path / "stray.png")
    with pytest.raises(SourceError, match="stray.png"):
        FolderSource(tmp_path, labels_from_folders=True)


def test_missing_empty_and_file_roots(tmp_path):
    with pytest.raises(SourceError, match=str(tmp_path / "nope")):
        FolderSource(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(SourceError, match=str(tmp_path / "empty")):
        FolderSource(tmp_path / "empty")
    _image(tmp_path / "f.png")
    with pytest.raises(SourceError, match="not a directory"):
        FolderSource(tmp_path / "f.png")


def test_custom_extensions_are_normalised(tmp_path):
    _image(tmp_path / "a.png")
    _image(tmp_path / "b.jpg", fmt="JPEG")
    assert FolderSource(tmp_path, extensions=[".PNG"]).ids == ["a.png"]
    with pytest.raises(SourceError):
        FolderSource(tmp_path, extensions=["."])


def test_symlink_loop_terminates_and_linked_dirs_are_followed(tmp_path):
    root = tmp_path / "root"
    _image(root / "a" / "1.png")
    os.symlink(root, root / "a" / "loop")  # points back up the tree
    outside = tmp_path / "outside"
    _image(outside / "2.png")
    os.symlink(outside, root / "linked")
    os.symlink(root / "a" / "1.png", root / "alias.png")
    os.symlink(tmp_path / "gone.png", root / "dangling.png")

    source = FolderSource(root)
    assert source.ids == ["a/1.png", "alias.png", "dangling.png", "linked/2.png"]
    assert source.load(source.ids.index("alias.png")).size == (4, 3)
    with pytest.raises(ImageDecodeError, match="not found"):
        source.load(source.ids.index("dangling.png"))


def test_unreadable_directory_is_skipped(tmp_path, monkeypatch):
    _image(tmp_path / "ok" / "1.png")
    _image(tmp_path / "locked" / "2.png")
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert FolderSource(tmp_path).ids == ["ok/1.png"]


def test_non_utf8_filename_gets_a_writable_id(tmp_path):
    name = os.fsdecode(b"caf\xe9.png")
    try:
        _image(tmp_path / name)
    except (OSError, UnicodeError):
        pytest.skip("filesystem refuses non-UTF-8 names")
    source = FolderSource(tmp_path)
    source.ids[0].encode("utf-8")  # must not raise
    assert source.load(0).size == (4, 3)


def test_describe_names_root_and_count(tmp_path):
    _image(tmp_path / "a.png")
    _image(tmp_path / "b.png")
    info = FolderSource(tmp_path).describe()
    assert info["root"] == str(tmp_path.absolute())
    assert info["n"] == 2
    assert info["name"] == "folder"
