"""The jobs users run, as plain functions; the CLI and the Python API both call these.

source -> feature store (cached, resumable) -> method -> run directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semclust.atomic import write_json
from semclust.cache import default_cache_dir
from semclust.data.base import ImageSource
from semclust.distributed import barrier, join_if_launched
from semclust.encoders.base import Encoder, encoder_identity
from semclust.encoders.registry import get_encoder
from semclust.feature_set import feature_set_from_store
from semclust.methods.registry import FeatureSet, MethodResult, MethodSpec, get_spec, run_method
from semclust.metrics import evaluate
from semclust.outputs.run_dir import CHECKPOINT_DIR, prepare_run_dir, remove_if_empty, write_run
from semclust.store.checkpoint import saved_position
from semclust.store.feature_store import BuildReport, FeatureStore, build_store

ProgressFactory = Callable[[str, int], Callable[[int], None]]


def open_any_source(spec: str, *, labels_from_folders: bool = False, data_root: str | None = None) -> ImageSource:
    from semclust.data.registry import open_source

    return open_source(spec, labels_from_folders=labels_from_folders, data_root=data_root)


def cache_key(source: ImageSource, encoder: Encoder) -> str:
    """Stable directory name for (source, encoder settings): same inputs reuse the same features."""
    identity = encoder_identity(encoder.config())
    blob = json.dumps({"source": source.describe(), "encoder": identity}, sort_keys=True, default=str)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in source.name)[:40]
    return f"{slug}-{encoder.name}-{digest}"


@dataclass
class EmbedResult:
    store: FeatureStore
    report: BuildReport


def embed(
    source: str | ImageSource,
    *,
    encoder: str | Encoder = "offline",
    out: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    shard_size: int = 2048,
    dtype: str = "float16",
    force: bool = False,
    labels_from_folders: bool = False,
    data_root: str | None = None,
    progress: ProgressFactory | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    engine_options: dict[str, Any] | None = None,
    threads: int | None = None,
) -> EmbedResult:
    """Embed a source into a feature store (``out``, or the cache), resuming finished shards.

    ``engine="ray"`` computes the shards with Ray Data (``semclust.engines.ray``) on the
    cluster at ``ray_address`` (default: a local Ray), actors on GPUs with ``device="auto"``
    or ``"cuda"``; ``engine_options`` go to :class:`semclust.engines.ray.RayEngine`. The store
    is the same as the local engine's. ``threads``: CPU threads of the local forward passes
    (default all cores).
    """
    from semclust.engines import get_engine

    if engine == "ray":
        embedder = get_engine("ray", address=ray_address, device=device, **(engine_options or {}))
    else:
        if ray_address is not None:
            raise ValueError("--ray-address needs --engine ray")
        embedder = get_engine(engine, **(engine_options or {}))
    if isinstance(source, str):
        source = open_any_source(source, labels_from_folders=labels_from_folders, data_root=data_root)
    if isinstance(encoder, str):
        # With Ray the driver's copy only describes the encoder; the actors run it.
        encoder = get_encoder(
            encoder, device="cpu" if engine == "ray" else device, batch_size=batch_size, threads=threads
        )
    from semclust.encoders.paired_bridge import warn_if_fitted_on

    warn_if_fitted_on(source, encoder)
    out_dir = Path(out) if out is not None else default_cache_dir() / "features" / cache_key(source, encoder)
    on_progress = progress(f"embedding {source.name}", len(source)) if progress else None
    report = build_store(
        source,
        encoder,
        out_dir,
        shard_size=shard_size,
        dtype=dtype,
        force=force,
        on_progress=on_progress,
        embedder=embedder,
    )
    # The embedding run's own record beside the store (the store's manifest describes the features).
    write_json(
        out_dir / "run.json",
        {
            "command": "embed",
            "source": source.name,
            "encoder": encoder.config(),
            "engine": engine,
            "n_items": report.n_items,
            "n_embedded": report.n_embedded,
            "n_skipped": len(report.skipped),
            "shards_written": report.shards_written,
            "shards_reused": report.shards_reused,
            "wall_s": round(report.wall_s, 3),
            "images_per_s": report.items_per_s,
            "versions": _versions(),
        },
    )
    return EmbedResult(FeatureStore(out_dir), report)


@dataclass
class ClusterRun:
    out_dir: Path | None
    ids: list[str]
    result: MethodResult
    metrics: dict[str, Any] | None
    skipped: list
    record: dict[str, Any]


def cluster(
    source: str,
    *,
    method: str = "kmeans",
    n_clusters: int | str | None = 10,
    random_state: int = 0,
    out: str | os.PathLike[str] | None = None,
    force: bool = False,
    encoder: str = "offline",
    device: str = "cpu",
    batch_size: int | None = None,
    labels_from_folders: bool = False,
    data_root: str | None = None,
    method_options: dict[str, Any] | None = None,
    vocabulary: str | None = None,
    noun_templates: str | Sequence[str] | None = None,
    name_clusters: bool = True,
    progress: ProgressFactory | None = None,
    resume: bool = False,
    threads: int | None = None,
) -> ClusterRun:
    """Cluster a source (image folder, ``dataset:NAME[:split]`` or a feature-store directory).

    With ``out``, trained methods (tac, laic, scan every epoch; asd every ``checkpoint_every``
    steps of each stage) checkpoint in ``out/checkpoint`` (removed once the run is written);
    ``resume=True`` continues a killed run in ``out`` from there and ends with the assignments
    an uninterrupted run would have written.

    Under ``torchrun`` every rank runs this; rank 0 prepares the run directory and embeds the
    source first while the others wait (then find the store finished), LAIC trains with DDP, and
    rank 0 alone writes the run. ``threads``: CPU threads of the encoder's forward passes.
    ``timings_s`` in the record holds the phases: ``features`` (embedding, or opening the
    cached store), ``load``, ``fit`` and, inside ``fit``, ``nouns`` (the noun vocabulary's text
    embeddings, cached after the first run).
    """
    spec = get_spec(method)
    options = dict(method_options or {})
    # Everything a user can get wrong is checked before any directory is made or image embedded.
    spec.check_params(options)
    k_requested = check_n_clusters_request(n_clusters, spec)
    timings: dict[str, float] = {}
    # Alone this joins nothing and the barriers below do nothing.
    dist_ctx = join_if_launched(device)
    if not dist_ctx.is_main:
        barrier(dist_ctx)  # wait until rank 0 has prepared the run directory and the feature store
    created = out is not None and not Path(out).exists()
    if dist_ctx.is_main:
        out_dir = prepare_run_dir(out, force, resume=resume) if out is not None else None
    else:
        out_dir = Path(out) if out is not None else None
    try:
        embedding = _Embedding(encoder, device, batch_size, labels_from_folders, data_root, progress, threads)
        return _cluster_into(
            out_dir,
            source,
            spec,
            k_requested,
            random_state,
            options,
            embedding,
            dist_ctx=dist_ctx,
            resume=resume,
            vocabulary=vocabulary,
            noun_templates=noun_templates,
            name_clusters=name_clusters,
            timings=timings,
        )
    except BaseException:
        if created and dist_ctx.is_main and out_dir is not None:
            remove_if_empty(out_dir)  # a failed first run leaves no empty run directory behind
        raise


def check_n_clusters_request(n_clusters: int | str | None, spec: MethodSpec) -> int | str | None:
    """``n_clusters`` as given to :func:`cluster`: an int of at least 2, ``"auto"``, or None
    for a method that takes K from elsewhere (zeroshot); anything else is a ValueError."""
    if n_clusters is None:
        if spec.needs_k:
            raise ValueError(f"method {spec.name} needs the number of clusters (--k)")
        return None
    if n_clusters == "auto":
        return "auto"
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) or n_clusters < 2:
        raise ValueError(f"number of clusters must be an integer of at least 2 or 'auto', got {n_clusters!r}")
    return int(n_clusters)


@dataclass(frozen=True)
class _Embedding:
    """How a cluster run embeds a source that is not a feature store yet."""

    encoder: str
    device: str
    batch_size: int | None
    labels_from_folders: bool
    data_root: str | None
    progress: ProgressFactory | None
    threads: int | None


def _open_features(source: str, how: _Embedding) -> tuple[FeatureStore, ImageSource | None, dict[str, Any]]:
    """The complete feature store of ``source`` (embedding it if needed), the image source
    when there is one (not for a store directory), and what the run record says about it."""
    if FeatureStore.is_store(source):
        store = FeatureStore(source)
        if not store.complete:
            raise ValueError(f"feature store {source} is incomplete; finish it with 'semclust embed'")
        return store, None, {"store": str(store.root), "reused": True}
    image_source = open_any_source(source, labels_from_folders=how.labels_from_folders, data_root=how.data_root)
    embedded = embed(
        image_source,
        encoder=how.encoder,
        device=how.device,
        batch_size=how.batch_size,
        labels_from_folders=how.labels_from_folders,
        data_root=how.data_root,
        progress=how.progress,
        threads=how.threads,
    )
    info = {
        "store": str(embedded.store.root),
        "shards_written": embedded.report.shards_written,
        "shards_reused": embedded.report.shards_reused,
        "images_per_s": embedded.report.items_per_s,
    }
    return embedded.store, image_source, info


def _cluster_into(
    out_dir: Path | None,
    source: str,
    spec: MethodSpec,
    n_clusters: int | str | None,
    random_state: int,
    options: dict[str, Any],
    how: _Embedding,
    *,
    dist_ctx: Any,
    resume: bool,
    vocabulary: str | None,
    noun_templates: str | Sequence[str] | None,
    name_clusters: bool,
    timings: dict[str, float],
) -> ClusterRun:
    started = time.perf_counter()
    store, image_source, embed_info = _open_features(source, how)
    if dist_ctx.is_main:
        barrier(dist_ctx)  # the store is complete: the other ranks may open it now
    timings["features"] = time.perf_counter() - started
    if len(store) == 0:
        skipped = store.skipped
        first = f" (first: {skipped[0].item_id}: {skipped[0].reason})" if skipped else ""
        raise ValueError(f"no readable images in {source}: all {len(skipped)} files were skipped{first}")

    if noun_templates is None:  # TAC embeds its nouns with its seven templates; the rest with one
        noun_templates = spec.noun_templates
    t0 = time.perf_counter()
    features = feature_set_from_store(
        store,
        device=how.device,
        vocabulary=vocabulary,
        noun_templates=noun_templates,
        progress=how.progress,
        source=image_source,
        threads=how.threads,
        timings=timings,
    )
    timings["load"] = time.perf_counter() - t0
    k_auto = None
    k: int | None
    if n_clusters == "auto":
        t0 = time.perf_counter()
        k_auto = estimate_k(features)
        k = int(k_auto["k"])
        timings["choose_k"] = time.perf_counter() - t0
    else:
        k = None if n_clusters is None else int(n_clusters)
    # where a resumed run continues (None when starting over): recorded in run.json
    resumed_from = saved_position(out_dir / CHECKPOINT_DIR) if resume and out_dir is not None else None
    t0 = time.perf_counter()
    result = run_method(
        spec.name,
        features,
        k,
        random_state,
        name_clusters_with_nouns=name_clusters,
        checkpoint_dir=out_dir / CHECKPOINT_DIR if out_dir is not None else None,
        resume=resume,
        **options,
    )
    timings["fit"] = time.perf_counter() - t0

    ids = store.ids
    metrics = evaluate(features.labels, result.labels) if features.labels is not None else None
    record = {
        "method": spec.name,
        "n_clusters": result.n_clusters,
        "k_auto": k_auto,
        "seed": random_state,
        "source": source,
        "encoder": store.encoder_config,
        "features": embed_info,
        "method_options": {**options, **result.info},
        "vocabulary": vocabulary or ("wordnet-concrete" if name_clusters else None),
        "noun_templates": noun_templates,
        "n_items": len(ids),
        "n_skipped": len(store.skipped),
        "skipped": [{"id": s.item_id, "reason": s.reason} for s in store.skipped],
        "timings_s": timings,
        "versions": _versions(),
    }
    if resumed_from is not None:
        record["resumed_from"] = resumed_from
    if out_dir is not None and dist_ctx.is_main:
        _write_cluster_run(out_dir, spec.name, ids, result, metrics, record, store)
    return ClusterRun(out_dir, ids, result, metrics, store.skipped, record)


def _write_cluster_run(
    out_dir: Path,
    method: str,
    ids: list[str],
    result: MethodResult,
    metrics: dict[str, Any] | None,
    record: dict[str, Any],
    store: FeatureStore,
) -> None:
    from semclust.outputs.model import MODEL_DIR, save_result

    write_run(
        out_dir,
        ids=ids,
        clusters=result.labels,
        n_clusters=result.n_clusters,
        cluster_names=result.cluster_names,
        metrics=metrics,
        run_record=record,
        cluster_naming=(
            [result.naming.summary(k) for k in range(result.n_clusters)] if result.naming is not None else None
        ),
    )
    save_result(  # every method saves its model (asd: its network and the pixel shape)
        out_dir / MODEL_DIR,
        method=method,
        result=result,
        encoder_config=store.encoder_config,
        extra={"feature_dtype": store.manifest.get("dtype", "float32")},
    )
    # the run is written: its training checkpoint has nothing left to resume
    shutil.rmtree(out_dir / CHECKPOINT_DIR, ignore_errors=True)


def estimate_k(features: FeatureSet, k_max: int = 30) -> dict[str, Any]:
    """``--k auto``: the eigengap of the kNN graph in the view image-only steps use."""
    from semclust.ops.choose_k import estimate_n_clusters

    view = "visual" if features.visual is not None else "joint"
    estimate = estimate_n_clusters(features.view(view), k_max=min(k_max, len(features.joint) - 2))
    return {"k": estimate.k, "view": view, "criterion": "eigengap of the kNN-10 graph", "gaps": estimate.gaps}


def _versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for package in ("semclust", "numpy", "torch", "faiss-cpu", "scikit-learn", "transformers"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return versions
