"""Cached augmented views: ``V`` weak and ``V`` strong augmentations of every image, embedded
once by a frozen encoder into feature stores, so that an SSL step on a frozen backbone costs a
head's forward pass instead of an augmentation and an encoder pass.

View ``v`` of image ``i`` is augmented by a generator seeded from ``(seed, kind, v, i)`` alone,
so it does not depend on the shard, the batch or on how often a killed build was resumed. The
weak transform is FixMatch's flip + crop, the strong one adds RandAugment + Cutout
(:mod:`semclust.ssl.augment`), both at the image's own size (the encoder resizes afterwards).

Layout: ``<root>/weak/<v>`` and ``<root>/strong/<v>`` are ordinary feature stores
(:func:`semclust.store.feature_store.build_store`: resumable shards), one per view ``v`` with
the ``n`` images in order; asking for more views later embeds only the new ones.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from semclust.data.base import ArraySource, ImageSource
from semclust.encoders.base import Encoder
from semclust.store.feature_store import FeatureStore, StoreError, build_store

VIEWS_FORMAT = "augmented-views/1"
KINDS = ("weak", "strong")
_KIND_CODE = {"weak": 1, "strong": 2}


def view_generator_seed(seed: int, kind: str, view: int, index: int) -> int:
    """The torch seed of view ``view`` (of ``kind``) of image ``index``."""
    state = np.random.SeedSequence([int(seed), _KIND_CODE[kind], int(view), int(index)]).generate_state(2)
    return int(state[0]) << 32 | int(state[1])


def augment_image(image: Image.Image, kind: str, generator_seed: int, flip: bool = True) -> Image.Image:
    """One weak or strong augmentation of ``image`` (RGB), as an RGB image of the same size."""
    import torch

    from semclust.ssl.augment import strong_augment, to_float, weak_augment

    if kind not in KINDS:
        raise ValueError(f"unknown view kind {kind!r}; expected one of {', '.join(KINDS)}")
    pixels = np.array(image.convert("RGB"), dtype=np.uint8)[None]  # a writable copy for torch
    generator = torch.Generator().manual_seed(int(generator_seed))
    x = to_float(pixels)
    x = weak_augment(x, generator, flip=flip) if kind == "weak" else strong_augment(x, generator, flip=flip)
    out = (x[0].permute(1, 2, 0).clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).numpy()
    return Image.fromarray(out, mode="RGB")


class AugmentedViewSource(ImageSource):
    """View ``view`` (a seeded ``kind`` augmentation) of every image of ``base``, in order."""

    def __init__(self, base: ImageSource, kind: str, view: int, seed: int = 0, flip: bool = True) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown view kind {kind!r}; expected one of {', '.join(KINDS)}")
        if int(view) < 0:
            raise ValueError(f"view must be >= 0, got {view}")
        self.base, self.kind, self.view, self.seed, self.flip = base, kind, int(view), int(seed), bool(flip)
        self.name = f"{base.name}~{kind}{self.view}"
        self._ids = [f"{item_id}#{kind}{self.view}" for item_id in base.ids]
        self._labels = base.labels
        self._class_names = base.class_names

    def load(self, index: int) -> Image.Image:
        seed = view_generator_seed(self.seed, self.kind, self.view, int(index))
        return augment_image(self.base.load(int(index)), self.kind, seed, flip=self.flip)

    def describe(self) -> dict[str, Any]:
        described = {
            "name": self.name,
            "n": len(self),
            "format": VIEWS_FORMAT,
            "base": self.base.describe(),
            "kind": self.kind,
            "view": self.view,
            "seed": self.seed,
            "flip": self.flip,
        }
        if isinstance(self.base, ArraySource):  # an in-memory source is named by its pixels
            described["pixels_sha256"] = hashlib.sha256(np.ascontiguousarray(self.base.pixels).tobytes()).hexdigest()
        return described


@dataclass
class CachedViews:
    """Features of the cached views: ``weak`` ``[V_weak, n, d]`` and ``strong`` ``[V_strong, n, d]``."""

    weak: np.ndarray
    strong: np.ndarray

    def __post_init__(self) -> None:
        for name in KINDS:
            array = getattr(self, name)
            if array.ndim != 3 or len(array) < 1:
                raise ValueError(f"{name} views must be [V, n, d] with V >= 1, got shape {array.shape}")
        if self.weak.shape[1:] != self.strong.shape[1:]:
            raise ValueError(f"weak views {self.weak.shape} and strong views {self.strong.shape} do not match")

    @property
    def n(self) -> int:
        return int(self.weak.shape[1])

    @property
    def dim(self) -> int:
        return int(self.weak.shape[2])


def build_views(
    source: ImageSource,
    encoder: Encoder,
    root: str | os.PathLike[str],
    *,
    n_weak: int = 4,
    n_strong: int = 4,
    seed: int = 0,
    flip: bool = True,
    view: str = "visual",
    shard_size: int = 2048,
    dtype: str = "float16",
    on_progress: Callable[[int], None] | None = None,
    on_shard_done: Callable[[int], None] | None = None,
) -> CachedViews:
    """Embed (or reuse, or finish a killed build of) the cached views of ``source`` in ``root``;
    returns their ``view`` features aligned with ``source``'s positions."""
    if int(n_weak) < 1 or int(n_strong) < 1:
        raise ValueError(f"need at least one weak and one strong view, got {n_weak} and {n_strong}")
    arrays = {}
    for kind, n_views in (("weak", int(n_weak)), ("strong", int(n_strong))):
        banks = []
        for v in range(n_views):
            directory = Path(root) / kind / str(v)
            build_store(
                AugmentedViewSource(source, kind, v, seed=seed, flip=flip),
                encoder,
                directory,
                shard_size=shard_size,
                dtype=dtype,
                on_progress=on_progress,
                on_shard_done=on_shard_done,
            )
            banks.append(load_views(directory, len(source), view))
        arrays[kind] = np.stack(banks)
    return CachedViews(weak=arrays["weak"], strong=arrays["strong"])


def views_directory(
    root: str | os.PathLike[str],
    pixels: np.ndarray,
    encoder: Encoder,
    seed: int,
    flip: bool,
) -> Path:
    """A directory under ``root`` named by everything that changes the views of ``pixels``."""
    import json

    from semclust.encoders.base import encoder_identity

    key = json.dumps(
        {
            "pixels": hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest(),
            "shape": list(np.shape(pixels)),
            "encoder": encoder_identity(encoder.config()),
            "views": [int(seed), bool(flip)],
        },
        sort_keys=True,
        default=str,
    )
    return Path(root) / hashlib.sha256(key.encode()).hexdigest()[:16]


def load_views(directory: str | os.PathLike[str], n: int, view: str = "visual") -> np.ndarray:
    """``[n, d]`` float32 features of a complete view store of ``n`` images."""
    store = FeatureStore(directory)
    if not store.complete:
        raise StoreError(f"{directory}: the view store is not complete; build it again to resume")
    if store.skipped:
        first = store.skipped[0]
        raise StoreError(f"{directory}: {len(store.skipped)} views failed to decode, e.g. {first.item_id}")
    features = store.load(view)
    if len(features) != n:
        raise StoreError(f"{directory}: {len(features)} views, expected {n}")
    return features
