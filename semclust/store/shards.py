"""What an embedding engine is handed and hands back: shard plans in, shard embeddings out."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from semclust.data.base import ImageSource, SkippedItem
from semclust.encoders.base import Encoder

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class ShardPlan:
    """One shard to embed: source positions ``start`` to ``stop`` (exclusive)."""

    index: int
    start: int
    stop: int


@dataclass
class ShardEmbedding:
    """An engine's result for one shard: the views of the items kept, in position order."""

    index: int
    views: dict[str, np.ndarray]
    positions: list[int]
    skipped: list[SkippedItem]


# An engine: (source, encoder, shards still to embed, progress) -> one ShardEmbedding per
# shard. build_store writes each as it arrives, so memory holds a few shards at most.
ShardEmbedder = Callable[[ImageSource, Encoder, Sequence[ShardPlan], ProgressCallback | None], Iterator[ShardEmbedding]]
