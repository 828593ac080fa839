"""Record every registry method's assignments on scikit-learn's digits, to compare two commits.

    python scripts/record_assignments.py OUT.json          # record
    python scripts/record_assignments.py OUT.json --against BEFORE.json   # record and compare

Each method runs through ``semclust.workflow.cluster`` (the path the CLI takes) on one cached
offline feature store, with small training budgets so the whole check takes a few minutes on
a CPU. The record holds, per method, the SHA-256 of the assignments and the ACC.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

SMALL = {
    "kmeans": {},
    "zeroshot": {},
    "tac-notrain": {},
    "tac": {"epochs": 3},
    "laic-notrain": {},
    "laic": {"epochs": 2},
    "scan": {"epochs": 3, "self_label": False},
    "asd": {"instance_steps": 40, "ssl_steps": 40, "checkpoint_every": 20},
}


def _options(method: str, known: dict) -> dict:
    """The small budget; asd on the paper's backbone (trained on pixels) where the parameter
    exists, so a record made before the frozen backbone compares like with like."""
    options = dict(SMALL[method])
    if method == "asd" and "backbone" in known:
        options["backbone"] = "scratch"
    return options


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--against")
    parser.add_argument("--methods", default=",".join(SMALL))
    args = parser.parse_args()
    from semclust import workflow
    from semclust.methods.registry import get_spec

    record: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in args.methods.split(","):
            run = workflow.cluster(
                "dataset:digits",
                method=method,
                n_clusters=None if method == "zeroshot" else 10,
                random_state=0,
                out=Path(tmp) / method,
                method_options=_options(method, get_spec(method).parameters()),
            )
            csv = (Path(tmp) / method / "assignments.csv").read_bytes()
            record[method] = {
                "assignments_sha256": hashlib.sha256(csv).hexdigest(),
                "acc": run.metrics["acc"] if run.metrics else None,
            }
            print(method, record[method], flush=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    if args.against:
        before = json.loads(Path(args.against).read_text())
        differ = [m for m in record if m in before and before[m] != record[m]]
        print("same assignments for", len(record) - len(differ), "methods; differ:", differ or "none")
        return 1 if differ else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
