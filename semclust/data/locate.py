"""Finding a dataset's files below whatever directory the user pointed at."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from semclust.data.base import SourceError


def find_dataset_dir(
    root: str | os.PathLike[str],
    subdirs: Sequence[str],
    marker_sets: Sequence[Sequence[str]],
    dataset: str,
) -> Path:
    """Return the first of ``root`` and ``root/<subdir>`` that holds one full marker set.

    Users point at either the unpacked folder or the directory they unpacked the archive
    into; accepting both saves a confusing "not found" for the second, very common choice.
    Each marker set lists files that must all be present; any one complete set suffices
    (e.g. a file with or without ``.gz``). The error lists every place looked at.
    """
    base = Path(root).expanduser()
    candidates = [base, *(base / sub for sub in subdirs)]
    for directory in candidates:
        for markers in marker_sets:
            if all((directory / name).is_file() for name in markers):
                return directory
    looked = ", ".join(str(c) for c in candidates)
    wanted = " or ".join("+".join(markers) for markers in marker_sets)
    raise SourceError(f"{dataset}: no {wanted} found; looked in {looked}")


def first_existing(directory: Path, names: Sequence[str], dataset: str) -> Path:
    """Return ``directory/name`` for the first name that exists, else say which were tried."""
    for name in names:
        path = directory / name
        if path.is_file():
            return path
    raise SourceError(f"{dataset}: missing {' or '.join(names)} in {directory}")
