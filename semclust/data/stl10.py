"""STL-10 from its binary archive (``stl10_binary``).

Each image is 3x96x96 bytes in column-major (MATLAB) order, so a C-order reshape gives
``[channel, column, row]``; labels are stored 1..10.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from semclust.data.base import SourceError
from semclust.data.locate import find_dataset_dir
from semclust.data.records import RecordFile, RecordImageSource

STL10_SPLITS = ("test", "train", "unlabeled", "all")
_SUBDIR = "stl10_binary"
_PIXELS = 3 * 96 * 96


def locate_stl10(root: str | os.PathLike[str]) -> Path:
    return find_dataset_dir(root, [_SUBDIR], [["class_names.txt", "test_X.bin", "test_y.bin"]], "stl10")


def stl10_record_to_image(record: np.ndarray) -> np.ndarray:
    """One STL-10 record -> ``[96, 96, 3]`` uint8, undoing the column-major storage."""
    return record.reshape(3, 96, 96).transpose(2, 1, 0)


class STL10Source(RecordImageSource):
    """STL-10 ``test`` (8k), ``train`` (5k), ``unlabeled`` (100k, no labels) or ``all``
    (train then test, labelled).

    The unlabeled split also contains animals and vehicles outside the ten classes, so it
    reports neither labels nor class names.
    """

    def __init__(self, root: str | os.PathLike[str], split: str = "test") -> None:
        if split not in STL10_SPLITS:
            raise SourceError(f"stl10: unknown split {split!r}; valid: {', '.join(STL10_SPLITS)}")
        directory = locate_stl10(root)
        parts_names = ["train", "test"] if split == "all" else [split]
        parts: list[tuple[str, RecordFile]] = []
        labels: list[np.ndarray] = []
        for part in parts_names:
            images = _required(directory / f"{part}_X.bin")
            parts.append((f"{part}/", RecordFile(images, _PIXELS, "stl10")))
            if part != "unlabeled":
                labels.append(_read_labels(_required(directory / f"{part}_y.bin"), len(parts[-1][1])))
        labelled = split != "unlabeled"
        super().__init__(
            parts,
            stl10_record_to_image,
            labels=np.concatenate(labels) if labelled else None,
            class_names=_read_names(directory / "class_names.txt") if labelled else None,
            name="stl10",
            info={"split": split, "root": str(directory)},
        )


def _required(path: Path) -> Path:
    if not path.is_file():
        raise SourceError(f"stl10: missing {path}")
    return path


def _read_labels(path: Path, n_images: int) -> np.ndarray:
    raw = np.fromfile(path, dtype=np.uint8)
    if len(raw) != n_images:
        raise SourceError(f"stl10: {path} holds {len(raw)} labels for {n_images} images")
    if raw.size and (raw.min() < 1 or raw.max() > 10):
        raise SourceError(f"stl10: {path} has labels outside 1..10")
    return raw.astype(np.int64) - 1


def _read_names(path: Path) -> list[str]:
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(names) != 10:
        raise SourceError(f"stl10: expected 10 class names in {path}, found {len(names)}")
    return names
