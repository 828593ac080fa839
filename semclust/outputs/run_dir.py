"""A run directory: the unit of output of every clustering run.

``assignments.csv`` (id, cluster), ``clusters.json`` (id, size, names), ``metrics.json``
(when labels are known) and ``run.json`` (configuration, seed, versions, timings). Every file
is written atomically.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from semclust.atomic import read_json, write_json, write_text

RUN_FILES = ("assignments.csv", "clusters.json", "metrics.json", "run.json")
# Epoch checkpoints of a training method (semclust.store.checkpoint) while the run is unfinished.
CHECKPOINT_DIR = "checkpoint"


class RunDirError(ValueError):
    pass


def prepare_run_dir(out_dir: str | os.PathLike[str], force: bool = False, resume: bool = False) -> Path:
    """Create ``out_dir``; refuse to overwrite a non-empty one unless ``force``.

    ``resume`` accepts a directory that holds no finished run (no ``run.json``), e.g. one
    with the ``checkpoint/`` of a killed training run, and keeps what is in it.
    """
    path = Path(out_dir)
    if resume and force:
        raise RunDirError("resume=True and force=True contradict each other; pass one")
    if path.exists() and not path.is_dir():
        raise RunDirError(f"output {path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        if resume:
            if (path / "run.json").is_file():
                raise RunDirError(
                    f"{path} holds a finished run (run.json); nothing to resume, pass force=True to redo it"
                )
        elif not force:
            hint = " or resume=True to continue its training" if (path / CHECKPOINT_DIR).is_dir() else ""
            raise RunDirError(
                f"output directory {path} already exists and is not empty; pass force=True to overwrite{hint}"
            )
        else:
            for name in RUN_FILES:
                (path / name).unlink(missing_ok=True)
            for name in ("model", CHECKPOINT_DIR):
                if (path / name).is_dir():
                    shutil.rmtree(path / name)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_assignments(path: str | os.PathLike[str], ids: Sequence[str], clusters: np.ndarray) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "cluster"])
    for item_id, cluster in zip(ids, np.asarray(clusters).tolist()):
        writer.writerow([item_id, int(cluster)])
    write_text(path, buffer.getvalue())


def read_assignments(path: str | os.PathLike[str]) -> tuple[list[str], np.ndarray]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [r["id"] for r in rows], np.array([int(r["cluster"]) for r in rows], dtype=np.int64)


def cluster_summaries(
    clusters: np.ndarray,
    n_clusters: int,
    names: Sequence[Sequence[str]] | None,
    naming: Sequence[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One record per cluster: id, size, names and, when given, each name's score, synset, the
    cluster's ``weak`` flag and the naming source (``naming[k]``, e.g. ``ClusterNaming.summary(k)``)."""
    sizes = np.bincount(np.asarray(clusters, dtype=np.int64), minlength=n_clusters)
    return [
        {
            "id": k,
            "size": int(sizes[k]),
            "names": list(names[k]) if names is not None else [],
            **(dict(naming[k]) if naming is not None else {}),
        }
        for k in range(n_clusters)
    ]


def write_run(
    out_dir: Path,
    *,
    ids: Sequence[str],
    clusters: np.ndarray,
    n_clusters: int,
    cluster_names: Sequence[Sequence[str]] | None,
    metrics: dict[str, Any] | None,
    run_record: dict[str, Any],
    cluster_naming: Sequence[dict[str, Any]] | None = None,
) -> None:
    write_assignments(out_dir / "assignments.csv", ids, clusters)
    write_json(out_dir / "clusters.json", cluster_summaries(clusters, n_clusters, cluster_names, cluster_naming))
    if metrics is not None:
        write_json(out_dir / "metrics.json", metrics)
    write_json(out_dir / "run.json", run_record)


def read_run(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(out_dir)
    if not (path / "run.json").is_file():
        raise RunDirError(f"{path} is not a semclust run directory (no run.json)")
    run = {"run": read_json(path / "run.json"), "clusters": read_json(path / "clusters.json")}
    if (path / "metrics.json").is_file():
        run["metrics"] = read_json(path / "metrics.json")
    run["ids"], run["assignments"] = read_assignments(path / "assignments.csv")
    return run
