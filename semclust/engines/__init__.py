"""Embedding engines: what computes a feature store's shards.

``local`` (the default) decodes and encodes in this process; ``ray`` spreads decoding over Ray
tasks and encoding over a pool of Ray actors (GPU actors when the cluster has GPUs). Both hand
:func:`semclust.store.feature_store.build_store` one :class:`ShardEmbedding` per unfinished
shard, so the store they write (manifest, shard files, resume rule) is the same.
"""

from __future__ import annotations

from typing import Any

from semclust.store.local_engine import embed_shards_local
from semclust.store.shards import ShardEmbedder, ShardEmbedding, ShardPlan

ENGINES = ("local", "ray")

__all__ = ["ENGINES", "ShardEmbedder", "ShardEmbedding", "ShardPlan", "embed_shards_local", "get_engine"]


def get_engine(name: str = "local", **options: Any) -> ShardEmbedder:
    """The engine called ``name``; ``options`` go to :class:`semclust.engines.ray.RayEngine`
    (``address``, ``num_actors``, ``device``, ...). ``local`` takes none."""
    if name == "local":
        if any(value is not None for value in options.values()):
            raise ValueError(f"the local engine takes no options, got {', '.join(sorted(options))}")
        return embed_shards_local
    if name == "ray":
        from semclust.engines.ray import RayEngine

        return RayEngine(**options)
    raise ValueError(f"unknown engine {name!r}; expected one of: {', '.join(ENGINES)}")
