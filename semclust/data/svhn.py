"""SVHN cropped digits (``*_32x32.mat``, MATLAB v5 files readable by scipy)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from semclust.data.base import ArraySource, SourceError
from semclust.data.locate import find_dataset_dir

SVHN_SPLITS = ("test", "train", "extra")
SVHN_CLASSES: list[str] = [str(d) for d in range(10)]
_SUBDIRS = ("svhn", "SVHN")


def locate_svhn(root: str | os.PathLike[str]) -> Path:
    return find_dataset_dir(root, _SUBDIRS, [["test_32x32.mat"], ["train_32x32.mat"]], "svhn")


class SVHNSource(ArraySource):
    """SVHN ``test`` (26,032), ``train`` (73,257) or ``extra`` (531,131), label 10 -> digit 0."""

    def __init__(self, root: str | os.PathLike[str], split: str = "test") -> None:
        if split not in SVHN_SPLITS:
            raise SourceError(f"svhn: unknown split {split!r}; valid: {', '.join(SVHN_SPLITS)}")
        self.root = locate_svhn(root)
        self.split = split
        path = self.root / f"{split}_32x32.mat"
        if not path.is_file():
            raise SourceError(f"svhn: missing {path}")
        from scipy.io import loadmat  # deferred: only this dataset needs scipy.io

        try:
            mat = loadmat(path, variable_names=["X", "y"])
        except Exception as exc:  # noqa: BLE001 - scipy raises many types for a bad file
            raise SourceError(f"svhn: cannot read {path} ({type(exc).__name__}: {exc})") from None
        if "X" not in mat or "y" not in mat:
            raise SourceError(f"svhn: {path} lacks the X and y variables")
        x, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
        if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.dtype != np.uint8:
            raise SourceError(f"svhn: {path}: X should be uint8 [32,32,3,n], got {x.dtype} {x.shape}")
        if len(y) != x.shape[3]:
            raise SourceError(f"svhn: {path}: {len(y)} labels for {x.shape[3]} images")
        if y.size and (y.min() < 1 or y.max() > 10):
            raise SourceError(f"svhn: {path}: labels outside 1..10")
        # A view, not a copy: the train split alone is ~225 MB.
        images = np.moveaxis(x, 3, 0)
        super().__init__(
            images,
            (y.astype(np.int64) % 10),
            class_names=list(SVHN_CLASSES),
            name="svhn",
            id_prefix=f"{split}/",
        )

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "split": self.split, "root": str(self.root), "n": len(self)}
