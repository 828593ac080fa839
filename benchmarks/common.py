"""Shared by the benchmark scripts: records to JSON, mean +- std summaries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


def write_records(path: str | Path, records: list[dict[str, Any]]) -> None:
    """Each benchmark owns one results file: a list of records, one per run."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1, default=float) + "\n")


def mean_std(values: list[float]) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.4f} ± {values.std(ddof=0):.4f}"
