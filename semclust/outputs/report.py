"""One self-contained ``report.html`` for a run directory: nothing in it needs the network.

Thumbnails are base64 data URIs, plots (confusion matrix, 2-D map) are inline SVG drawn here.
Every string that comes from the user or the data (file ids, cluster names, class names, paths)
goes through :func:`html.escape` before it reaches the page.
"""

from __future__ import annotations

import base64
import colorsys
import html
import io
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from semclust.atomic import write_text
from semclust.outputs.run_dir import read_run

MAP_METHODS = ("tsne", "pca")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


# --------------------------------------------------------------------------- run's images


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


# --------------------------------------------------------------------------- numbers


def _store(run_record: dict[str, Any]) -> tuple[Any | None, str | None]:
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


def palette(n: int) -> list[str]:
    base = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    ]  # fmt: skip
    if n <= len(base):
        return base[:n]
    colours = []
    for i in range(n):
        r, g, b = colorsys.hls_to_rgb((i * 0.618033988749895) % 1.0, 0.45 + 0.15 * (i % 2), 0.65)
        colours.append(f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}")
    return colours


# --------------------------------------------------------------------------- SVG


def scatter_svg(coords: np.ndarray, clusters: np.ndarray, ids: list[str], n_clusters: int, size: int = 640) -> str:
    colours = palette(n_clusters)
    pad = 16
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    xy = pad + (coords - lo) / span * (size - 2 * pad)
    radius = 3.5 if len(coords) <= 1000 else 2.2
    parts = [
        f'<svg class="map" xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}" role="img" aria-label="2-D map of the embeddings">',
        f'<rect width="{size}" height="{size}" fill="#fff" stroke="#ccc"/>',
    ]
    for (px, py), k, item_id in zip(xy, clusters.tolist(), ids):
        parts.append(
            f'<circle cx="{px:.1f}" cy="{size - py:.1f}" r="{radius}" fill="{colours[k]}" fill-opacity="0.8">'
            f"<title>{_e(item_id)} (cluster {k})</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def confusion_svg(table: np.ndarray, class_names: list[str], n_clusters: int) -> str:
    """Heatmap of true class (rows) x cluster (columns) with counts in the cells."""
    n_rows = table.shape[0]
    cell = 28 if n_clusters <= 30 else 16
    label_w = min(220, 12 + 7 * max((len(c) for c in class_names), default=4))
    top = 40
    width = label_w + cell * n_clusters + 10
    height = top + cell * n_rows + 10
    row_max = np.maximum(table.max(axis=1, keepdims=True), 1)
    parts = [
        f'<svg class="confusion" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="confusion matrix: true class by cluster" font-family="sans-serif" font-size="11">',
        f'<text x="{label_w}" y="12" font-size="12">cluster &#8594;</text>',
    ]
    for k in range(n_clusters):
        x = label_w + k * cell + cell / 2
        parts.append(f'<text x="{x:.1f}" y="{top - 6}" text-anchor="middle">{k}</text>')
    for r in range(n_rows):
        y = top + r * cell
        name = class_names[r] if r < len(class_names) else str(r)
        shown = name if len(name) <= 30 else name[:29] + "\u2026"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + cell / 2 + 4:.1f}" text-anchor="end">{_e(shown)}'
            f"<title>{_e(name)}</title></text>"
        )
        for k in range(n_clusters):
            count = int(table[r, k])
            shade = count / float(row_max[r, 0])
            light = int(round(255 - 200 * shade))
            fill = f"rgb({light},{light},255)"
            x = label_w + k * cell
            parts.append(
                f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" stroke="#fff">'
                f"<title>{_e(name)} / cluster {k}: {count}</title></rect>"
            )
            if count and cell >= 20:
                colour = "#fff" if shade > 0.6 else "#000"
                parts.append(
                    f'<text x="{x + cell / 2:.1f}" y="{y + cell / 2 + 4:.1f}" text-anchor="middle" '
                    f'fill="{colour}" font-size="10">{count}</text>'
                )
    parts.append("</svg>")
    return "".join(parts)


# --------------------------------------------------------------------------- page

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}
table.kv td{padding:1px 10px 1px 0;vertical-align:top}
.note{background:#fff4d6;border:1px solid #e6c36a;padding:.5em .8em;border-radius:4px}
section.cluster{border-top:1px solid #ddd;padding-top:.4em}
.grid{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0;width:120px;text-align:center}
figure img{max-width:112px;max-height:112px;image-rendering:auto;border:1px solid #ccc}
figcaption{font-size:11px;word-break:break-all;color:#444}
figure.borderline img{border:2px dashed #d62728}
.swatch{display:inline-block;width:.9em;height:.9em;border-radius:50%;vertical-align:middle}
.legend span.item{margin-right:1em;white-space:nowrap}
.ids{font-size:12px;color:#444}
"""


def write_report(
    run_dir: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    thumbs_per_cluster: int = 12,
    borderline: int = 4,
    map_method: str = "tsne",
    max_map_points: int = 3000,
    random_state: int = 0,
) -> Path:
    """Write ``report.html`` (or ``out``) for ``run_dir`` and return its path."""
    if map_method not in MAP_METHODS:
        raise ValueError(f"map_method must be one of {', '.join(MAP_METHODS)}, got {map_method!r}")
    if thumbs_per_cluster < 0 or borderline < 0:
        raise ValueError("thumbs_per_cluster and borderline must be >= 0")
    started = time.perf_counter()
    run_dir = Path(run_dir)
    run = read_run(run_dir)
    record: dict[str, Any] = run["run"]
    ids: list[str] = run["ids"]
    clusters = np.asarray(run["assignments"], dtype=np.int64)
    summaries: list[dict[str, Any]] = run["clusters"]
    n_clusters = int(record.get("n_clusters") or len(summaries))
    n_clusters = max(n_clusters, len(summaries), int(clusters.max()) + 1 if len(clusters) else 0)
    notes: list[str] = []

    # Features aligned with the assignments (by id), for confidences, the map and labels.
    store, why = _store(record)
    features = labels = None
    class_names: list[str] | None = None
    if store is None:
        notes.append(f"No embeddings: {why}. Thumbnails are in file order and the 2-D map is left out.")
    else:
        view = "visual" if "visual" in store.views else "joint"
        position = {item_id: i for i, item_id in enumerate(store.ids)}
        rows = [position.get(item_id) for item_id in ids]
        if any(r is None for r in rows):
            notes.append(
                f"The feature store {store.root} does not hold every id of this run; "
                "thumbnails are in file order and the 2-D map is left out."
            )
        else:
            index = np.asarray(rows, dtype=np.int64)
            features = store.load(view)[index]
            store_labels = store.labels
            if store_labels is not None:
                labels = store_labels[index]
                class_names = store.class_names
    conf = confidences(features, clusters, n_clusters) if features is not None else None

    source, source_why = open_run_source(record)
    source_index: dict[str, int] = {}
    if source is None:
        notes.append(f"Thumbnails are not shown because the images cannot be opened: {source_why}")
    else:
        source_index = {item_id: i for i, item_id in enumerate(source.ids)}

    def thumb(item_id: str) -> tuple[str | None, str | None]:
        if source is None:
            return None, None
        i = source_index.get(item_id)
        if i is None:
            return None, "not in the source any more"
        try:
            return thumbnail_data_uri(source.load(i)), None
        except Exception as exc:
            return None, str(getattr(exc, "reason", exc))

    page: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>semclust report: {_e(run_dir.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>semclust report: {_e(run_dir.name)}</h1>",
    ]
    page += [f'<p class="note">{_e(n)}</p>' for n in notes]
    page.append(_summary_html(record, ids, n_clusters, run_dir))

    metrics = run.get("metrics")
    if metrics:
        page.append('<h2 id="metrics">Metrics (against the known labels)</h2><table class="kv metrics">')
        for key, value in metrics.items():
            shown = f"{value:.4f}" if isinstance(value, float) else str(value)
            page.append(f"<tr><td>{_e(key)}</td><td>{_e(shown)}</td></tr>")
        page.append("</table>")
        if labels is not None:
            known = labels >= 0
            n_classes = int(labels[known].max()) + 1 if known.any() else 0
            table = np.zeros((n_classes, n_clusters), dtype=np.int64)
            np.add.at(table, (labels[known], clusters[known]), 1)
            names = list(class_names or [])
            names += [str(i) for i in range(len(names), n_classes)]
            page.append('<h2 id="confusion">Confusion matrix (true class &#215; cluster)</h2>')
            page.append(confusion_svg(table, names, n_clusters))

    colours = palette(n_clusters)
    page.append('<h2 id="clusters">Clusters</h2>')
    for summary in sorted(summaries, key=lambda s: int(s["id"])):
        k = int(summary["id"])
        members = np.flatnonzero(clusters == k)
        names = [str(n) for n in summary.get("names") or []]
        scores = summary.get("name_scores") or []
        labelled = [f"{n} {float(scores[i]):.2f}" if i < len(scores) else n for i, n in enumerate(names)]
        title = ", ".join(labelled) if labelled else "(unnamed)"
        if summary.get("weak") and names:
            title = f"weak: {names[0]}? ({title})"
        if summary.get("center_names"):
            hubs = summary.get("center_hubs") or []
            centre = [
                f"{n} (hub)" if i < len(hubs) and hubs[i] else n for i, n in enumerate(summary["center_names"][:3])
            ]
            title += f" | center: {', '.join(centre)}"
        page.append(f'<section class="cluster" id="cluster-{k}" data-size="{int(summary["size"])}">')
        page.append(
            f'<h3><span class="swatch" style="background:{colours[k]}"></span> Cluster {k}: '
            f'<span class="names">{_e(title)}</span> &#8212; '
            f'<span class="size">{int(summary["size"])}</span> items</h3>'
        )
        if conf is not None and len(members):
            order = members[np.argsort(-conf[members], kind="stable")]
        else:
            order = members
        top = order[:thumbs_per_cluster]
        rest = order[thumbs_per_cluster:]
        low = rest[::-1][:borderline][::-1] if len(rest) else np.array([], dtype=np.int64)
        page.append('<div class="grid representative">')
        page += [_figure(ids[i], conf, i, thumb, "representative") for i in top]
        page.append("</div>")
        if len(low):
            page.append('<p class="ids">Borderline (lowest confidence):</p><div class="grid borderline">')
            page += [_figure(ids[i], conf, i, thumb, "borderline") for i in low]
            page.append("</div>")
        page.append("</section>")

    if features is not None and len(ids):
        rng = np.random.default_rng(random_state)
        chosen = np.arange(len(ids))
        if len(ids) > max_map_points:
            chosen = np.sort(rng.choice(len(ids), size=max_map_points, replace=False))
        from threadpoolctl import threadpool_limits

        # One thread: t-SNE's OpenMP pool spins against torch's when both live in one process
        # (seen: 0.3 s -> 23 s for 20 points); single-threaded Barnes-Hut is quick at 3,000.
        with threadpool_limits(limits=1):
            coords, how = embed_2d(features[chosen], map_method, random_state)
        page.append(f'<h2 id="map">2-D map of the embeddings ({_e(how)}, {len(chosen)} of {len(ids)} items)</h2>')
        page.append('<p class="legend">')
        for k in range(n_clusters):
            page.append(f'<span class="item"><span class="swatch" style="background:{colours[k]}"></span> {k}</span>')
        page.append("</p>")
        page.append(scatter_svg(coords, clusters[chosen], [ids[i] for i in chosen], n_clusters))

    page.append(f'<p class="ids">Written in {time.perf_counter() - started:.1f}s by semclust.</p>')
    page.append("</body></html>")
    target = Path(out) if out is not None else run_dir / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text(target, "\n".join(page))
    return target


def _figure(item_id: str, conf: np.ndarray | None, i: int, thumb: Any, kind: str) -> str:
    uri, problem = thumb(item_id)
    score = f'<br><span class="score">{conf[i]:.3f}</span>' if conf is not None else ""
    caption = f'<figcaption><span class="id">{_e(item_id)}</span>{score}</figcaption>'
    if uri is None:
        body = f'<div class="missing">{_e(problem)}</div>' if problem else ""
        return f'<figure class="{kind} noimage">{body}{caption}</figure>'
    return f'<figure class="{kind}"><img class="thumb" src="{uri}" alt="{_e(item_id)}">{caption}</figure>'


def _summary_html(record: dict[str, Any], ids: list[str], n_clusters: int, run_dir: Path) -> str:
    encoder = record.get("encoder") or {}
    if isinstance(encoder, dict):
        options = {
            k: v for k, v in encoder.items() if k not in ("name", "versions") and not isinstance(v, (dict, list))
        }
        encoder_text = f"{encoder.get('name', '?')} ({', '.join(f'{k}={v}' for k, v in options.items())})"
    else:
        encoder_text = str(encoder)
    timings = record.get("timings_s") or {}
    timing_text = ", ".join(f"{k} {float(v):.1f}s" for k, v in timings.items())
    method_options = record.get("method_options") or {}
    option_text = ", ".join(
        f"{k}={v}" for k, v in method_options.items() if not isinstance(v, (dict, list)) or len(str(v)) < 80
    )
    skipped = record.get("skipped") or []
    rows = [
        ("run directory", str(run_dir)),
        ("source", record.get("source", "")),
        ("method", record.get("method", "")),
        ("method options", option_text or "-"),
        ("encoder", encoder_text),
        ("K (clusters)", n_clusters),
        ("seed", record.get("seed", "")),
        ("items clustered", len(ids)),
        ("files skipped", record.get("n_skipped", len(skipped))),
        ("timings", timing_text or "-"),
    ]
    parts = ['<h2 id="summary">Run</h2><table class="kv summary">']
    parts += [f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows]
    parts.append("</table>")
    if skipped:
        parts.append('<details><summary>Skipped files</summary><ul class="ids">')
        parts += [f"<li>{_e(s.get('id'))}: {_e(s.get('reason'))}</li>" for s in skipped[:200]]
        if len(skipped) > 200:
            parts.append(f"<li>... and {len(skipped) - 200} more (run.json lists all)</li>")
        parts.append("</ul></details>")
    return "".join(parts)
