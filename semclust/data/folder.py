"""A directory tree of image files as an :class:`ImageSource`."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from semclust.data.base import ImageSource, SourceError
from semclust.data.decode import DEFAULT_MAX_PIXELS, decode_image

DEFAULT_EXTENSIONS: tuple[str, ...] = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")


class FolderSource(ImageSource):
    """Every image file under ``root``, recursively, in a fixed order.

    Ids are the POSIX paths relative to ``root`` so that assignments written by one run can be
    joined back to files on another machine. Names starting with ``.`` are skipped: they are
    tool droppings (``.git``, ``.ipynb_checkpoints``, macOS ``._x.jpg`` resource forks) that
    would otherwise show up as undecodable "images".
    """

    name = "folder"

    def __init__(
        self,
        root: str | os.PathLike[str],
        labels_from_folders: bool = False,
        extensions: Iterable[str] = DEFAULT_EXTENSIONS,
        *,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.root = Path(root).expanduser().absolute()
        self.labels_from_folders = labels_from_folders
        self.extensions = tuple(sorted({e.lower().lstrip(".") for e in extensions if e.strip(".")}))
        if not self.extensions:
            raise SourceError("FolderSource needs at least one file extension")
        self.max_pixels = max_pixels
        if not self.root.exists():
            raise SourceError(f"image folder does not exist: {self.root}")
        if not self.root.is_dir():
            raise SourceError(f"not a directory: {self.root}")

        found = sorted(_scan(self.root, self.extensions), key=lambda rel: rel.split("/"))
        if not found:
            raise SourceError(f"no image files ({', '.join(self.extensions)}) found under {self.root}")
        self._paths = [self.root / rel for rel in found]
        # Ids go into JSON/CSV; a filename that is not valid UTF-8 must not break those writes.
        self._ids = [os.fsencode(rel).decode("utf-8", "backslashreplace") for rel in found]

        self._labels: np.ndarray | None = None
        self._class_names: list[str] | None = None
        if labels_from_folders:
            loose = [i for i in self._ids if "/" not in i]
            if loose:
                shown = ", ".join(loose[:5]) + (f" and {len(loose) - 5} more" if len(loose) > 5 else "")
                raise SourceError(
                    f"labels_from_folders: {len(loose)} file(s) directly in {self.root} belong "
                    f"to no class folder: {shown}"
                )
            folders = [i.split("/", 1)[0] for i in self._ids]
            self._class_names = sorted(set(folders))
            index = {name: k for k, name in enumerate(self._class_names)}
            self._labels = np.array([index[f] for f in folders], dtype=np.int64)

    @property
    def paths(self) -> list[Path]:
        return self._paths

    def load(self, index: int) -> Image.Image:
        return decode_image(self._paths[index], self._ids[index], max_pixels=self.max_pixels)

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "name": self.name,
            "root": str(self.root),
            "n": len(self),
            "extensions": list(self.extensions),
            "labels_from_folders": self.labels_from_folders,
        }
        if self._class_names is not None:
            info["n_classes"] = len(self._class_names)
        return info


def _scan(root: Path, extensions: tuple[str, ...]) -> list[str]:
    """Relative POSIX paths of matching files; follows symlinks but visits each real dir once.

    Following links matters because people assemble datasets out of symlinked folders; the
    visited set of (device, inode) is what keeps a link pointing back up the tree from looping.
    """
    suffixes = tuple("." + e for e in extensions)
    found: list[str] = []
    visited: set[tuple[int, int]] = set()
    stack: list[tuple[str, str]] = [(str(root), "")]
    while stack:
        directory, prefix = stack.pop()
        try:
            info = os.stat(directory)
        except OSError:
            continue
        key = (info.st_dev, info.st_ino)
        if key in visited:
            continue
        visited.add(key)
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue  # unreadable directory: the rest of the tree is still usable
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = prefix + entry.name
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                subdirs.append((entry.path, rel + "/"))
            elif entry.name.lower().endswith(suffixes) and _is_file_or_dangling(entry):
                # A dangling link is kept so the run reports it as skipped instead of the file
                # silently vanishing from the dataset.
                found.append(rel)
        stack.extend(reversed(subdirs))
    return found


def _is_file_or_dangling(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file() or (entry.is_symlink() and not os.path.exists(entry.path))
    except OSError:
        return False
