"""The report's pictures as inline SVG: the 2-D map of the embeddings and the confusion matrix.

Every string from the user or the data goes through :func:`html.escape` (``_e``).
"""

from __future__ import annotations

import colorsys
import html
from typing import Any

import numpy as np


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


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


def scatter_svg(
    coords: np.ndarray,
    clusters: np.ndarray,
    ids: list[str],
    n_clusters: int,
    size: int = 640,
    cluster_labels: list[str] | None = None,
) -> str:
    """Points coloured by cluster; each point's tooltip names its item and its cluster."""
    colours = palette(n_clusters)
    labels = cluster_labels or [""] * n_clusters
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
            f"<title>{_e(item_id)} (cluster {k}{': ' + _e(labels[k]) if labels[k] else ''})</title></circle>"
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
