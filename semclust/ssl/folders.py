"""A user's own images for semi-supervised training: a labelled folder (one subfolder per class),
an unlabelled folder or dataset, an optional labelled test folder, all brought to one size.

Every image is read the same way, here and when a saved model classifies new images
(:mod:`semclust.ssl.saved_model`): decoded, converted to grey (``L``) or RGB, and bilinearly
resized to ``size x size`` (the aspect ratio is not kept: a few square pixels per image are
what the small networks read). Grey or RGB is decided by the labelled images: grey when every
one of them is grey (mode ``L``, or RGB with equal channels), RGB otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from semclust.data.base import ImageDecodeError, ImageSource, SkippedItem
from semclust.data.pixels import image_pixels

DEFAULT_FOLDER_IMAGE_SIZE = 32
GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def is_grey(image: Image.Image) -> bool:
    if image.mode in GREY_MODES:
        return True
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def read_source(
    source: ImageSource,
    size: int,
    channels: int,
    advance: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, list[int], list[SkippedItem]]:
    """``(pixels [n,size,size(,3)], indices of the images read, skipped)``: files that do not
    decode are skipped, not fatal."""
    image_shape = (size, size) if channels == 1 else (size, size, 3)
    rows: list[np.ndarray] = []
    kept: list[int] = []
    skipped: list[SkippedItem] = []
    for i in range(len(source)):
        try:
            rows.append(image_pixels(source.load(i), image_shape))
            kept.append(i)
        except ImageDecodeError as err:
            skipped.append(SkippedItem(err.item_id, err.reason))
        if advance is not None:
            advance(1)
    pixels = np.stack(rows) if rows else np.zeros((0, *image_shape), dtype=np.uint8)
    return pixels, kept, skipped


@dataclass
class FolderImages:
    """The user's images, read: what :func:`semclust.ssl.experiment.folder_data` trains on."""

    x_lb: np.ndarray
    y_lb: np.ndarray
    x_ulb: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    class_names: list[str]
    channels: int
    skipped: dict[str, list[SkippedItem]]


def read_folders(
    labelled: str | os.PathLike[str],
    unlabelled: str | None = None,
    test: str | os.PathLike[str] | None = None,
    *,
    size: int = DEFAULT_FOLDER_IMAGE_SIZE,
    data_root: str | None = None,
) -> FolderImages:
    """Read ``labelled`` (class = first-level subfolder), ``unlabelled`` (a folder or
    ``dataset:NAME[:split]``, labels ignored; None: no images besides the labelled ones) and
    ``test`` (labelled like ``labelled``; its class folders must be among the labelled ones)."""
    from semclust.data.folder import FolderSource
    from semclust.data.registry import open_source

    if size < 8:
        raise ValueError(f"image size must be at least 8, got {size}")
    lb_source = FolderSource(labelled, labels_from_folders=True)
    class_names = list(lb_source.class_names or [])
    if len(class_names) < 2:
        raise ValueError(
            f"labelled folder {lb_source.root} has {len(class_names)} class folder(s) "
            f"({', '.join(class_names) or 'none'}); need at least 2, one subfolder per class"
        )
    grey = all(_grey_or_unreadable(lb_source, i) for i in range(len(lb_source)))
    channels = 1 if grey else 3
    skipped: dict[str, list[SkippedItem]] = {}
    x_lb, kept, skipped["labelled"] = read_source(lb_source, size, channels)
    labels = np.asarray(lb_source.labels, dtype=np.int64)
    y_lb = labels[kept]
    missing = [class_names[c] for c in range(len(class_names)) if not (y_lb == c).any()]
    if missing:
        raise ValueError(f"labelled folder {lb_source.root}: no readable image in class folder(s) {', '.join(missing)}")
    x_ulb = np.zeros((0, *x_lb.shape[1:]), dtype=np.uint8)
    if unlabelled is not None:
        ulb_source = open_source(unlabelled, data_root=data_root)
        x_ulb, _, skipped["unlabelled"] = read_source(ulb_source, size, channels)
        if len(x_ulb) == 0:
            raise ValueError(f"unlabelled source {unlabelled}: no readable images")
    x_test = y_test = None
    if test is not None:
        test_source = FolderSource(test, labels_from_folders=True)
        index = {name: k for k, name in enumerate(class_names)}
        unknown = [name for name in test_source.class_names or [] if name not in index]
        if unknown:
            raise ValueError(
                f"test folder {test_source.root}: class folder(s) {', '.join(unknown)} are not among the "
                f"labelled classes ({', '.join(class_names)})"
            )
        x_test, kept_test, skipped["test"] = read_source(test_source, size, channels)
        test_names = list(test_source.class_names or [])
        y_test = np.asarray([index[test_names[int(c)]] for c in np.asarray(test_source.labels)[kept_test]], np.int64)
    return FolderImages(x_lb, y_lb, x_ulb, x_test, y_test, class_names, channels, skipped)


def _grey_or_unreadable(source: ImageSource, index: int) -> bool:
    try:
        return is_grey(source.load(index))
    except ImageDecodeError:
        return True  # skipped when read; it decides nothing


def describe_skipped(skipped: dict[str, list[SkippedItem]]) -> dict[str, Any]:
    return {part: [{"id": s.item_id, "reason": s.reason} for s in items] for part, items in skipped.items() if items}
