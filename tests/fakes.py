"""Small deterministic stand-ins the tests build on (importable from subprocesses too)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from semclust.data.base import ArraySource, ImageDecodeError
from semclust.encoders.base import Encoder, l2_normalize


class ColourEncoder(Encoder):
    """joint = normalised mean RGB + 1, visual = normalised 4x4 thumbnail; texts hash to vectors.

    ``delay_s`` slows every batch so a test can kill a run part-way.
    """

    name = "colour"
    dim = 4

    def __init__(self, batch_size: int = 4, delay_s: float = 0.0) -> None:
        self.batch_size = batch_size
        self.delay_s = delay_s
        self.device = "cpu"

    @property
    def view_dims(self) -> dict[str, int]:
        return {"joint": 4, "visual": 48}

    def image_views(self, images: Sequence[Image.Image]) -> dict[str, np.ndarray]:
        if self.delay_s:
            time.sleep(self.delay_s)
        arrays = [np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0 for img in images]
        joint = np.stack([np.append(a.mean(axis=(0, 1)), 1.0) for a in arrays])
        visual = np.stack(
            [np.asarray(img.convert("RGB").resize((4, 4)), dtype=np.float32).ravel() + 1 for img in images]
        )
        return {"joint": l2_normalize(joint), "visual": l2_normalize(visual)}

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[:4], dtype=np.uint8) for t in texts]
        return l2_normalize(np.stack(rows).astype(np.float32) + 1)

    def config(self) -> dict:
        return {"name": self.name, "spec": "colour", "dim": self.dim, "views": self.view_dims}


class BrokenArraySource(ArraySource):
    """An in-memory source whose items at ``broken`` positions fail to decode (picklable, so
    Ray workers can load it too)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None, broken: set[int]) -> None:
        super().__init__(images, labels, name="broken")
        self.broken = set(broken)

    def load(self, index: int) -> Image.Image:
        if index in self.broken:
            raise ImageDecodeError(self.ids[index], "truncated file")
        return super().load(index)


def colour_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n 8x8 RGB images in three colour classes (red, green, blue) with noise; and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    base = np.zeros((n, 8, 8, 3), dtype=np.float32)
    base[np.arange(n), :, :, labels] = 200
    images = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    return images, labels


def band_images(n: int, seed: int = 0, first_row: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three separable classes of 8x8 uint8 noise images: class c has a bright band in rows
    ``first_row + 2c`` and the next. Labels cycle 0, 1, 2."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.integers(0, 60, size=(n, 8, 8)).astype(np.uint8)
    for c in range(3):
        x[y == c, first_row + 2 * c : first_row + 2 * c + 2, :] += 180
    return x, y


class TinyNet(nn.Module):
    """conv + BN + dropout + linear: BN buffers, both weight-decay groups and dropout randomness."""

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.2)
        self.classifier = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.drop(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3))))


def tiny_net(num_classes: int, in_channels: int) -> nn.Module:
    return TinyNet(num_classes, in_channels)
