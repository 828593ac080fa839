"""The data of a semi-supervised run, from one of three builders, each returning an :class:`SSLData`:
:func:`balanced_data` (N true labels per class of a dataset's train split), :func:`longtail_data`
(a seeded long-tailed split) and :func:`folder_data` (the user's own labelled folder, an unlabelled
folder or dataset, an optional test folder). :func:`semclust.ssl.experiment.run_ssl` trains on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from semclust.deprecated import renamed_keywords

# Per-dataset defaults: digits (8x8) is upsampled to 16 px and never flipped (a mirrored digit is
# another symbol); digits also uses a smaller labelled batch so a default run takes minutes on CPU.
# "folder" is a user's own images (--labelled).
DEFAULT_BATCH = {"digits": 32, "folder": 16}
DEFAULT_IMAGE_SIZE = {"digits": 16}
NO_FLIP = {"digits", "svhn"}
DIGITS_TEST_FRACTION = 0.3
# Default steps: digits 300 so that a first run finishes in a few minutes on 2 CPU cores; a
# user's folder 1000, a few minutes for small images on a CPU.
DEFAULT_STEPS = {"digits": 300, "folder": 1000}
LT_DEFAULT_STEPS = DEFAULT_STEPS
FALLBACK_STEPS = 20000


def load_train_test(dataset: str, seed: int = 0, data_root: str | None = None) -> tuple[Any, Any, Any, Any, str]:
    """``(x_train, y_train, x_test, y_test, how the test split was made)``: uint8 images + int labels.

    digits has no official split: a seeded 30 % hold-out is the test set.
    """
    from semclust.data.registry import open_source
    from semclust.ssl.data import holdout_split, source_arrays

    name = dataset.removeprefix("dataset:").strip().lower()
    if name == "digits":
        x, y = source_arrays(open_source("dataset:digits"))
        y = cast(np.ndarray, y)  # digits always has labels
        train, test = holdout_split(len(x), DIGITS_TEST_FRACTION, seed)
        return x[train], y[train], x[test], y[test], f"seeded {DIGITS_TEST_FRACTION:.0%} hold-out (seed {seed})"
    x_train, y_train = source_arrays(open_source(f"dataset:{name}:train", data_root=data_root))
    x_test, y_test = source_arrays(open_source(f"dataset:{name}:test", data_root=data_root))
    if y_train is None or y_test is None:
        raise ValueError(f"dataset {name!r} has no labels on its train/test splits")
    return x_train, y_train, x_test, y_test, "test split"


def load_unlabelled(dataset: str, split: str, data_root: str | None, max_images: int | None, seed: int) -> np.ndarray:
    """uint8 images of ``dataset``'s ``split`` (labels ignored), a seeded subset of ``max_images``."""
    from semclust.data.registry import open_source
    from semclust.ssl.data import source_arrays

    source = open_source(f"dataset:{dataset}:{split}", data_root=data_root)
    if max_images is None or max_images >= len(source):
        return source_arrays(source)[0]
    keep = np.sort(np.random.default_rng(seed + 17).choice(len(source), size=max_images, replace=False))
    return np.stack([np.asarray(source.load(int(i)).convert("RGB"), dtype=np.uint8) for i in keep])


@dataclass
class SSLData:
    """What one semi-supervised run trains on and is scored on, and what its records say about it.

    Images are uint8 ``[n,H,W]`` or ``[n,H,W,C]``; ``y_ulb`` (monitoring only) and the test set
    may be None. ``defaults`` names the per-dataset defaults (batch, steps, flips) that apply.
    ``record`` and ``config`` go into ``metrics.json`` and ``run.json``'s ``config``; ``extra``
    into ``run.json`` itself. ``long_tailed`` adds head/medium/tail accuracies to the record.
    """

    name: str
    x_lb: np.ndarray
    y_lb: np.ndarray
    x_ulb: np.ndarray
    num_classes: int
    class_names: list[str]
    summary: str
    y_ulb: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    defaults: str = ""
    record: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    long_tailed: bool = False

    @property
    def labelled_counts(self) -> np.ndarray:
        return np.bincount(self.y_lb, minlength=self.num_classes)


def _dataset_arrays(dataset: str, seed: int, data_root: str | None, image_size: int | None):
    from semclust.ssl.data import resize_uint8

    name = dataset.removeprefix("dataset:").strip().lower()
    if image_size is not None and image_size < 8:
        raise ValueError(f"image_size must be at least 8, got {image_size}")
    x_train, y_train, x_test, y_test, test_split = load_train_test(name, seed, data_root)
    size = image_size or DEFAULT_IMAGE_SIZE.get(name)
    if size is not None:
        x_train, x_test = resize_uint8(x_train, size), resize_uint8(x_test, size)
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    return name, x_train, y_train, x_test, y_test, test_split, size, num_classes


def _shape(x: np.ndarray) -> list[int]:
    return [int(x.shape[1]), int(x.shape[2])]


@renamed_keywords({"seed": "random_state"})
def balanced_data(
    dataset: str,
    labels_per_class: int,
    *,
    random_state: int = 0,
    data_root: str | None = None,
    image_size: int | None = None,
) -> SSLData:
    """``labels_per_class`` seeded true labels per class of the train split; every train image
    (the labelled ones included, as in FixMatch) is unlabelled data; scored on the test split."""
    seed = random_state  # the CLI's --seed
    from semclust.ssl.data import labels_per_class_split

    if labels_per_class < 1:
        raise ValueError(f"labels_per_class must be at least 1, got {labels_per_class}")
    name, x_train, y_train, x_test, y_test, test_split, _, num_classes = _dataset_arrays(
        dataset, seed, data_root, image_size
    )
    lb, _ = labels_per_class_split(y_train, labels_per_class, seed)
    return SSLData(
        name=name, x_lb=x_train[lb], y_lb=y_train[lb], x_ulb=x_train, y_ulb=y_train, x_test=x_test, y_test=y_test,
        num_classes=num_classes, class_names=[str(c) for c in range(num_classes)], defaults=name,
        summary=f"{name}: {len(lb)} labelled ({labels_per_class}/class), {len(x_train)} unlabelled, "
        f"{len(x_test)} test ({test_split}), {x_train.shape[1]}x{x_train.shape[2]} px",
        record={"labels_per_class": labels_per_class, "n_labelled": int(len(lb))},
        config={"dataset": name, "labels_per_class": labels_per_class, "image_size": _shape(x_train),
                "test_split": test_split, "n_labelled": int(len(lb)), "n_unlabelled": int(len(x_train)),
                "n_test": int(len(x_test)), "labelled_indices": [int(i) for i in lb]},
    )  # fmt: skip


@renamed_keywords({"seed": "random_state"})
def longtail_data(
    dataset: str,
    n1: int,
    m1: int | None,
    gamma_l: float = 100.0,
    gamma_u: float | None = None,
    class_order: Any = "random",
    *,
    random_state: int = 0,
    data_root: str | None = None,
    image_size: int | None = None,
    unlabelled_split: str | None = None,
    max_unlabelled: int | None = None,
) -> SSLData:
    """A seeded long-tailed split of the train split (see :func:`run_longtail`)."""
    seed = random_state  # the CLI's --seed
    from semclust.ssl.data import resize_uint8
    from semclust.ssl.longtail import make_longtail_split

    if unlabelled_split is not None:
        if m1 is not None or gamma_u is not None:
            raise ValueError(
                f"with unlabelled split {unlabelled_split!r} the unlabelled class counts are unknown: "
                "leave m1 and gamma_u unset (max_unlabelled limits the number of images)"
            )
        if max_unlabelled is not None and max_unlabelled < 1:
            raise ValueError(f"max_unlabelled must be at least 1, got {max_unlabelled}")
        m1, gamma_u = 0, 1.0
    gamma_u = gamma_l if gamma_u is None else gamma_u
    for option, value in [("n1", n1)] + ([("m1", m1)] if unlabelled_split is None else []):
        if value is None or value < 1:
            raise ValueError(f"{option} must be at least 1, got {value}")
    assert m1 is not None
    if gamma_l < 1 or abs(gamma_u) < 1:
        raise ValueError(f"gamma_l must be >= 1 and |gamma_u| >= 1, got {gamma_l} and {gamma_u}")
    name, x_train, y_train, x_test, y_test, test_split, size, num_classes = _dataset_arrays(
        dataset, seed, data_root, image_size
    )
    x_extra = None
    if unlabelled_split is not None:
        x_extra = load_unlabelled(name, unlabelled_split, data_root, max_unlabelled, seed)
        x_extra = x_extra if size is None else resize_uint8(x_extra, size)
    split = make_longtail_split(y_train, n1, m1, gamma_l, gamma_u, seed, class_order=class_order,
                                num_classes=num_classes)  # fmt: skip
    lb, ulb = split.labelled, split.unlabelled
    if x_extra is not None:
        if x_extra.shape[1:] != x_train.shape[1:]:
            raise ValueError(
                f"unlabelled split {unlabelled_split!r} images are {x_extra.shape[1:]}, "
                f"train images {x_train.shape[1:]}"
            )
        x_ulb, y_ulb = x_extra, None
    else:
        x_ulb, y_ulb = x_train[ulb], y_train[ulb]
    return SSLData(
        name=f"{name}-lt", x_lb=x_train[lb], y_lb=y_train[lb], x_ulb=x_ulb, y_ulb=y_ulb, x_test=x_test, y_test=y_test,
        num_classes=num_classes, class_names=[str(c) for c in range(num_classes)], defaults=name, long_tailed=True,
        summary=f"{name}-LT: {len(lb)} labelled (N1 {n1}, gamma_l {gamma_l:g}), {len(x_ulb)} unlabelled "
        + (f"(M1 {m1}, gamma_u {gamma_u:g})" if x_extra is None else f"(the {unlabelled_split} split)")
        + f", {len(x_test)} test ({test_split})",
        record={"n1": n1, "m1": m1 if x_extra is None else None, "gamma_l": gamma_l,
                "gamma_u": gamma_u if x_extra is None else None, "unlabelled_split": unlabelled_split,
                "n_labelled": int(len(lb)), "n_unlabelled": int(len(x_ulb))},
        config={"dataset": name, "image_size": _shape(x_train), "test_split": test_split, "n_test": int(len(x_test))},
        extra={"split": split.to_dict()},
    )  # fmt: skip


def folder_data(
    labelled: str | Path,
    unlabelled: str | None = None,
    test: str | Path | None = None,
    *,
    image_size: int | None = None,
    data_root: str | None = None,
) -> SSLData:
    """The user's images (:func:`semclust.ssl.folders.read_folders`): classes are the labelled
    folder's subfolders; the unlabelled images are ``unlabelled``'s plus the labelled ones (as
    in FixMatch); scored on ``test`` when given."""
    from semclust.ssl.folders import DEFAULT_FOLDER_IMAGE_SIZE, describe_skipped, read_folders

    size = image_size or DEFAULT_FOLDER_IMAGE_SIZE
    images = read_folders(labelled, unlabelled, test, size=size, data_root=data_root)
    x_ulb = np.concatenate([images.x_ulb, images.x_lb]) if len(images.x_ulb) else images.x_lb
    n_test = 0 if images.x_test is None else len(images.x_test)
    skipped = describe_skipped(images.skipped)
    counts = np.bincount(images.y_lb, minlength=len(images.class_names))
    return SSLData(
        name="folder", x_lb=images.x_lb, y_lb=images.y_lb, x_ulb=x_ulb, x_test=images.x_test, y_test=images.y_test,
        num_classes=len(images.class_names), class_names=images.class_names, defaults="folder",
        summary=f"{labelled}: {len(images.x_lb)} labelled in {len(images.class_names)} classes "
        f"({', '.join(images.class_names[:6])}{', ...' if len(images.class_names) > 6 else ''}), "
        f"{len(x_ulb)} unlabelled, " + (f"{n_test} test" if n_test else "no test folder")
        + f", {size}x{size} {'grey' if images.channels == 1 else 'RGB'}",
        record={"n_labelled": int(len(images.x_lb)), "n_unlabelled": int(len(x_ulb)), "n_classes": len(counts)},
        config={"labelled": str(labelled), "unlabelled": unlabelled, "test": None if test is None else str(test),
                "class_names": images.class_names, "labelled_counts": [int(c) for c in counts],
                "image_size": [size, size], "channels": images.channels, "n_labelled": int(len(images.x_lb)),
                "n_unlabelled": int(len(x_ulb)), "n_test": n_test},
        extra={"skipped": skipped} if skipped else {},
    )  # fmt: skip
