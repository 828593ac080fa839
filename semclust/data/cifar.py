"""CIFAR-10 and CIFAR-100 from their "binary version" archives.

Record layout (from the dataset page): label byte(s), then 1024 red, 1024 green and 1024 blue
bytes, each channel a row-major 32x32 plane.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np

from semclust.data.base import SourceError
from semclust.data.locate import find_dataset_dir
from semclust.data.records import RecordFile, RecordImageSource

CIFAR_SPLITS = ("test", "train", "all")
_PIXELS = 3 * 32 * 32

_C10_SUBDIR = "cifar-10-batches-bin"
_C10_TRAIN = [f"data_batch_{k}.bin" for k in range(1, 6)]
_C10_TEST = ["test_batch.bin"]
_C10_META = "batches.meta.txt"

_C100_SUBDIR = "cifar-100-binary"
_C100_LABEL_FILES = {"fine": "fine_label_names.txt", "coarse": "coarse_label_names.txt"}


def locate_cifar10(root: str | os.PathLike[str]) -> Path:
    return find_dataset_dir(root, [_C10_SUBDIR], [[_C10_META, *_C10_TEST]], "cifar10")


def locate_cifar100(root: str | os.PathLike[str]) -> Path:
    markers = [["test.bin", *_C100_LABEL_FILES.values()]]
    return find_dataset_dir(root, [_C100_SUBDIR], markers, "cifar100")


def cifar_record_to_image(record: np.ndarray, label_bytes: int) -> np.ndarray:
    """One CIFAR record -> ``[32, 32, 3]`` uint8 (channel planes become the last axis)."""
    return record[label_bytes:].reshape(3, 32, 32).transpose(1, 2, 0)


class CIFAR10Source(RecordImageSource):
    """CIFAR-10 ``test`` (10k), ``train`` (50k, batches 1-5 in order) or ``all`` (train+test)."""

    def __init__(self, root: str | os.PathLike[str], split: str = "test") -> None:
        _check_split("cifar10", split)
        directory = locate_cifar10(root)
        class_names = _read_names(directory / _C10_META, "cifar10")
        parts: list[tuple[str, RecordFile]] = []
        for part in _parts(split):
            names = _C10_TRAIN if part == "train" else _C10_TEST
            parts.extend((f"{part}/", _record_file(directory / n, 1 + _PIXELS, "cifar10")) for n in names)
        labels = np.concatenate([np.array(f.records[:, 0]) for _, f in parts])
        _check_labels(labels, len(class_names), "cifar10")
        super().__init__(
            parts,
            partial(cifar_record_to_image, label_bytes=1),
            labels=labels,
            class_names=class_names,
            name="cifar10",
            info={"split": split, "root": str(directory)},
        )


class CIFAR100Source(RecordImageSource):
    """CIFAR-100 with ``label_set='fine'`` (100 classes) or ``'coarse'`` (20 superclasses)."""

    def __init__(self, root: str | os.PathLike[str], split: str = "test", label_set: str = "fine") -> None:
        _check_split("cifar100", split)
        if label_set not in _C100_LABEL_FILES:
            raise SourceError(f"cifar100: label_set must be 'fine' or 'coarse', got {label_set!r}")
        directory = locate_cifar100(root)
        class_names = _read_names(directory / _C100_LABEL_FILES[label_set], "cifar100")
        parts = [
            (f"{part}/", _record_file(directory / f"{part}.bin", 2 + _PIXELS, "cifar100")) for part in _parts(split)
        ]
        column = 0 if label_set == "coarse" else 1
        labels = np.concatenate([np.array(f.records[:, column]) for _, f in parts])
        _check_labels(labels, len(class_names), f"cifar100 ({label_set})")
        name = "cifar100" if label_set == "fine" else "cifar20"
        super().__init__(
            parts,
            partial(cifar_record_to_image, label_bytes=2),
            labels=labels,
            class_names=class_names,
            name=name,
            info={"split": split, "label_set": label_set, "root": str(directory)},
        )


def _check_split(dataset: str, split: str) -> None:
    if split not in CIFAR_SPLITS:
        raise SourceError(f"{dataset}: unknown split {split!r}; valid: {', '.join(CIFAR_SPLITS)}")


def _parts(split: str) -> list[str]:
    return ["train", "test"] if split == "all" else [split]


def _record_file(path: Path, record_size: int, dataset: str) -> RecordFile:
    if not path.is_file():
        raise SourceError(f"{dataset}: missing {path}")
    return RecordFile(path, record_size, dataset)


def _read_names(path: Path, dataset: str) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise SourceError(f"{dataset}: cannot read class names from {path} ({exc})") from None
    names = [line.strip() for line in lines if line.strip()]
    if not names:
        raise SourceError(f"{dataset}: no class names in {path}")
    return names


def _check_labels(labels: np.ndarray, n_classes: int, dataset: str) -> None:
    if labels.size and int(labels.max()) >= n_classes:
        raise SourceError(f"{dataset}: label {int(labels.max())} but only {n_classes} class names")
