"""What a report shows, gathered from a run directory: its images, embeddings and scores.

Nothing here writes HTML (:mod:`semclust.outputs.report_page` does); a part that cannot be
read (images moved, store deleted) becomes a note saying why, never a failed report.
"""

from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semclust.outputs.run_dir import read_run


def open_run_source(run_record: dict[str, Any]) -> tuple[Any | None, str | None]:
    """The run's :class:`ImageSource`, or ``(None, why)`` when its images cannot be opened.

    ``run.json``'s ``source`` is tried first; for a feature-store source (or when the stored
    path no longer works, e.g. a relative path from another directory) the store manifest's
    description of what was embedded is used: a folder's absolute root or a dataset's name and
    split.
    """
    from semclust.data.registry import open_source
    from semclust.store.feature_store import FeatureStore

    spec = str(run_record.get("source", ""))
    errors: list[str] = []
    candidates: list[str] = []
    store_dir = spec if spec and FeatureStore.is_store(spec) else (run_record.get("features") or {}).get("store")
    if spec and not FeatureStore.is_store(spec):
        candidates.append(spec)
    if store_dir and FeatureStore.is_store(store_dir):
        try:
            described = FeatureStore(store_dir).manifest.get("source") or {}
        except Exception as exc:  # a damaged manifest only costs the thumbnails
            errors.append(f"feature store {store_dir}: {exc}")
            described = {}
        if described.get("name") == "folder" and described.get("root"):
            candidates.append(str(described["root"]))
        elif described.get("name") and described.get("name") != "array":
            split = described.get("split")
            candidates.append(f"dataset:{described['name']}" + (f":{split}" if split else ""))
    seen: set[str] = set()
    for candidate in candidates:
        if candidate in seen:
            continue
        seen.add(candidate)
        try:
            return open_source(candidate), None
        except Exception as exc:
            errors.append(f"{candidate}: {exc}")
    if not candidates:
        errors.append(f"no image source is recorded for this run (source {spec!r})")
    return None, "; ".join(errors)


def thumbnail_data_uri(image: Any, size: int = 112) -> str:
    """A small JPEG (PNG for tiny images, where JPEG blurs) as a ``data:`` URI."""
    thumb = image.convert("RGB")
    thumb.thumbnail((size, size))
    if thumb.width < 48 or thumb.height < 48:
        # Tiny images (MNIST, CIFAR) are scaled up crisply so they can be seen.
        factor = max(1, -(-64 // max(thumb.width, thumb.height)))
        from PIL import Image

        thumb = thumb.resize((thumb.width * factor, thumb.height * factor), Image.Resampling.NEAREST)
        buffer = io.BytesIO()
        thumb.save(buffer, format="PNG", optimize=True)
        mime = "image/png"
    else:
        buffer = io.BytesIO()
        thumb.save(buffer, format="JPEG", quality=80)
        mime = "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def run_store(run_record: dict[str, Any]) -> tuple[Any | None, str | None]:
    from semclust.store.feature_store import FeatureStore

    store_dir = (run_record.get("features") or {}).get("store")
    if not store_dir:
        spec = str(run_record.get("source", ""))
        store_dir = spec if spec and FeatureStore.is_store(spec) else None
    if not store_dir:
        return None, "the run records no feature store"
    try:
        return FeatureStore(store_dir), None
    except Exception as exc:
        return None, f"feature store {store_dir} cannot be read ({exc})"


def confidences(features: np.ndarray, clusters: np.ndarray, n_clusters: int) -> np.ndarray:
    """Cosine of every item to its cluster's normalised mean embedding."""
    x = np.asarray(features, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    conf = np.zeros(len(x))
    for k in range(n_clusters):
        members = clusters == k
        if not members.any():
            continue
        center = x[members].mean(axis=0)
        center /= max(np.linalg.norm(center), 1e-12)
        conf[members] = x[members] @ center
    return conf


def embed_2d(features: np.ndarray, method: str = "tsne", random_state: int = 0) -> tuple[np.ndarray, str]:
    """2-D coordinates of ``features``; t-SNE falls back to PCA when there are too few points."""
    x = np.asarray(features, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    n = len(x)
    if n < 3:
        return np.column_stack([np.arange(n, dtype=float), np.zeros(n)]), "trivial"
    from sklearn.decomposition import PCA

    if method == "tsne" and n >= 5:
        from sklearn.manifold import TSNE

        start = x
        if x.shape[1] > 50:
            start = PCA(n_components=min(50, n - 1), random_state=random_state).fit_transform(x)
        perplexity = float(min(30.0, max(1.0, (n - 1) / 3.0)))
        coords = TSNE(
            n_components=2, perplexity=perplexity, init="pca", random_state=random_state, metric="euclidean"
        ).fit_transform(start)
        return coords, f"t-SNE (perplexity {perplexity:.0f})"
    n_comp = min(2, x.shape[1], n)
    coords = PCA(n_components=n_comp, random_state=random_state).fit_transform(x)
    if coords.shape[1] < 2:
        coords = np.column_stack([coords[:, 0], np.zeros(n)])
    return coords, "PCA"


@dataclass
class ReportData:
    """A run as the report needs it; ``features``/``confidence`` are None without a store."""

    run_dir: Path
    record: dict[str, Any]
    ids: list[str]
    clusters: np.ndarray
    summaries: list[dict[str, Any]]
    n_clusters: int
    metrics: dict[str, Any] | None
    features: np.ndarray | None = None
    labels: np.ndarray | None = None
    class_names: list[str] | None = None
    confidence: np.ndarray | None = None
    source: Any = None
    notes: list[str] = field(default_factory=list)
    _source_index: dict[str, int] = field(default_factory=dict, repr=False)

    def members(self, k: int) -> np.ndarray:
        """Row indices of cluster ``k``, most confident first (file order without features)."""
        members = np.flatnonzero(self.clusters == k)
        if self.confidence is None or not len(members):
            return members
        return members[np.argsort(-self.confidence[members], kind="stable")]

    def thumbnail(self, row: int) -> tuple[str | None, str | None]:
        """``(data URI, None)``, or ``(None, why)`` when the image cannot be shown."""
        if self.source is None:
            return None, None
        i = self._source_index.get(self.ids[row])
        if i is None:
            return None, "not in the source any more"
        try:
            return thumbnail_data_uri(self.source.load(i)), None
        except Exception as exc:
            return None, str(getattr(exc, "reason", exc))


def gather(run_dir: str | os.PathLike[str]) -> ReportData:
    """Read ``run_dir`` and whatever else of the run can still be opened."""
    run_dir = Path(run_dir)
    run = read_run(run_dir)
    record: dict[str, Any] = run["run"]
    clusters = np.asarray(run["assignments"], dtype=np.int64)
    summaries: list[dict[str, Any]] = sorted(run["clusters"], key=lambda s: int(s["id"]))
    n_clusters = int(record.get("n_clusters") or len(summaries))
    n_clusters = max(n_clusters, len(summaries), int(clusters.max()) + 1 if len(clusters) else 0)
    data = ReportData(run_dir, record, list(run["ids"]), clusters, summaries, n_clusters, run.get("metrics"))

    # Features aligned with the assignments (by id), for confidences, the map and labels.
    store, why = run_store(record)
    if store is None:
        data.notes.append(f"No embeddings: {why}. Thumbnails are in file order and the 2-D map is left out.")
    else:
        view = "visual" if "visual" in store.views else "joint"
        position = {item_id: i for i, item_id in enumerate(store.ids)}
        rows = [position.get(item_id) for item_id in data.ids]
        if any(r is None for r in rows):
            data.notes.append(
                f"The feature store {store.root} does not hold every id of this run; "
                "thumbnails are in file order and the 2-D map is left out."
            )
        else:
            index = np.asarray(rows, dtype=np.int64)
            data.features = store.load(view)[index]
            store_labels = store.labels
            if store_labels is not None:
                data.labels = store_labels[index]
                data.class_names = store.class_names
    if data.features is not None:
        data.confidence = confidences(data.features, clusters, n_clusters)

    data.source, source_why = open_run_source(record)
    if data.source is None:
        data.notes.append(f"Thumbnails are not shown because the images cannot be opened: {source_why}")
    else:
        data._source_index = {item_id: i for i, item_id in enumerate(data.source.ids)}
    return data
