"""uint8 pixels of a source's images, for methods that train on the images themselves (ASD)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from semclust.data.base import ArraySource


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
    from PIL import Image

    out = np.empty((len(rows), size, size, 3), dtype=np.uint8)
    for j, i in enumerate(rows):
        image = source.load(int(i)).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        out[j] = np.asarray(image, dtype=np.uint8)
    return out, list(ids)
