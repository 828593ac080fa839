"""The feature store: embeddings of a source in resumable shards plus a JSON manifest.

Layout of a store directory::

    manifest.json            what was embedded, with what, and whether it is complete
    shards/00000.json        item positions kept, their ids and labels, items skipped
    shards/00000.joint.npy   one array per view ("joint", "visual", ...)

A shard's JSON is written last and atomically, so its presence means the shard is finished:
a run killed part-way resumes at the first shard without one. Memory is bounded by one
shard of features plus one batch of decoded images.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from semclust.atomic import as_stored_json, read_json, write_json, write_npy
from semclust.data.base import ImageSource, SkippedItem
from semclust.encoders.base import Encoder, encoder_identity
from semclust.store.local_engine import embed_shards_local
from semclust.store.shards import ProgressCallback, ShardEmbedder, ShardPlan

STORE_FORMAT = "semclust-features/1"
MANIFEST = "manifest.json"


class StoreError(ValueError):
    pass


class StoreLockedError(StoreError):
    pass


def _identity(encoder_config: dict[str, Any]) -> dict[str, Any]:
    """The part of an encoder's config that changes the numbers (versions do not block reuse)."""
    return encoder_identity(as_stored_json(encoder_config))


@dataclass
class BuildReport:
    n_items: int
    n_embedded: int
    skipped: list[SkippedItem]
    shards_written: int
    shards_reused: int
    wall_s: float
    n_computed: int = 0  # items decoded and embedded by this call (not in reused shards)

    @property
    def items_per_s(self) -> float | None:
        """Items embedded per second by this call, decoding included; None when all were reused."""
        return round(self.n_computed / self.wall_s, 1) if self.n_computed and self.wall_s > 0 else None


class FeatureStore:
    """Read side of a finished (or partial) store."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        manifest_path = self.root / MANIFEST
        if not manifest_path.is_file():
            raise StoreError(f"{self.root} is not a feature store (no {MANIFEST})")
        self.manifest: dict[str, Any] = read_json(manifest_path)
        if self.manifest.get("format") != STORE_FORMAT:
            raise StoreError(f"{manifest_path}: unknown format {self.manifest.get('format')!r}")
        self._shards = [read_json(p) for p in self._shard_json_paths()]

    @staticmethod
    def is_store(path: str | os.PathLike[str]) -> bool:
        return (Path(path) / MANIFEST).is_file()

    def _shard_json_paths(self) -> list[Path]:
        n_shards = self.manifest["n_shards"]
        paths = [self.root / "shards" / f"{i:05d}.json" for i in range(n_shards)]
        return [p for p in paths if p.is_file()]

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete"))

    @property
    def encoder_config(self) -> dict[str, Any]:
        return self.manifest["encoder"]

    @property
    def views(self) -> dict[str, int]:
        return self.manifest["views"]

    @property
    def class_names(self) -> list[str] | None:
        return self.manifest.get("class_names")

    @property
    def ids(self) -> list[str]:
        return [item_id for shard in self._shards for item_id in shard["ids"]]

    @property
    def labels(self) -> np.ndarray | None:
        if not self.manifest.get("has_labels"):
            return None
        return np.array([y for shard in self._shards for y in shard["labels"]], dtype=np.int64)

    @property
    def skipped(self) -> list[SkippedItem]:
        return [SkippedItem(**s) for shard in self._shards for s in shard["skipped"]]

    def __len__(self) -> int:
        return sum(len(shard["ids"]) for shard in self._shards)

    def iter_shards(self, view: str = "joint") -> Iterator[np.ndarray]:
        """Memory-mapped arrays, one per shard, so huge stores stream."""
        if view not in self.views:
            raise StoreError(f"view {view!r} not in store {self.root} (has {', '.join(self.views)})")
        for shard in self._shards:
            path = self.root / "shards" / f"{shard['index']:05d}.{view}.npy"
            try:
                array = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as err:
                raise StoreError(f"{path}: unreadable shard ({err}); rebuild the store with force=True") from None
            expected = (len(shard["ids"]), self.views[view])
            if array.shape != expected:
                raise StoreError(
                    f"{path}: shape {array.shape} does not match the manifest {expected}; "
                    "rebuild the store with force=True"
                )
            yield array

    def load(self, view: str = "joint", dtype: type = np.float32) -> np.ndarray:
        arrays = list(self.iter_shards(view))
        if not arrays:
            return np.zeros((0, self.views[view]), dtype=dtype)
        return np.concatenate(arrays).astype(dtype, copy=False)


def build_store(
    source: ImageSource,
    encoder: Encoder,
    out_dir: str | os.PathLike[str],
    *,
    shard_size: int = 2048,
    dtype: str = "float16",
    force: bool = False,
    on_progress: ProgressCallback | None = None,
    on_shard_done: Callable[[int], None] | None = None,
    embedder: ShardEmbedder | None = None,
) -> BuildReport:
    """Embed ``source`` into ``out_dir``, reusing shards an earlier identical run finished.

    ``on_progress(n)`` is told of every n items handled (embedded or skipped), including
    reused shards, so a progress bar can start where the last run stopped.
    ``embedder`` computes the unfinished shards (default :func:`embed_shards_local`; see
    ``semclust.engines`` for Ray); the manifest and shard files are the same whichever runs.
    """
    if dtype not in ("float16", "float32"):
        raise StoreError(f"dtype must be float16 or float32, got {dtype!r}")
    if shard_size < 1:
        raise StoreError(f"shard_size must be >= 1, got {shard_size}")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(root / ".lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise StoreLockedError(
            f"feature store {root} is being written by another process (lock {root / '.lock'})"
        ) from None
    try:
        return _build_locked(
            source, encoder, root, shard_size, dtype, force, on_progress, on_shard_done, embedder or embed_shards_local
        )
    finally:
        lock.release()


def _build_locked(
    source: ImageSource,
    encoder: Encoder,
    root: Path,
    shard_size: int,
    dtype: str,
    force: bool,
    on_progress: ProgressCallback | None,
    on_shard_done: Callable[[int], None] | None,
    embedder: ShardEmbedder,
) -> BuildReport:
    start_time = time.perf_counter()
    n_items = len(source)
    if n_items == 0:
        raise StoreError(f"source {source.name} has no items to embed")
    encoder_config = encoder.config()
    n_shards = (n_items + shard_size - 1) // shard_size
    plan = {
        "format": STORE_FORMAT,
        "source": source.describe(),
        "encoder": encoder_config,
        "views": dict(encoder.view_dims),
        "dtype": dtype,
        "shard_size": shard_size,
        "n_items": n_items,
        "n_shards": n_shards,
        "has_labels": source.labels is not None,
        "class_names": source.class_names,
        "complete": False,
    }
    manifest_path = root / MANIFEST
    if manifest_path.is_file() and not force:
        old = read_json(manifest_path)
        same = (
            old.get("format") == STORE_FORMAT
            and old.get("source") == as_stored_json(plan["source"])
            and _identity(old.get("encoder", {})) == _identity(encoder_config)
            and old.get("shard_size") == shard_size
            and old.get("dtype") == dtype
        )
        if not same:
            raise StoreError(
                f"{root} holds features of another source/encoder/shard layout "
                f"({old.get('source', {}).get('name')}, {old.get('encoder', {}).get('name')}); "
                "use another directory or force=True to rebuild"
            )
    elif force:
        for stale in (root / "shards").glob("*") if (root / "shards").exists() else []:
            stale.unlink()
    write_json(manifest_path, plan)

    labels = source.labels
    ids = source.ids
    skipped_by_shard: dict[int, list[SkippedItem]] = {}
    pending: list[ShardPlan] = []
    reused = 0
    (root / "shards").mkdir(exist_ok=True)
    for shard_index in range(n_shards):
        lo, hi = shard_index * shard_size, min(n_items, (shard_index + 1) * shard_size)
        shard_json = root / "shards" / f"{shard_index:05d}.json"
        if shard_json.is_file():
            done = read_json(shard_json)
            skipped_by_shard[shard_index] = [SkippedItem(**s) for s in done["skipped"]]
            reused += 1
            if on_progress:
                on_progress(hi - lo)
            continue
        pending.append(ShardPlan(shard_index, lo, hi))
    todo = {shard.index: shard for shard in pending}
    written = computed = 0
    for result in embedder(source, encoder, pending, on_progress):
        shard = todo.pop(result.index, None)
        if shard is None:
            raise StoreError(f"the embedding engine returned shard {result.index}, which was not asked for")
        kept, skipped = [int(p) for p in result.positions], list(result.skipped)
        for name, dim in encoder.view_dims.items():
            array = result.views.get(name)
            if array is None or not kept:
                array = np.zeros((0, dim))
            if np.shape(array) != (len(kept), dim):
                raise StoreError(
                    f"shard {shard.index}: view {name!r} has shape {np.shape(array)}, expected {(len(kept), dim)}"
                )
            write_npy(root / "shards" / f"{shard.index:05d}.{name}.npy", np.asarray(array).astype(dtype))
        write_json(
            root / "shards" / f"{shard.index:05d}.json",
            {
                "index": shard.index,
                "start": shard.start,
                "stop": shard.stop,
                "positions": kept,
                "ids": [ids[p] for p in kept],
                "labels": [int(labels[p]) for p in kept] if labels is not None else None,
                "skipped": [{"item_id": s.item_id, "reason": s.reason} for s in skipped],
            },
        )
        skipped_by_shard[shard.index] = skipped
        written += 1
        computed += shard.stop - shard.start
        if on_shard_done:
            on_shard_done(shard.index)
    if todo:
        raise StoreError(f"the embedding engine did not return shard(s) {sorted(todo)}; run again to resume")
    skipped_all = [item for index in sorted(skipped_by_shard) for item in skipped_by_shard[index]]
    plan["complete"] = True
    plan["n_embedded"] = n_items - len(skipped_all)
    plan["n_skipped"] = len(skipped_all)
    write_json(manifest_path, plan)
    return BuildReport(
        n_items=n_items,
        n_embedded=n_items - len(skipped_all),
        skipped=skipped_all,
        shards_written=written,
        shards_reused=reused,
        wall_s=time.perf_counter() - start_time,
        n_computed=computed,
    )
