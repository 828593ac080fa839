"""The in-process engine (today's path): decode and encode shard by shard in this process."""

from __future__ import annotations

from semclust.store.local_engine import embed_shards_local

LocalEngine = embed_shards_local

__all__ = ["LocalEngine", "embed_shards_local"]
