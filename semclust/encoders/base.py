"""The encoder contract: images and texts into one L2-normalised space."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from semclust.ops.features import l2_normalize  # noqa: F401 - re-exported for encoders


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/"auto" picks CUDA when present; otherwise the named device, CPU by default."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# Config keys that describe how an encoder ran, not what it computes: a patch release of torch or
# another backend (ONNX Runtime vs PyTorch, equal within 1e-4) must not throw away cached work.
RUNTIME_KEYS = ("versions", "runtime")


def encoder_identity(config: dict[str, Any]) -> dict[str, Any]:
    """The part of an encoder's ``config()`` that changes the numbers it produces."""
    return {key: value for key, value in config.items() if key not in RUNTIME_KEYS}


class Encoder(ABC):
    """Maps images and texts into a shared space.

    ``encode_images`` returns the joint (image-text) embedding. Encoders whose joint space is
    reached through a bridge also expose the visual tower's own features as the ``"visual"``
    view, because image-only steps (neighbours, k-means) work better there.
    """

    name: str
    dim: int
    device: torch.device
    batch_size: int = 64

    @abstractmethod
    def image_views(self, images: Sequence[Image.Image]) -> dict[str, np.ndarray]:
        """One forward pass -> {"joint": float32[n, dim], optional "visual": float32[n, dv]}.

        Every view is L2-normalised row-wise.
        """

    @abstractmethod
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """float32[m, dim], L2-normalised, in the same space as the ``joint`` image view."""

    def prepare_images(self, images: Sequence[Image.Image]) -> Any:
        """The CPU work before the forward pass (resizing, normalising). Engines run it in a
        background thread for the next batch while :meth:`views_from_prepared` runs this one."""
        return images

    def views_from_prepared(self, prepared: Any) -> dict[str, np.ndarray]:
        """:meth:`image_views` of what :meth:`prepare_images` returned."""
        return self.image_views(prepared)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.image_views(images)["joint"]

    @property
    def view_dims(self) -> dict[str, int]:
        """Name -> dimension of every view ``image_views`` returns."""
        return {"joint": self.dim}

    def config(self) -> dict[str, Any]:
        """JSON-able description (name, preprocessing, versions) stored in manifests."""
        return {"name": self.name, "dim": self.dim}

    def text_config(self) -> dict[str, Any]:
        """What determines ``encode_texts``; text caches key on it, so image-side settings
        (image size, bridge) do not force re-embedding a vocabulary."""
        return self.config()
