"""One self-contained ``report.html`` for a run directory: nothing in it needs the network.

Thumbnails are base64 data URIs, plots (confusion matrix, 2-D map) are inline SVG
(:mod:`.report_svg`); what is shown is gathered by :mod:`.report_data` and laid out by
:mod:`.report_page`. Every member of every cluster can be reached: the most confident and the
borderline ones as thumbnails, the others in a paged browser. A large run's page stays usable
through two caps, each stated on the page: ``max_thumbnails`` (thumbnails embedded; members over
it are listed by name and confidence) and ``max_listed`` (members listed at all).
"""

from __future__ import annotations

import html
import os
import time
from pathlib import Path

import numpy as np

from semclust.atomic import write_text
from semclust.outputs.report_data import (
    ReportData,
    confidences,
    embed_2d,
    gather,
    open_run_source,
    thumbnail_data_uri,
)
from semclust.outputs.report_page import (
    CONFIDENCE_MEANING,
    cluster_label,
    figure_html,
    legend_html,
    members_html,
    metrics_html,
    names_html,
    page_html,
    summary_html,
    toc_html,
)
from semclust.outputs.report_svg import confusion_svg, palette, scatter_svg

__all__ = ["MAP_METHODS", "confidences", "embed_2d", "open_run_source", "thumbnail_data_uri", "write_report"]

MAP_METHODS = ("tsne", "pca")


def write_report(
    run_dir: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    thumbs_per_cluster: int = 12,
    borderline: int = 4,
    map_method: str = "tsne",
    max_map_points: int = 3000,
    max_thumbnails: int = 2000,
    max_listed: int = 50000,
    page_size: int = 60,
    random_state: int = 0,
) -> Path:
    """Write ``report.html`` (or ``out``) for ``run_dir`` and return its path."""
    if map_method not in MAP_METHODS:
        raise ValueError(f"map_method must be one of {', '.join(MAP_METHODS)}, got {map_method!r}")
    for name, value in (("thumbs_per_cluster", thumbs_per_cluster), ("borderline", borderline)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    for name, value in (("max_thumbnails", max_thumbnails), ("max_listed", max_listed), ("page_size", page_size)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    started = time.perf_counter()
    data = gather(run_dir)
    layout = _layout(data, thumbs_per_cluster, borderline, max_listed)
    with_thumbnail = _thumbnail_budget(layout, max_thumbnails)
    n_shown = len(with_thumbnail) if data.source is not None else 0
    if data.source is not None and n_shown < len(data.ids):
        data.notes.append(
            f"This report embeds thumbnails of {n_shown:,} of the {len(data.ids):,} items (max_thumbnails, "
            "--max-thumbs); the others are listed by name and confidence under each cluster's other members."
        )
    n_unlisted = sum(len(u) for _, _, _, u in layout.values())
    if n_unlisted:
        data.notes.append(
            f"{n_unlisted:,} members are not listed at all (max_listed, --max-listed); assignments.csv lists every one."
        )

    labels = ["(unnamed)"] * data.n_clusters
    for summary in data.summaries:
        labels[int(summary["id"])] = cluster_label(summary)
    colours = palette(data.n_clusters)
    clusters_html = [_cluster_html(data, s, layout, with_thumbnail, colours, page_size) for s in data.summaries]
    confusion = _confusion(data)
    map_part = _map(data, labels, colours, map_method, max_map_points, random_state)

    sections = [("summary", "Run")]
    if data.metrics:
        sections.append(("metrics", "Metrics"))
    if confusion:
        sections.append(("confusion", "Confusion matrix"))
    sections.append(("clusters", "Clusters"))
    if map_part:
        sections.append(("map", "2-D map"))
    body = [f"<h1>semclust report: {_text(data.run_dir.name)}</h1>"]
    body += [f'<p class="note">{_text(n)}</p>' for n in data.notes]
    body.append(toc_html(sections, [(int(s["id"]), labels[int(s["id"])], int(s["size"])) for s in data.summaries]))
    body.append(summary_html(data.record, len(data.ids), data.n_clusters, data.run_dir))
    if data.metrics:
        body.append(metrics_html(data.metrics))
    body.append(confusion)
    body.append('<h2 id="clusters">Clusters</h2>')
    body.append(_reading_guide(data))
    body += clusters_html
    body.append(map_part)
    body.append(f'<p class="ids">Written in {time.perf_counter() - started:.1f}s by semclust.</p>')
    target = Path(out) if out is not None else data.run_dir / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text(target, page_html(f"semclust report: {data.run_dir.name}", body))
    return target


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


# A cluster's rows: (representative, borderline, other members listed, members not listed).
_Layout = dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


def _layout(data: ReportData, thumbs_per_cluster: int, borderline: int, max_listed: int) -> _Layout:
    layout: _Layout = {}
    for summary in data.summaries:
        k = int(summary["id"])
        order = data.members(k)
        top, rest = order[:thumbs_per_cluster], order[thumbs_per_cluster:]
        n_low = min(borderline, len(rest))
        low = rest[len(rest) - n_low :]
        others = rest[: len(rest) - n_low]
        layout[k] = (top, low, others, np.zeros(0, dtype=np.int64))
    # The member cap: each cluster keeps a share of max_listed proportional to its size.
    keep = _shares({k: len(rows[2]) for k, rows in layout.items()}, max_listed)
    for k, (top, low, others, _) in layout.items():
        layout[k] = (top, low, others[: keep[k]], others[keep[k] :])
    return layout


def _shares(sizes: dict[int, int], budget: int) -> dict[int, int]:
    """Integer parts of ``budget`` proportional to ``sizes``, each at most its size, summing to
    ``min(budget, total)``: floors first, the remainder one by one in key order."""
    total = sum(sizes.values())
    if total <= budget:
        return dict(sizes)
    shares = {k: budget * n // total for k, n in sizes.items()}
    spare = budget - sum(shares.values())
    for k, n in sizes.items():
        extra = min(spare, n - shares[k])
        shares[k] += extra
        spare -= extra
    return shares


def _thumbnail_budget(layout: _Layout, max_thumbnails: int) -> set[int]:
    """Rows that get a thumbnail: representative ones first, then borderline ones, then each
    cluster's other members in confidence order, the budget left shared by cluster size."""
    chosen: list[int] = []
    for part in (0, 1):
        for rows in layout.values():
            chosen += rows[part].tolist()
    chosen = chosen[:max_thumbnails]
    shares = _shares({k: len(rows[2]) for k, rows in layout.items()}, max_thumbnails - len(chosen))
    for k, rows in layout.items():
        chosen += rows[2][: shares[k]].tolist()
    return set(chosen)


def _cluster_html(
    data: ReportData,
    summary: dict,
    layout: _Layout,
    with_thumbnail: set[int],
    colours: list[str],
    page_size: int,
) -> str:
    k = int(summary["id"])
    top, low, others, unlisted = layout[k]
    size = int(summary["size"])

    def figures(rows: np.ndarray, kind: str) -> list[str]:
        out = []
        for row in rows.tolist():
            uri, problem = data.thumbnail(row) if row in with_thumbnail else (None, None)
            score = None if data.confidence is None else float(data.confidence[row])
            out.append(figure_html(data.ids[row], score, uri, problem, kind))
        return out

    parts = [
        f'<section class="cluster" id="cluster-{k}" data-size="{size}">',
        f'<h3><span class="swatch" style="background:{colours[k]}"></span> Cluster {k}: '
        f'<span class="names">{_text(cluster_label(summary))}</span> &#8212; '
        f'<span class="size">{size}</span> items</h3>',
        names_html(summary),
        '<div class="grid representative">',
        *figures(top, "representative"),
        "</div>",
    ]
    if len(low):
        parts += ['<p class="ids">Borderline (lowest confidence):</p><div class="grid borderline">']
        parts += [*figures(low, "borderline"), "</div>"]
    parts.append(
        members_html(
            k, others.tolist(), data.ids, data.confidence, data.thumbnail, with_thumbnail, page_size, len(unlisted)
        )
    )
    parts.append("</section>")
    return "".join(parts)


def _reading_guide(data: ReportData) -> str:
    """One line on what the numbers mean, so no score on the page is unlabelled."""
    from semclust.naming import score_meaning

    lines = []
    if data.confidence is not None:
        lines.append(f"confidence: {CONFIDENCE_MEANING} (1 is the center)")
    routes = sorted({str(s["naming"]) for s in data.summaries if s.get("naming")})
    for route in routes:
        lines.append(
            f"name score ({route}): {score_meaning(route)}; a weak cluster's best name scores under its threshold"
        )
    return f'<p class="ids guide">{_text("; ".join(lines))}</p>' if lines else ""


def _confusion(data: ReportData) -> str:
    if not data.metrics or data.labels is None:
        return ""
    known = data.labels >= 0
    n_classes = int(data.labels[known].max()) + 1 if known.any() else 0
    table = np.zeros((n_classes, data.n_clusters), dtype=np.int64)
    np.add.at(table, (data.labels[known], data.clusters[known]), 1)
    names = list(data.class_names or [])
    names += [str(i) for i in range(len(names), n_classes)]
    return '<h2 id="confusion">Confusion matrix (true class &#215; cluster)</h2>' + confusion_svg(
        table, names, data.n_clusters
    )


def _map(
    data: ReportData, labels: list[str], colours: list[str], method: str, max_points: int, random_state: int
) -> str:
    if data.features is None or not len(data.ids):
        return ""
    n = len(data.ids)
    chosen = np.arange(n)
    if n > max_points:
        chosen = np.sort(np.random.default_rng(random_state).choice(n, size=max_points, replace=False))
    from threadpoolctl import threadpool_limits

    # One thread: t-SNE's OpenMP pool spins against torch's when both live in one process
    # (seen: 0.3 s -> 23 s for 20 points); single-threaded Barnes-Hut is quick at 3,000.
    with threadpool_limits(limits=1):
        coords, how = embed_2d(data.features[chosen], method, random_state)
    return (
        f'<h2 id="map">2-D map of the embeddings ({_text(how)}, {len(chosen)} of {n} items)</h2>'
        + legend_html(labels, colours)
        + scatter_svg(
            coords, data.clusters[chosen], [data.ids[i] for i in chosen], data.n_clusters, cluster_labels=labels
        )
    )
