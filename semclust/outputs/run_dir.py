"""A run directory: the unit of output of every clustering run.

``assignments.csv`` (id, cluster), ``clusters.json`` (id, size, names), ``metrics.json``
(when labels are known) and ``run.json`` (configuration, seed, versions, timings). Every file
is written atomically. :func:`prepare_run_dir` readies the directory of every kind of run
(:data:`CLUSTER_RUN`, and :data:`SSL_RUN` for ``semclust ssl ...``).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semclust.atomic import read_json, write_json, write_text

# Epoch checkpoints of a training method (semclust.store.checkpoint) while the run is unfinished.
CHECKPOINT_DIR = "checkpoint"
MODEL_DIR = "model"


@dataclass(frozen=True)
class RunKind:
    """What one kind of run writes into its directory: files, and folders (its saved model and
    training checkpoint), all removed by ``--force``."""

    name: str
    files: tuple[str, ...]
    dirs: tuple[str, ...] = (MODEL_DIR, CHECKPOINT_DIR)


CLUSTER_RUN = RunKind("cluster", ("assignments.csv", "clusters.json", "metrics.json", "run.json"))
# ``semclust ssl ...``: the trainer's log.json besides; its checkpoint stays after the run.
SSL_RUN = RunKind("ssl", ("metrics.json", "log.json", "run.json"))
RUN_FILES = CLUSTER_RUN.files


class RunDirError(ValueError):
    pass


def prepare_run_dir(
    out_dir: str | os.PathLike[str], force: bool = False, resume: bool = False, kind: RunKind = CLUSTER_RUN
) -> Path:
    """Create ``out_dir``; refuse to overwrite a non-empty one unless ``force`` (which removes
    what a run of ``kind`` writes there, nothing else).

    ``resume`` accepts a directory that holds a training checkpoint (``checkpoint/``), or no
    finished run (no ``run.json``), and keeps what is in it. A finished cluster run removed its
    checkpoint, so it has nothing to resume; a finished ssl run keeps its final checkpoint, and
    resuming it re-scores that checkpoint.
    """
    path = Path(out_dir)
    if resume and force:
        raise RunDirError("resume=True and force=True contradict each other; pass one")
    if path.exists() and not path.is_dir():
        raise RunDirError(f"output {path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        has_checkpoint = (path / CHECKPOINT_DIR).is_dir()
        if resume:
            if (path / "run.json").is_file() and not has_checkpoint:
                raise RunDirError(
                    f"{path} holds a finished run (run.json); nothing to resume, pass force=True to redo it"
                )
        elif not force:
            found = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
            shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
            hint = " or resume=True to continue its training" if has_checkpoint else ""
            raise RunDirError(
                f"output directory {path} already exists and is not empty ({shown}); pass force=True to overwrite{hint}"
            )
        else:
            for name in kind.files:
                (path / name).unlink(missing_ok=True)
            for name in kind.dirs:
                if (path / name).is_dir():
                    shutil.rmtree(path / name)
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove_if_empty(path: Path) -> None:
    """Remove ``path`` and its empty subfolders if no file is anywhere below it."""
    if path.is_dir() and not any(p.is_file() or p.is_symlink() for p in path.rglob("*")):
        shutil.rmtree(path, ignore_errors=True)


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
