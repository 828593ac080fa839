"""Images named on a command line: one folder, or any mix of image files and folders."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from semclust.data.base import ImageSource, SourceError


class PathsSource(ImageSource):
    """Explicit image files, with the ids given; any extension is accepted."""

    name = "files"

    def __init__(self, ids: Sequence[str], paths: Sequence[Path]) -> None:
        if len(ids) != len(paths):
            raise SourceError(f"{len(ids)} ids for {len(paths)} paths")
        self._ids, self._paths = list(ids), list(paths)

    @property
    def ids(self) -> list[str]:
        return self._ids

    def load(self, index: int) -> Image.Image:
        from semclust.data.decode import decode_image

        return decode_image(self._paths[index], self._ids[index])


def image_source(items: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> ImageSource:
    """One folder -> :class:`FolderSource` (ids relative to it); otherwise files and folders,
    ids as given (folder contents as ``folder/relative``). A path that does not exist is an
    error; a file that exists but does not decode is skipped later."""
    from semclust.data.folder import FolderSource

    paths = [items] if isinstance(items, (str, os.PathLike)) else list(items)
    if not paths:
        raise ValueError("no images given")
    if len(paths) == 1 and Path(paths[0]).is_dir():
        return FolderSource(paths[0])
    ids: list[str] = []
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            folder = FolderSource(path)
            prefix = str(item).rstrip("/")
            ids.extend(f"{prefix}/{rel}" for rel in folder.ids)
            files.extend(folder.paths)
        elif path.exists() or path.is_symlink():
            ids.append(str(item))
            files.append(path)
        else:
            raise FileNotFoundError(f"no such image file or folder: {item}")
    return PathsSource(ids, files)
