"""Fashion-MNIST (28x28 grayscale, 10 classes) from its four IDX files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from semclust.data.base import ArraySource, SourceError
from semclust.data.idx import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, read_idx
from semclust.data.locate import find_dataset_dir, first_existing

FASHION_MNIST_CLASSES: list[str] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
DEFAULT_FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_SPLITS = ("test", "train", "all")

_FILES = {"train": "train", "test": "t10k"}
# The torchvision download lays files out as FashionMNIST/raw; accept that too.
_SUBDIRS = ("fashion-mnist", "fashion_mnist", "FashionMNIST/raw", "FashionMNIST")


def locate_fashion_mnist(root: str | os.PathLike[str] | None = None) -> Path:
    """Directory holding the Fashion-MNIST test files (images and labels, gz or plain)."""
    markers = [(f"t10k-images-idx3-ubyte{gz}", f"t10k-labels-idx1-ubyte{gz}") for gz in (".gz", "")]
    return find_dataset_dir(DEFAULT_FASHION_MNIST_ROOT if root is None else root, _SUBDIRS, markers, "fashion-mnist")


class FashionMNISTSource(ArraySource):
    """Fashion-MNIST split ``test`` (10k), ``train`` (60k) or ``all`` (train then test, 70k).

    Ids are ``split/index`` within the original file, so ``all`` keeps ``train/…`` and
    ``test/…`` ids that match the single-split runs.
    """

    def __init__(self, split: str = "test", root: str | os.PathLike[str] | None = None) -> None:
        if split not in FASHION_MNIST_SPLITS:
            raise SourceError(f"fashion-mnist: unknown split {split!r}; valid: {', '.join(FASHION_MNIST_SPLITS)}")
        self.root = locate_fashion_mnist(root)
        self.split = split
        parts = ["train", "test"] if split == "all" else [split]
        images: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        ids: list[str] = []
        for part in parts:
            part_images, part_labels = _read_split(self.root, part)
            images.append(part_images)
            labels.append(part_labels)
            ids.extend(f"{part}/{i}" for i in range(len(part_images)))
        super().__init__(
            images[0] if len(images) == 1 else np.concatenate(images),
            labels[0] if len(labels) == 1 else np.concatenate(labels),
            class_names=list(FASHION_MNIST_CLASSES),
            name="fashion-mnist",
        )
        self._ids = ids

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "split": self.split, "root": str(self.root), "n": len(self)}


def _read_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    stem = _FILES[split]
    image_path = first_existing(
        directory,
        [f"{stem}-images-idx3-ubyte.gz", f"{stem}-images-idx3-ubyte"],
        "fashion-mnist",
    )
    label_path = first_existing(
        directory,
        [f"{stem}-labels-idx1-ubyte.gz", f"{stem}-labels-idx1-ubyte"],
        "fashion-mnist",
    )
    images = read_idx(image_path, expect_magic=IDX_IMAGES_MAGIC)
    labels = read_idx(label_path, expect_magic=IDX_LABELS_MAGIC)
    if images.shape[1:] != (28, 28):
        raise SourceError(f"{image_path}: expected 28x28 images, got {images.shape[1:]}")
    if len(images) != len(labels):
        raise SourceError(
            f"fashion-mnist {split}: {len(images)} images in {image_path.name} but "
            f"{len(labels)} labels in {label_path.name}"
        )
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise SourceError(f"{label_path}: label {int(labels.max())} outside 0..9")
    return images, labels.astype(np.int64)
