"""uint8 pixels of a source's images, for methods that train on the images themselves (ASD)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from semclust.data.base import ArraySource

MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def image_pixels(image: Image.Image, shape: Sequence[int]) -> np.ndarray:
    """uint8 pixels of ``image`` in ``shape``: ``(H, W)`` grey, ``(H, W, 1)`` grey with a channel
    axis, or ``(H, W, C)``; converted to that mode and resized bilinearly. The one reader of
    decoded images into arrays: ASD's images, ssl folders, and predictions on new files."""
    channels = shape[2] if len(shape) == 3 else 1
    if channels not in MODES or len(shape) not in (2, 3):
        raise ValueError(f"cannot bring images to shape {list(shape)}")
    height, width = int(shape[0]), int(shape[1])
    resized = image.convert(MODES[channels]).resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized, dtype=np.uint8)
    return pixels[..., None] if len(shape) == 3 and channels == 1 else pixels


def source_images(source: Any, ids: Sequence[str], size: int = 32) -> tuple[np.ndarray, list[str]]:
    """uint8 images of ``source`` in the order of ``ids`` (e.g. a feature store's, which leaves
    out items that failed to decode). Array-backed sources give their array rows as they are;
    other sources are decoded as RGB and resized to ``size x size`` so that they stack."""
    position = {item_id: i for i, item_id in enumerate(source.ids)}
    missing = [item_id for item_id in ids if item_id not in position]
    if missing:
        raise ValueError(f"{len(missing)} ids are not in source {getattr(source, 'name', '')!r}, e.g. {missing[0]!r}")
    rows = np.fromiter((position[item_id] for item_id in ids), dtype=np.int64, count=len(ids))
    if isinstance(source, ArraySource):
        return np.asarray(source.pixels)[rows], list(ids)
    out = np.empty((len(rows), size, size, 3), dtype=np.uint8)
    for j, i in enumerate(rows):
        out[j] = image_pixels(source.load(int(i)), (size, size, 3))
    return out, list(ids)
