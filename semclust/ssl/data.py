"""Data for semi-supervised training: uint8 arrays in memory, seeded splits, an infinite sampler.

Everything here is deterministic for a fixed seed, and :class:`InfiniteSampler` can save and
restore its exact position so that a resumed run draws the same batches as an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from semclust.data.base import ArraySource, ImageSource


def source_arrays(source: ImageSource) -> tuple[np.ndarray, np.ndarray | None]:
    """``(uint8 [n,H,W] or [n,H,W,3], int64 labels or None)`` for every image of ``source``.

    Array-backed sources (Fashion-MNIST, digits, ...) hand over their array directly; other
    sources are decoded image by image (as RGB) and must all share one size.
    """
    labels = None if source.labels is None else np.asarray(source.labels, dtype=np.int64)
    if isinstance(source, ArraySource):
        return np.asarray(source.pixels), labels
    arrays = [np.asarray(source.load(i).convert("RGB"), dtype=np.uint8) for i in range(len(source))]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"{getattr(source, 'name', 'source')}: images differ in size ({sorted(shapes)[:3]}...)")
    if not arrays:
        raise ValueError(f"{getattr(source, 'name', 'source')}: no images")
    return np.stack(arrays), labels


def resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of uint8 ``[n,H,W]`` or ``[n,H,W,C]`` to ``size x size`` (uint8 out)."""
    images = np.asarray(images)
    if images.shape[1] == size and images.shape[2] == size:
        return images
    gray = images.ndim == 3
    x = torch.from_numpy(np.ascontiguousarray(images)).float()
    x = x.unsqueeze(1) if gray else x.permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x.round().clamp(0, 255).to(torch.uint8)
    x = x[:, 0] if gray else x.permute(0, 2, 3, 1)
    return x.contiguous().numpy()


def labels_per_class_split(labels: Any, n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded choice of exactly ``n_per_class`` labelled items per class.

    Returns sorted ``(labelled_idx, unlabelled_idx)``; the unlabelled indices are every other
    item (including those whose label is negative, i.e. unknown).
    """
    labels = np.asarray(labels, dtype=np.int64)
    if n_per_class < 1:
        raise ValueError(f"labels per class must be at least 1, got {n_per_class}")
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels[labels >= 0]):
        idx = np.flatnonzero(labels == c)
        if len(idx) < n_per_class:
            raise ValueError(f"class {int(c)} has only {len(idx)} items, fewer than {n_per_class} labels per class")
        chosen.append(rng.choice(idx, size=n_per_class, replace=False))
    if not chosen:
        raise ValueError("no item has a known (non-negative) label")
    labelled = np.sort(np.concatenate(chosen))
    mask = np.ones(len(labels), dtype=bool)
    mask[labelled] = False
    return labelled, np.flatnonzero(mask)


def holdout_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ``(train_idx, test_idx)``, sorted, with ``round(fraction * n)`` test items."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"held-out fraction must be in (0, 1), got {fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(fraction * n))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


class InfiniteSampler:
    """Endless batches of indices into ``range(n)``: seeded reshuffle each pass, batches may span passes.

    ``state_dict()`` holds the generator state, the current permutation and the position, so a
    restored sampler continues with exactly the batches the original would have produced.
    """

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        if n < 1:
            raise ValueError("sampler needs at least one item")
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        self.n, self.batch_size = n, batch_size
        self.generator = torch.Generator().manual_seed(int(seed))
        self.perm = torch.randperm(n, generator=self.generator)
        self.pos = 0

    def next(self) -> torch.Tensor:
        parts, need = [], self.batch_size
        while need > 0:
            if self.pos >= self.n:
                self.perm = torch.randperm(self.n, generator=self.generator)
                self.pos = 0
            take = min(need, self.n - self.pos)
            parts.append(self.perm[self.pos : self.pos + take])
            self.pos += take
            need -= take
        return torch.cat(parts)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "perm": self.perm.clone(), "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["perm"]) != self.n:
            raise ValueError(f"sampler state is for {len(state['perm'])} items, this data has {self.n}")
        self.generator.set_state(state["generator"])
        self.perm = state["perm"].clone().to(torch.int64)
        self.pos = int(state["pos"])
