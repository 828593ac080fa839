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

from semclust.cache import default_cache_dir
from semclust.data.base import ImageSource
from semclust.distributed import barrier, join_if_launched
from semclust.encoders.base import Encoder, encoder_identity
from semclust.encoders.registry import encoder_from_config, get_encoder
from semclust.methods.registry import FeatureSet, MethodResult, run_method
from semclust.metrics import evaluate
from semclust.outputs.run_dir import CHECKPOINT_DIR, prepare_run_dir, write_run
from semclust.store.atomic import write_json
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


def feature_set_from_store(
    store: FeatureStore,
    *,
    device: str = "cpu",
    vocabulary: str | None = None,
    noun_templates: str | Sequence[str] = "single",
    progress: ProgressFactory | None = None,
    source: ImageSource | None = None,
    threads: int | None = None,
    timings: dict[str, float] | None = None,
) -> FeatureSet:
    """The views of a store, plus lazy access to its encoder's text tower and noun vocabulary.

    With ``source`` (the source the store was built from), ``images`` lazily returns its uint8
    images aligned with the store's ids (folders resized to 32 px), for methods such as asd.

    ``vocabulary`` is a file with one noun per line, ``wordnet-all`` (every WordNet noun
    synset) or ``wordnet-concrete`` (the default: artifacts, animals, plants, foods, natural
    objects, body parts, substances, people). Their text embeddings are cached under
    ``$SEMCLUST_CACHE/texts`` per encoder and templates. The time
    they took goes into ``timings["nouns"]`` when a ``timings`` dict is given.
    """
    lazy: dict[str, Any] = {}

    def encoder() -> Encoder:
        # The text tower loads only when a method needs it (zero-shot, naming, TAC, LAIC).
        if "encoder" not in lazy:
            lazy["encoder"] = encoder_from_config(store.encoder_config, device=device, threads=threads)
        return lazy["encoder"]

    def encode_texts(texts: Sequence[str]) -> np.ndarray:
        return encoder().encode_texts(list(texts))

    def vocab() -> Any:
        if "vocab" not in lazy:
            from semclust.vocab.nouns import load_vocabulary

            lazy["vocab"] = load_vocabulary(vocabulary)
        return lazy["vocab"]

    def noun_synset_ids() -> list[str]:
        return list(vocab().synset_ids)

    def class_probabilities() -> np.ndarray:
        if "probabilities" not in lazy:
            from semclust.naming.evidence import class_probabilities as from_visual
            from semclust.naming.evidence import classifier_head, softmax_logits

            if "logits" in store.views:
                lazy["probabilities"] = softmax_logits(store.load("logits"))
            else:
                head = classifier_head(encoder())
                assert head is not None
                lazy["probabilities"] = from_visual(store.load("visual"), *head)
        return lazy["probabilities"]

    # Only the offline encoder's visual view ends in an ImageNet classifier (synsets = classes).
    has_classifier = store.encoder_config.get("name") == "offline" and "visual" in store.views

    def nouns() -> tuple[list[str], np.ndarray]:
        if "nouns" not in lazy:
            from semclust.vocab.templates import get_templates
            from semclust.vocab.text_cache import embed_texts_cached

            started = time.perf_counter()
            vocab_ = vocab()
            on_progress = progress("embedding noun vocabulary", len(set(vocab_.names))) if progress else None
            embeddings = embed_texts_cached(
                encoder(),
                vocab_.names,
                get_templates(noun_templates),
                default_cache_dir() / "texts",
                progress=on_progress,
            )
            lazy["nouns"] = (list(vocab_.names), embeddings)
            if timings is not None:
                timings["nouns"] = time.perf_counter() - started
        return lazy["nouns"]

    def images() -> tuple[np.ndarray, list[str]]:
        if "images" not in lazy:
            from semclust.data.pixels import source_images

            lazy["images"] = source_images(source, store.ids)
        return lazy["images"]

    return FeatureSet(
        joint=store.load("joint"),
        visual=store.load("visual") if "visual" in store.views else None,
        labels=store.labels,
        class_names=store.class_names,
        encode_texts=encode_texts,
        nouns=nouns,
        encoder=encoder,
        progress=progress,
        images=images if source is not None else None,
        noun_synset_ids=noun_synset_ids,
        class_probabilities=class_probabilities if has_classifier else None,
    )


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
    timings: dict[str, float] = {}
    # Alone this joins nothing and the barriers below do nothing.
    dist_ctx = join_if_launched(device)
    if not dist_ctx.is_main:
        barrier(dist_ctx)  # wait until rank 0 has prepared the run directory and the feature store
    if dist_ctx.is_main:
        out_dir = prepare_run_dir(out, force, resume=resume) if out is not None else None
    else:
        out_dir = Path(out) if out is not None else None
    started = time.perf_counter()
    image_source: ImageSource | None = None
    if FeatureStore.is_store(source):
        store = FeatureStore(source)
        if not store.complete:
            raise ValueError(f"feature store {source} is incomplete; finish it with 'semclust embed'")
        embed_info: dict[str, Any] = {"store": str(store.root), "reused": True}
    else:
        image_source = open_any_source(source, labels_from_folders=labels_from_folders, data_root=data_root)
        embedded = embed(
            image_source,
            encoder=encoder,
            device=device,
            batch_size=batch_size,
            labels_from_folders=labels_from_folders,
            data_root=data_root,
            progress=progress,
            threads=threads,
        )
        store = embedded.store
        embed_info = {
            "store": str(store.root),
            "shards_written": embedded.report.shards_written,
            "shards_reused": embedded.report.shards_reused,
            "images_per_s": embedded.report.items_per_s,
        }
    if dist_ctx.is_main:
        barrier(dist_ctx)  # the store is complete: the other ranks may open it now
    timings["features"] = time.perf_counter() - started
    if len(store) == 0:
        skipped = store.skipped
        first = f" (first: {skipped[0].item_id}: {skipped[0].reason})" if skipped else ""
        raise ValueError(f"no readable images in {source}: all {len(skipped)} files were skipped{first}")

    if noun_templates is None:  # TAC embeds its nouns with its seven templates; the rest with one
        noun_templates = "tac" if method in ("tac", "tac-notrain") else "single"
    t0 = time.perf_counter()
    features = feature_set_from_store(
        store,
        device=device,
        vocabulary=vocabulary,
        noun_templates=noun_templates,
        progress=progress,
        source=image_source,
        threads=threads,
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
    elif isinstance(n_clusters, str):
        raise ValueError(f"number of clusters must be an integer or 'auto', got {n_clusters!r}")
    else:
        k = n_clusters
    t0 = time.perf_counter()
    result = run_method(
        method,
        features,
        k,
        random_state,
        name_clusters_with_nouns=name_clusters,
        checkpoint_dir=out_dir / CHECKPOINT_DIR if out_dir is not None else None,
        resume=resume,
        **(method_options or {}),
    )
    timings["fit"] = time.perf_counter() - t0

    ids = store.ids
    metrics = None
    if features.labels is not None:
        metrics = evaluate(features.labels, result.labels)
    record = {
        "method": method,
        "n_clusters": result.n_clusters,
        "k_auto": k_auto,
        "seed": random_state,
        "source": source,
        "encoder": store.encoder_config,
        "features": embed_info,
        "method_options": {**(method_options or {}), **result.info},
        "vocabulary": vocabulary or ("wordnet-concrete" if name_clusters else None),
        "noun_templates": noun_templates,
        "n_items": len(ids),
        "n_skipped": len(store.skipped),
        "skipped": [{"id": s.item_id, "reason": s.reason} for s in store.skipped],
        "timings_s": timings,
        "versions": _versions(),
    }
    if out_dir is not None and dist_ctx.is_main:
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
        from semclust.outputs.model import METHOD_ESTIMATORS, MODEL_DIR, save_result

        if method in METHOD_ESTIMATORS:  # every registry method, asd included (its network + pixel shape)
            save_result(
                out_dir / MODEL_DIR,
                method=method,
                result=result,
                encoder_config=store.encoder_config,
                extra={"feature_dtype": store.manifest.get("dtype", "float32")},
            )
        # the run is written: its training checkpoint has nothing left to resume
        shutil.rmtree(out_dir / CHECKPOINT_DIR, ignore_errors=True)
    return ClusterRun(out_dir, ids, result, metrics, store.skipped, record)


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
