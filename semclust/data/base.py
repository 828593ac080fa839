"""The one notion of a collection of images that every later stage reads from."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image


class ImageDecodeError(Exception):
    """One item could not be turned into an RGB image; the run records it and goes on."""

    def __init__(self, item_id: str, reason: str) -> None:
        super().__init__(f"{item_id}: {reason}")
        self.item_id = item_id
        self.reason = reason


class SourceError(ValueError):
    """A source as a whole cannot be opened (missing files, unknown name, wrong layout)."""


@dataclass(frozen=True)
class SkippedItem:
    item_id: str
    reason: str


class ImageSource(ABC):
    """An ordered collection of images.

    ``ids`` are stable strings (relative paths for folders, ``split/index`` for datasets) so
    assignments can be written and joined back. ``labels`` holds int64 class indices, or is
    ``None`` when the source has no ground truth.
    """

    name: str = "source"
    # Subclasses fill these in __init__; the properties below expose them read-only.
    _ids: list[str]
    _labels: np.ndarray | None = None
    _class_names: list[str] | None = None

    @property
    def ids(self) -> list[str]:
        return self._ids

    @abstractmethod
    def load(self, index: int) -> Image.Image:
        """Return item ``index`` as an RGB or greyscale (``L``) PIL image, or raise
        :class:`ImageDecodeError`. Consumers convert to the mode they need; greyscale stays
        ``L`` where a source holds it so, because resizing one channel is a third of the work."""

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def labels(self) -> np.ndarray | None:
        return self._labels

    @property
    def class_names(self) -> list[str] | None:
        return self._class_names

    def describe(self) -> dict[str, Any]:
        """JSON-able identity of the source, stored in manifests and run records."""
        return {"name": self.name, "n": len(self)}


class ArraySource(ImageSource):
    """Images held in memory as a uint8 array ``[n, H, W]`` (grayscale) or ``[n, H, W, 3]``."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray | None = None,
        class_names: list[str] | None = None,
        name: str = "array",
        id_prefix: str = "",
    ) -> None:
        images = np.asarray(images)
        if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
            raise SourceError(f"{name}: images must be [n,H,W] or [n,H,W,3], got {images.shape}")
        if images.dtype != np.uint8:
            raise SourceError(f"{name}: images must be uint8, got {images.dtype}")
        if labels is not None and len(labels) != len(images):
            raise SourceError(f"{name}: {len(labels)} labels for {len(images)} images")
        self._images = images
        self._labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self._class_names = class_names
        self.name = name
        self._ids = [f"{id_prefix}{i}" for i in range(len(images))]

    @property
    def pixels(self) -> np.ndarray:
        """The uint8 images as held, ``[n, H, W]`` or ``[n, H, W, 3]`` (not a copy: do not write)."""
        return self._images

    def load(self, index: int) -> Image.Image:
        array = self._images[index]
        return Image.fromarray(array, mode="L" if array.ndim == 2 else "RGB")
