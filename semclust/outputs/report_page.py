"""The report's HTML: contents, run summary, cluster sections with a paged member browser.

One self-contained page. Each cluster shows its most confident and its borderline thumbnails;
all its other members sit in a JSON block that a few lines of script page through when the
reader opens "other members", so a browser decodes only the page shown. Every string from the
user or the data is escaped (``_e``), and the JSON block cannot close its ``<script>`` tag.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

_SEPARATORS = ("/", "\\")
CONFIDENCE_MEANING = "cosine similarity of the image's embedding to its cluster's mean embedding"

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}
table.kv td{padding:1px 10px 1px 0;vertical-align:top}
.note{background:#fff4d6;border:1px solid #e6c36a;padding:.5em .8em;border-radius:4px}
nav.toc ul{margin:.2em 0;padding-left:1.4em}nav.toc li{margin:.1em 0}
nav.toc ul.clusters{columns:3 18em;font-size:.95em}
section.cluster{border-top:1px solid #ddd;padding-top:.4em}
.grid{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0;width:120px;text-align:center}
figure img{max-width:112px;max-height:112px;image-rendering:auto;border:1px solid #ccc}
figcaption{font-size:11px;color:#444;word-break:normal;overflow-wrap:break-word}
figure.borderline img{border:2px dashed #d62728}
.score{color:#555}
p.namelist{margin:.2em 0 .6em}.nscore{color:#666;font-size:.9em}
details.members{margin:.6em 0}details.members summary{cursor:pointer}
.pager{margin:.4em 0}
.swatch{display:inline-block;width:.9em;height:.9em;border-radius:50%;vertical-align:middle}
.legend span.item{margin-right:1em;white-space:nowrap;display:inline-block}
.ids{font-size:12px;color:#444}
"""

# Pages a cluster's other members: builds each figure with DOM calls (never innerHTML), so ids
# stay text; breaks captions after path separators only, as the static figures do.
SCRIPT = """
(function () {
  function caption(m) {
    var c = document.createElement("figcaption"), s = document.createElement("span");
    s.className = "id";
    var parts = m[0].split(/(?<=[\\/\\\\])/);
    parts.forEach(function (part, i) {
      s.appendChild(document.createTextNode(part));
      if (i < parts.length - 1) s.appendChild(document.createElement("wbr"));
    });
    c.appendChild(s);
    if (m[1] !== null) {
      var sc = document.createElement("span");
      sc.className = "score";
      sc.title = CONFIDENCE;
      sc.textContent = "confidence " + m[1].toFixed(2);
      c.appendChild(document.createElement("br"));
      c.appendChild(sc);
    }
    return c;
  }
  function figure(m) {
    var f = document.createElement("figure");
    f.className = "member";
    if (m[2]) {
      var img = document.createElement("img");
      img.className = "thumb"; img.src = m[2]; img.alt = m[0];
      f.appendChild(img);
    } else {
      f.className += " noimage";
      if (m[3]) {
        var d = document.createElement("div");
        d.className = "missing"; d.textContent = m[3];
        f.appendChild(d);
      }
    }
    f.appendChild(caption(m));
    return f;
  }
  document.querySelectorAll("details.members").forEach(function (box) {
    var size = parseInt(box.getAttribute("data-page-size"), 10) || 60;
    var grid = box.querySelector(".page-grid"), label = box.querySelector(".page");
    var prev = box.querySelector("button.prev"), next = box.querySelector("button.next");
    var data = null, page = 0;
    function count() { return Math.max(1, Math.ceil(data.length / size)); }
    function show(p) {
      if (data === null) data = JSON.parse(box.querySelector("script.member-data").textContent);
      page = Math.min(Math.max(p, 0), count() - 1);
      grid.textContent = "";
      data.slice(page * size, (page + 1) * size).forEach(function (m) { grid.appendChild(figure(m)); });
      label.textContent = "page " + (page + 1) + " of " + count();
      prev.disabled = page === 0;
      next.disabled = page >= count() - 1;
    }
    box.addEventListener("toggle", function () { if (box.open && data === null) show(0); });
    prev.addEventListener("click", function () { show(page - 1); });
    next.addEventListener("click", function () { show(page + 1); });
  });
})();
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def wrappable_id(item_id: str) -> str:
    """``item_id`` escaped, with a line-break opportunity after each path separator only."""
    out, part = [], ""
    for char in item_id:
        part += char
        if char in _SEPARATORS:
            out.append(_e(part))
            part = ""
    out.append(_e(part))
    return "<wbr>".join(p for p in out if p)


def cluster_label(summary: dict[str, Any]) -> str:
    """A cluster's short label: its first name, ``weak: name?`` or ``(unnamed)``."""
    names = [str(n) for n in summary.get("names") or []]
    if not names:
        return "(unnamed)"
    return f"weak: {names[0]}?" if summary.get("weak") else names[0]


def figure_html(item_id: str, score: float | None, uri: str | None, problem: str | None, kind: str) -> str:
    """One thumbnail with its file name and labelled confidence (or why there is no image)."""
    label = (
        f'<br><span class="score" title="{_e(CONFIDENCE_MEANING)}">confidence {score:.2f}</span>'
        if score is not None
        else ""
    )
    caption = f'<figcaption><span class="id">{wrappable_id(item_id)}</span>{label}</figcaption>'
    if uri is None:
        body = f'<div class="missing">{_e(problem)}</div>' if problem else ""
        return f'<figure class="{kind} noimage">{body}{caption}</figure>'
    return (
        f'<figure class="{kind}"><img class="thumb" loading="lazy" src="{uri}" alt="{_e(item_id)}">{caption}</figure>'
    )


def names_html(summary: dict[str, Any]) -> str:
    """Every name of a cluster with its labelled score, and LAIC's center nouns."""
    names = [str(n) for n in summary.get("names") or []]
    scores = summary.get("name_scores") or []
    if not names:
        return '<p class="namelist ids">No names (the run was not named, or the cluster is empty).</p>'
    items = []
    for i, name in enumerate(names):
        score = f' <span class="nscore">score {float(scores[i]):.2f}</span>' if i < len(scores) else ""
        items.append(f'<span class="name">{_e(name)}</span>{score}')
    text = "Names: " + "; ".join(items)
    if summary.get("weak"):
        text += ' <span class="nscore">(weak: the best score is under the threshold)</span>'
    if summary.get("center_names"):
        hubs = summary.get("center_hubs") or []
        centre = [
            f"{_e(n)} (hub)" if i < len(hubs) and hubs[i] else _e(n) for i, n in enumerate(summary["center_names"][:3])
        ]
        text += f" | center: {', '.join(centre)}"
    return f'<p class="namelist">{text}</p>'


def members_html(
    k: int,
    rows: Sequence[int],
    ids: list[str],
    confidence: np.ndarray | None,
    thumbnail: Callable[[int], tuple[str | None, str | None]],
    with_thumbnail: set[int],
    page_size: int,
    n_unlisted: int = 0,
) -> str:
    """The paged browser of a cluster's members not shown in its grids."""
    if not len(rows) and not n_unlisted:
        return ""
    data = []
    for row in rows:
        uri, problem = thumbnail(row) if row in with_thumbnail else (None, None)
        score = None if confidence is None else round(float(confidence[row]), 4)
        data.append([ids[row], score, uri, problem])
    blob = json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")
    n_bare = sum(1 for row in rows if row not in with_thumbnail)
    notes = []
    if n_bare:
        notes.append(f"{n_bare} of these are listed without a thumbnail (the report's thumbnail cap).")
    if n_unlisted:
        notes.append(
            f"{n_unlisted} more members are not listed here (the report's member cap); assignments.csv has all."
        )
    note = f'<p class="ids capped">{_e(" ".join(notes))}</p>' if notes else ""
    return (
        f'<details class="members" id="members-{k}" data-page-size="{int(page_size)}">'
        f"<summary>Other members ({len(rows) + n_unlisted}), most confident first</summary>{note}"
        '<div class="pager"><button type="button" class="prev">&#8592; previous</button> '
        '<span class="page"></span> <button type="button" class="next">next &#8594;</button></div>'
        '<div class="grid page-grid"></div>'
        '<noscript><p class="ids">Paging needs JavaScript; assignments.csv lists every member.</p></noscript>'
        f'<script type="application/json" class="member-data">{blob}</script></details>'
    )


def toc_html(sections: list[tuple[str, str]], clusters: list[tuple[int, str, int]]) -> str:
    """Contents: ``(anchor, title)`` per part, and every cluster as ``(id, label, size)``."""
    parts = ['<nav class="toc" id="contents"><h2>Contents</h2><ul>']
    for anchor, title in sections:
        parts.append(f'<li><a href="#{_e(anchor)}">{_e(title)}</a>')
        if anchor == "clusters" and clusters:
            parts.append('<ul class="clusters">')
            parts += [
                f'<li><a href="#cluster-{k}">{k}: {_e(label)}</a> <span class="ids">({size})</span></li>'
                for k, label, size in clusters
            ]
            parts.append("</ul>")
        parts.append("</li>")
    parts.append("</ul></nav>")
    return "".join(parts)


def legend_html(labels: list[str], colours: list[str]) -> str:
    """The map's legend: each cluster's colour, id and label."""
    items = [
        f'<span class="item"><span class="swatch" style="background:{colours[k]}"></span> {k} {_e(label)}</span>'
        for k, label in enumerate(labels)
    ]
    return f'<p class="legend">{"".join(items)}</p>'


def summary_html(record: dict[str, Any], n_items: int, n_clusters: int, run_dir: Any) -> str:
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
        ("items clustered", n_items),
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


def metrics_html(metrics: dict[str, Any]) -> str:
    parts = ['<h2 id="metrics">Metrics (against the known labels)</h2><table class="kv metrics">']
    for key, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        parts.append(f"<tr><td>{_e(key)}</td><td>{_e(shown)}</td></tr>")
    parts.append("</table>")
    return "".join(parts)


def page_html(title: str, body: list[str]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{_e(title)}</title>",
            f"<style>{CSS}</style></head><body>",
            *body,
            f"<script>var CONFIDENCE = {json.dumps(CONFIDENCE_MEANING)};{SCRIPT}</script>",
            "</body></html>",
        ]
    )
