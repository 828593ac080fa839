"""scikit-learn's bundled 8x8 handwritten digits: a tiny labelled set that needs no download."""

from __future__ import annotations

from typing import Any

import numpy as np

from semclust.data.base import ArraySource

DIGITS_CLASSES: list[str] = [str(d) for d in range(10)]


class DigitsSource(ArraySource):
    """All 1797 digits as 8x8 grayscale; ids are ``all/<index>`` (the set has no splits)."""

    def __init__(self) -> None:
        # Deferred: importing sklearn costs about half a second that other sources never need.
        from sklearn.datasets import load_digits

        bunch = load_digits()
        # Stored intensities run 0..16; stretch them to the full byte range so encoders see
        # the contrast they were trained on.
        images = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
        super().__init__(
            images,
            bunch.target.astype(np.int64),
            class_names=list(DIGITS_CLASSES),
            name="digits",
            id_prefix="all/",
        )

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "split": "all", "n": len(self)}
