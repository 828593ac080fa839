"""Image -> tensor preprocessing without torchvision (it does not import beside torch 2.13)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image


@dataclass(frozen=True)
class Preprocessing:
    """Resize the shorter side to ``image_size`` (bicubic), centre-crop a square, normalise."""

    image_size: int = 224
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def to_dict(self) -> dict:
        return asdict(self)


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


def images_to_array(images: Sequence[Image.Image], prep: Preprocessing) -> np.ndarray:
    """float32 [n, 3, S, S] normalised batch, ``(pixel / 255 - mean) / std``."""
    pixels = np.stack([np.asarray(resize_center_crop(img.convert("RGB"), prep.image_size)) for img in images])
    std = np.asarray(prep.std, dtype=np.float32)
    scale = 1.0 / (255.0 * std)
    shift = np.asarray(prep.mean, dtype=np.float32) / std
    batch = np.empty((len(pixels), 3, prep.image_size, prep.image_size), dtype=np.float32)
    # Channel by channel into the NCHW output: 3x faster than transposing, then converting, the
    # whole batch (measured), which matters because this runs on the cores the forward pass uses.
    for channel in range(3):
        np.multiply(pixels[..., channel], scale[channel], out=batch[:, channel], dtype=np.float32)
        batch[:, channel] -= shift[channel]
    return batch


def images_to_tensor(images: Sequence[Image.Image], prep: Preprocessing) -> torch.Tensor:
    """float32 [n, 3, S, S] normalised batch (:func:`images_to_array` as a tensor)."""
    return torch.from_numpy(images_to_array(images, prep))
