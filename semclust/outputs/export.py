"""Lay a run's images out as one folder per cluster, named after the cluster.

Folder sources: the original files are copied (``mode="copy"``) or symlinked (``mode="link"``).
Dataset sources have no files, so their decoded images are written as PNG in either mode.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from semclust.atomic import write_text
from semclust.outputs.report_data import open_run_source
from semclust.outputs.run_dir import read_run

EXPORT_MODES = ("copy", "link")
MANIFEST_FILE = "manifest.csv"
_UNSAFE = re.compile(r"[^\w.-]+", re.UNICODE)


class ExportError(ValueError):
    pass


def safe_name(text: str, max_len: int = 60, lower: bool = True) -> str:
    """A file-system-safe form of ``text`` (may be empty): letters, digits, ``-``, ``_``, ``.``."""
    text = unicodedata.normalize("NFKC", str(text)).strip()
    text = text.lower() if lower else text
    text = _UNSAFE.sub("-", text)
    text = re.sub(r"-{2,}", "-", text).strip("-._")
    return text[:max_len].rstrip("-._")


def cluster_folder_names(summaries: list[dict[str, Any]], n_clusters: int) -> dict[int, str]:
    """``{cluster: "03-sneaker"}``: zero-padded id + first name; ``cluster-03`` when unnamed.

    The id prefix already makes names unique; a case-insensitive check guards anyway.
    """
    width = max(2, len(str(max(n_clusters - 1, 0))))
    names_by_id = {int(s["id"]): [str(n) for n in s.get("names") or []] for s in summaries}
    result: dict[int, str] = {}
    used: set[str] = set()
    for k in range(n_clusters):
        names = names_by_id.get(k) or []
        stem = safe_name(names[0]) if names else ""
        name = f"{k:0{width}d}-{stem}" if stem else f"cluster-{k:0{width}d}"
        candidate, n = name, 2
        while candidate.lower() in used:
            candidate, n = f"{name}-{n}", n + 1
        used.add(candidate.lower())
        result[k] = candidate
    return result


def _base_name(item_id: str, suffix: str | None = None) -> str:
    """The cleaned file name ``item_id`` (a relative path or ``split/i``) exports as."""
    parts = [p for p in item_id.replace("\\", "/").split("/") if p]
    base = parts[-1] if parts else "item"
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    if suffix is not None:
        stem, ext = base, suffix.lstrip(".")
    clean_ext = safe_name(ext, max_len=10)
    clean_stem = safe_name(stem, max_len=120, lower=False) or "item"
    return f"{clean_stem}.{clean_ext}" if clean_ext else clean_stem


def _file_name(item_id: str, taken: set[str], suffix: str | None = None, shared: bool = False) -> str:
    """A unique file name in one cluster folder for ``item_id``.

    ``shared``: another item of this folder has the same base name, so every one of them is
    prefixed by its folders (``a__cat.png``, ``b__cat.png``): none wins the plain name by
    coming first. A numbered suffix settles what is still taken (same path, other case).
    """
    parts = [p for p in item_id.replace("\\", "/").split("/") if p]
    name = _base_name(item_id, suffix)
    if shared and len(parts) > 1:
        prefix = safe_name("__".join(parts[:-1]), lower=False)
        name = f"{prefix}__{name}" if prefix else name
    candidate, n = name, 2
    while candidate.lower() in taken:
        root, dot2, extension = name.rpartition(".")
        candidate = f"{root}-{n}.{extension}" if dot2 else f"{name}-{n}"
        n += 1
    taken.add(candidate.lower())
    return candidate


def export_clusters(
    run_dir: str | os.PathLike[str],
    to: str | os.PathLike[str],
    *,
    mode: str = "copy",
    force: bool = False,
) -> dict[str, Any]:
    """Write one folder per cluster under ``to``; returns the counts and the folder names.

    ``to/manifest.csv`` maps every exported file (``path`` relative to ``to``) to its source
    ``id`` and ``cluster``. Refuses a non-empty ``to`` unless ``force``; with ``force`` files of
    the same name are replaced and nothing else in ``to`` is removed.
    """
    if mode not in EXPORT_MODES:
        raise ExportError(f"mode must be one of {', '.join(EXPORT_MODES)}, got {mode!r}")
    run = read_run(run_dir)
    record = run["run"]
    target = Path(to)
    if target.exists() and not target.is_dir():
        raise ExportError(f"export target {target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise ExportError(f"export target {target} is not empty; pass force=True to write into it anyway")
    source, why = open_run_source(record)
    if source is None:
        raise ExportError(f"cannot open the images of run {run_dir}: {why}")
    paths: list[Path] | None = getattr(source, "paths", None)
    index = {item_id: i for i, item_id in enumerate(source.ids)}

    ids: list[str] = run["ids"]
    clusters = np.asarray(run["assignments"], dtype=np.int64)
    n_clusters = max(int(record.get("n_clusters") or 0), len(run["clusters"]), int(clusters.max(initial=-1)) + 1)
    folders = cluster_folder_names(run["clusters"], n_clusters)
    counts: dict[str, Any] = {"clusters": n_clusters, "copied": 0, "linked": 0, "written": 0, "missing": []}
    target.mkdir(parents=True, exist_ok=True)
    for name in folders.values():
        (target / name).mkdir(exist_ok=True)
    taken: dict[int, set[str]] = {k: set() for k in folders}
    suffix = None if paths is not None else "png"
    # Base names that occur twice or more in one cluster folder: all their files get prefixed.
    base_counts = Counter((k, _base_name(i, suffix).lower()) for i, k in zip(ids, clusters.tolist()))
    manifest: list[tuple[str, str, int]] = []
    for item_id, k in zip(ids, clusters.tolist()):
        shared = base_counts[(k, _base_name(item_id, suffix).lower())] > 1
        i = index.get(item_id)
        if i is None:
            counts["missing"].append(item_id)
            continue
        folder = target / folders[k]
        if paths is not None:
            original = Path(paths[i]).absolute()
            if not original.exists():
                counts["missing"].append(item_id)
                continue
            dest = folder / _file_name(item_id, taken[k], shared=shared)
            _clear(dest)
            if mode == "link":
                os.symlink(original, dest)
                counts["linked"] += 1
            else:
                shutil.copy2(original, dest)
                counts["copied"] += 1
        else:
            try:
                image = source.load(i)
            except Exception:
                counts["missing"].append(item_id)
                continue
            dest = folder / _file_name(item_id, taken[k], suffix=suffix, shared=shared)
            _clear(dest)
            image.save(dest, format="PNG")
            counts["written"] += 1
        manifest.append((f"{folders[k]}/{dest.name}", item_id, k))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "id", "cluster"])
    writer.writerows(manifest)
    write_text(target / MANIFEST_FILE, buffer.getvalue())
    counts["manifest"] = str(target / MANIFEST_FILE)
    counts["folders"] = {str(k): v for k, v in folders.items()}
    counts["to"] = str(target)
    counts["n_missing"] = len(counts["missing"])
    return counts


def _clear(dest: Path) -> None:
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
