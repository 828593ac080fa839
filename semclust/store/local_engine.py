"""The in-process engine: decode, prepare and encode shard by shard in this process.

One thread decodes and prepares (PIL releases the GIL) the next batches while this one runs the
forward pass, so the encoder never waits for a slow file. With the forward pass on every core
the decoding thread takes some of its time, but decoding each batch first and then encoding it
(split over all cores) measured no better: 0.87-0.92 of the bare ONNX Runtime session against
0.86-0.92 for this prefetch, on 2 cores at 128 and 224 px. What had cost far more was numpy's
BLAS spinning beside the session (see :func:`semclust.encoders.runtime.single_threaded_blas`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from semclust.data.base import ImageDecodeError, ImageSource, SkippedItem
from semclust.encoders.base import Encoder
from semclust.store.shards import ProgressCallback, ShardEmbedding, ShardPlan

# Batches decoded ahead of the forward pass: enough to hide a slow file, few enough to bound memory.
PREFETCH_BATCHES = 2


@dataclass
class _DecodedBatch:
    prepared: Any
    positions: list[int]
    skipped: list[SkippedItem]
    n_items: int


def _decode_batch(source: ImageSource, encoder: Encoder, lo: int, hi: int) -> _DecodedBatch:
    images, positions, skipped = [], [], []
    for position in range(lo, hi):
        try:
            images.append(source.load(position))
            positions.append(position)
        except ImageDecodeError as err:
            skipped.append(SkippedItem(err.item_id, err.reason))
    return _DecodedBatch(encoder.prepare_images(images) if images else None, positions, skipped, hi - lo)


def embed_shards_local(
    source: ImageSource,
    encoder: Encoder,
    shards: Sequence[ShardPlan],
    on_progress: ProgressCallback | None = None,
) -> Iterator[ShardEmbedding]:
    """One :class:`ShardEmbedding` per shard, decoding ahead of the forward pass (module docstring)."""
    batches = [
        (lo, min(shard.stop, lo + encoder.batch_size))
        for shard in shards
        for lo in range(shard.start, shard.stop, encoder.batch_size)
    ]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="semclust-decode") as pool:
        ahead: deque[Future[_DecodedBatch]] = deque()
        next_batch = 0

        def fill() -> None:
            nonlocal next_batch
            while len(ahead) < PREFETCH_BATCHES and next_batch < len(batches):
                lo, hi = batches[next_batch]
                ahead.append(pool.submit(_decode_batch, source, encoder, lo, hi))
                next_batch += 1

        try:
            fill()
            for shard in shards:
                views: dict[str, list[np.ndarray]] = {}
                kept: list[int] = []
                skipped: list[SkippedItem] = []
                for _ in range(shard.start, shard.stop, encoder.batch_size):
                    decoded = ahead.popleft().result()
                    fill()
                    skipped.extend(decoded.skipped)
                    if decoded.positions:
                        for name, array in encoder.views_from_prepared(decoded.prepared).items():
                            views.setdefault(name, []).append(np.asarray(array))
                        kept.extend(decoded.positions)
                    if on_progress:
                        on_progress(decoded.n_items)
                yield ShardEmbedding(shard.index, {name: np.concatenate(v) for name, v in views.items()}, kept, skipped)
        finally:
            for future in ahead:
                future.cancel()
