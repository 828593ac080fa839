"""Template-ensembled text embeddings, computed in chunks and cached on disk.

Embedding the 82,115 WordNet nouns under seven templates takes minutes on a CPU, and every
method run needs the same matrix, so it is stored once per (encoder, templates, texts).

Progress counts distinct texts, the ones actually embedded: WordNet repeats a name across
synsets, so its 82,115 noun synsets (47,330 concrete ones) have 67,893 (42,112) distinct names.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from semclust.atomic import read_json, write_json, write_npy
from semclust.encoders.base import Encoder, encoder_identity
from semclust.ops.features import check_positive_int, l2_normalize
from semclust.vocab.templates import get_templates

# Bump when the way embeddings are computed changes, so stale caches are never read.
CACHE_FORMAT = 1
DEFAULT_CHUNK_SIZE = 4096


def text_cache_key(encoder_config: dict[str, Any], templates: Sequence[str], texts: Sequence[str]) -> str:
    """Hex digest naming a cache entry.

    Library versions are left out of the encoder config: a patch release of torch should not
    throw away minutes of embedding work; anything that changes the model is in the rest.
    """
    config = encoder_identity(encoder_config)
    payload = {"format": CACHE_FORMAT, "encoder": config, "templates": list(templates), "texts": list(texts)}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:32]


def embed_with_templates(
    encoder: Encoder,
    texts: Sequence[str],
    templates: Sequence[str],
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Callable[..., None] | None = None,
) -> np.ndarray:
    """float32[m, d]: L2-normalised mean over templates of each filled template's unit embedding.

    Identical texts (WordNet repeats names across synsets) are embedded once. Besides the
    output, memory holds one chunk of ``chunk_size`` texts' embeddings at a time.
    ``progress(n, info)`` receives the number of distinct texts finished after each chunk and
    :func:`counts_info` (how many texts, how many distinct), to show beside the bar.
    """
    templates = get_templates(list(templates))
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    texts = list(texts)
    if not texts:
        raise ValueError("texts must not be empty")
    position: dict[str, int] = {}
    for text in texts:
        position.setdefault(text, len(position))
    unique = list(position)
    info = counts_info(len(texts), len(unique))
    inverse = np.fromiter((position[t] for t in texts), dtype=np.int64, count=len(texts))
    embedded: np.ndarray | None = None
    for start in range(0, len(unique), chunk_size):
        chunk = unique[start : start + chunk_size]
        total: np.ndarray | None = None
        for template in templates:
            vectors = l2_normalize(np.asarray(encoder.encode_texts([template.format(t) for t in chunk])))
            if vectors.shape[0] != len(chunk):
                raise ValueError(f"encoder returned {vectors.shape[0]} embeddings for {len(chunk)} texts")
            total = vectors.astype(np.float32) if total is None else total + vectors
        assert total is not None
        if embedded is None:
            embedded = np.empty((len(unique), total.shape[1]), dtype=np.float32)
        embedded[start : start + len(chunk)] = l2_normalize(total)
        if progress is not None:
            progress(len(chunk), info)
    assert embedded is not None
    return np.ascontiguousarray(embedded[inverse])


def embed_texts_cached(
    encoder: Encoder,
    texts: Sequence[str],
    templates: Sequence[str],
    cache_dir: str | os.PathLike[str] | None,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Callable[..., None] | None = None,
) -> np.ndarray:
    """Like :func:`embed_with_templates`, but read from / written to ``cache_dir``.

    The entry is ``<key>.npy`` plus a ``<key>.json`` sidecar describing it; the sidecar is
    written last, so its presence marks a complete entry. ``cache_dir=None`` disables caching.
    On a cache hit ``progress`` is told once, of every distinct text, with ``"cached"`` first in
    its info, so a bar shows it is done instead of waiting at zero.
    """
    templates = get_templates(list(templates))
    texts = list(texts)
    if cache_dir is None:
        return embed_with_templates(encoder, texts, templates, chunk_size=chunk_size, progress=progress)
    config = encoder.text_config()
    key = text_cache_key(config, templates, texts)
    root = Path(cache_dir)
    array_path, sidecar_path = root / f"{key}.npy", root / f"{key}.json"
    cached = _load_entry(array_path, sidecar_path, len(texts))
    if cached is not None:
        if progress is not None:
            n_unique = len(set(texts))
            progress(n_unique, f"cached {counts_info(len(texts), n_unique)}")
        return cached
    embeddings = embed_with_templates(encoder, texts, templates, chunk_size=chunk_size, progress=progress)
    write_npy(array_path, embeddings)
    write_json(
        sidecar_path,
        {
            "format": CACHE_FORMAT,
            "key": key,
            "encoder": json.loads(json.dumps(config, default=str)),
            "templates": list(templates),
            "n_texts": len(texts),
            "dim": int(embeddings.shape[1]),
            "texts_sha256": hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest(),
        },
    )
    return embeddings


def counts_info(n_texts: int, n_unique: int) -> str:
    """``"(82,115 names, 67,893 distinct)"``: the bar counts the distinct ones, which are what
    is embedded (for a WordNet vocabulary, one name per noun synset)."""
    return f"({n_texts:,} names, {n_unique:,} distinct)"


def _load_entry(array_path: Path, sidecar_path: Path, n_texts: int) -> np.ndarray | None:
    """The cached array, or None when absent or inconsistent with its sidecar (then recompute)."""
    if not (array_path.is_file() and sidecar_path.is_file()):
        return None
    try:
        meta = read_json(sidecar_path)
        array = np.load(array_path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if meta.get("format") != CACHE_FORMAT or array.dtype != np.float32 or array.shape != (n_texts, meta.get("dim")):
        return None
    return array
