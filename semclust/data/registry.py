"""Turning a user's SOURCE string into an :class:`ImageSource`, and listing known datasets."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semclust.data.base import ImageSource, SourceError
from semclust.data.cifar import (
    CIFAR_SPLITS,
    CIFAR10Source,
    CIFAR100Source,
    locate_cifar10,
    locate_cifar100,
)
from semclust.data.digits import DigitsSource
from semclust.data.emoji import EMOJI_SPLITS, EmojiSource, locate_emoji
from semclust.data.fashion_mnist import (
    DEFAULT_FASHION_MNIST_ROOT,
    FASHION_MNIST_SPLITS,
    FashionMNISTSource,
    locate_fashion_mnist,
)
from semclust.data.folder import FolderSource
from semclust.data.stl10 import STL10_SPLITS, STL10Source, locate_stl10
from semclust.data.svhn import SVHN_SPLITS, SVHNSource, locate_svhn

DATA_ROOT_ENV = "SEMCLUST_DATA_ROOT"
DATASET_PREFIX = "dataset:"


@dataclass(frozen=True)
class _Dataset:
    name: str
    splits: tuple[str, ...]
    default_split: str
    description: str
    needs_root: bool
    # (root or None, split) -> source; root is None only for datasets with a built-in location.
    open: Callable[[Path | None, str], ImageSource]
    # root or None -> directory holding the files; raises SourceError when absent.
    locate: Callable[[Path | None], Path | None]
    # What a user does to get the files when they are missing (`semclust datasets` prints it).
    how_to_get: str = ""


_ROOT = f"--data-root DIR or ${DATA_ROOT_ENV}"


def _fashion_roots(root: Path | None) -> list[Path | None]:
    # An explicit data root is tried first, but the system copy still counts as available.
    return [root, None] if root is not None else [None]


def _open_fashion(root: Path | None, split: str) -> ImageSource:
    errors = []
    for candidate in _fashion_roots(root):
        try:
            return FashionMNISTSource(split=split, root=candidate)
        except SourceError as exc:
            errors.append(str(exc))
    raise SourceError("; ".join(errors))


def _locate_fashion(root: Path | None) -> Path:
    errors = []
    for candidate in _fashion_roots(root):
        try:
            return locate_fashion_mnist(candidate)
        except SourceError as exc:
            errors.append(str(exc))
    raise SourceError("; ".join(errors))


def _required(root: Path | None) -> Path:
    """The data root of a dataset with ``needs_root``; callers check it is set before opening."""
    if root is None:
        raise SourceError(f"this dataset needs a data root: pass data_root (--data-root) or set ${DATA_ROOT_ENV}")
    return root


_DATASETS: dict[str, _Dataset] = {
    d.name: d
    for d in [
        _Dataset(
            "fashion-mnist",
            FASHION_MNIST_SPLITS,
            "test",
            f"Fashion-MNIST, 28x28 grayscale clothing, 10 classes (default {DEFAULT_FASHION_MNIST_ROOT})",
            False,
            _open_fashion,
            _locate_fashion,
            f"apt-get install dataset-fashion-mnist (Debian; make install does), or the four *-ubyte.gz files "
            f"under {_ROOT} (or its fashion-mnist/ folder)",
        ),
        _Dataset(
            "digits",
            ("all",),
            "all",
            "scikit-learn 8x8 handwritten digits, 1797 images, 10 classes (bundled)",
            False,
            lambda root, split: DigitsSource(),
            lambda root: None,
            "nothing to get: it ships with scikit-learn",
        ),
        _Dataset(
            "cifar10",
            CIFAR_SPLITS,
            "test",
            "CIFAR-10 binary version (cifar-10-batches-bin), 32x32, 10 classes",
            True,
            lambda root, split: CIFAR10Source(_required(root), split),
            lambda root: locate_cifar10(_required(root)),
            f"unpack cifar-10-binary.tar.gz (www.cs.toronto.edu/~kriz/cifar.html) into the folder named by {_ROOT}, "
            "which then holds cifar-10-batches-bin/",
        ),
        _Dataset(
            "cifar100",
            CIFAR_SPLITS,
            "test",
            "CIFAR-100 binary version (cifar-100-binary), 32x32, 100 fine classes",
            True,
            lambda root, split: CIFAR100Source(_required(root), split, label_set="fine"),
            lambda root: locate_cifar100(_required(root)),
            f"unpack cifar-100-binary.tar.gz (www.cs.toronto.edu/~kriz/cifar.html) into the folder named by {_ROOT}, "
            "which then holds cifar-100-binary/",
        ),
        _Dataset(
            "cifar20",
            CIFAR_SPLITS,
            "test",
            "CIFAR-100 images with the 20 coarse superclass labels",
            True,
            lambda root, split: CIFAR100Source(_required(root), split, label_set="coarse"),
            lambda root: locate_cifar100(_required(root)),
            f"unpack cifar-100-binary.tar.gz (www.cs.toronto.edu/~kriz/cifar.html) into the folder named by {_ROOT}, "
            "which then holds cifar-100-binary/",
        ),
        _Dataset(
            "stl10",
            STL10_SPLITS,
            "test",
            "STL-10 binary (stl10_binary), 96x96, 10 classes; 'unlabeled' has no labels",
            True,
            lambda root, split: STL10Source(_required(root), split),
            lambda root: locate_stl10(_required(root)),
            f"unpack stl10_binary.tar.gz (cs.stanford.edu/~acoates/stl10) into the folder named by {_ROOT}, "
            "which then holds stl10_binary/",
        ),
        _Dataset(
            "svhn",
            SVHN_SPLITS,
            "test",
            "SVHN cropped digits (*_32x32.mat), 32x32, 10 classes",
            True,
            lambda root, split: SVHNSource(_required(root), split),
            lambda root: locate_svhn(_required(root)),
            f"put train_32x32.mat and test_32x32.mat (extra_32x32.mat for extra; ufldl.stanford.edu/housenumbers) "
            f"in the folder named by {_ROOT} or its svhn/ folder",
        ),
        _Dataset(
            "emoji",
            EMOJI_SPLITS,
            "all",
            "Noto Color Emoji rendered on white: 'all' = 1,870 emoji in 9 groups, "
            "'food-animals' = 284 in 15 subgroups (Debian fonts-noto-color-emoji + unicode-data)",
            False,
            lambda root, split: EmojiSource(split),
            lambda root: locate_emoji()[0].parent,
            "apt-get install fonts-noto-color-emoji unicode-data (Debian; make install does)",
        ),
    ]
}


def open_source(
    spec: str,
    *,
    labels_from_folders: bool = False,
    data_root: str | os.PathLike[str] | None = None,
) -> ImageSource:
    """Open ``spec``: an image directory, or ``dataset:NAME[:SPLIT]``.

    Datasets other than fashion-mnist and digits are looked up under ``data_root``, falling
    back to ``$SEMCLUST_DATA_ROOT``.
    """
    if spec.startswith(DATASET_PREFIX):
        name, _, split = spec[len(DATASET_PREFIX) :].partition(":")
        return _open_dataset(name.strip().lower(), split.strip() or None, data_root)
    path = Path(spec).expanduser()
    if not path.exists():
        raise SourceError(
            f"source {spec!r} is neither an existing directory nor "
            f"'{DATASET_PREFIX}NAME[:SPLIT]' (datasets: {', '.join(_DATASETS)})"
        )
    if not path.is_dir():
        raise SourceError(f"source {spec!r} is a file; give the directory that holds the images")
    return FolderSource(path, labels_from_folders=labels_from_folders)


def list_datasets(data_root: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Every known dataset with its splits and whether its files are present here."""
    root = _data_root(data_root)
    rows = []
    for d in _DATASETS.values():
        location: Path | None = None
        if d.needs_root and root is None:
            available = False
        else:
            try:
                location = d.locate(root)
                available = True
            except SourceError:
                available = False
        rows.append(
            {
                "name": d.name,
                "splits": list(d.splits),
                "default_split": d.default_split,
                "available": available,
                "location": None if location is None else str(location),
                "description": d.description,
                "how_to_get": d.how_to_get,
            }
        )
    return rows


def _open_dataset(name: str, split: str | None, data_root: str | os.PathLike[str] | None) -> ImageSource:
    dataset = _DATASETS.get(name)
    if dataset is None:
        raise SourceError(f"unknown dataset {name!r}; valid names: {', '.join(_DATASETS)}")
    split = split or dataset.default_split
    if split not in dataset.splits:
        raise SourceError(f"dataset {name!r} has no split {split!r}; valid splits: {', '.join(dataset.splits)}")
    root = _data_root(data_root)
    if dataset.needs_root and root is None:
        raise SourceError(
            f"dataset {name!r} needs a data root: pass data_root (--data-root) or set "
            f"${DATA_ROOT_ENV}; looked in neither since both are unset"
        )
    return dataset.open(root, split)


def _data_root(data_root: str | os.PathLike[str] | None) -> Path | None:
    if data_root is not None and str(data_root) != "":
        return Path(data_root).expanduser()
    env = os.environ.get(DATA_ROOT_ENV, "").strip()
    return Path(env).expanduser() if env else None
