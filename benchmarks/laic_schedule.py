"""LAIC's training schedule: what its steps cost against what they buy.

Every prompt-learning step sends the K prompts forward and back through the text tower, so a
fit costs (rows / batch) x epochs steps whatever the batch holds. This runs ``workflow.cluster``
with ``method="laic"`` on Fashion-MNIST test (offline encoder, cached features and nouns) for
each schedule and seed, and records ACC/NMI/ARI with the fit's wall time and step count:

- ``laic-b256-e20``: the schedule before (batch 256, 20 epochs, 800 steps);
- ``laic-b512-e20``: TAC's batch of 512 at TAC's 20 epochs (400 steps, the default now);
- ``laic-b256-e10``: the same 400 steps taken as 10 epochs of batch 256.

Run: ``.venv/bin/python benchmarks/laic_schedule.py [--jobs 2]`` -> ``benchmarks/results/laic_schedule.json``.
With ``--jobs 2`` two fits share the machine, so ``fit_s`` is then an upper bound.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from common import mean_std, write_records  # noqa: E402

SCHEDULES = {"laic-b256-e20": (256, 20), "laic-b512-e20": (512, 20), "laic-b256-e10": (256, 10)}
DATASET = "fashion-mnist:test"


def run_one(method: str, seed: int) -> dict[str, Any]:
    from semclust import workflow

    batch_size, epochs = SCHEDULES[method]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = workflow.cluster(
            f"dataset:{DATASET}",
            method="laic",
            n_clusters=10,
            random_state=seed,
            out=Path(tmp) / "run",
            method_options={"batch_size": batch_size, "epochs": epochs},
            name_clusters=False,
        )
        wall = time.perf_counter() - t0
    metrics = run.metrics or {}
    timings = run.record["timings_s"]
    return {
        "method": method,
        "dataset": DATASET,
        "seed": seed,
        "batch_size": batch_size,
        "epochs": epochs,
        "steps": epochs * -(-10_000 // batch_size),
        "acc": metrics["acc"],
        "nmi": metrics["nmi"],
        "ari": metrics["ari"],
        "fit_s": round(timings["fit"] - timings.get("nouns", 0.0), 1),
        "wall_s": round(wall, 1),
    }


def results_section(records: list[dict[str, Any]]) -> list[str]:
    if not records:
        return []
    lines = [
        "## LAIC training schedule (`benchmarks/laic_schedule.py`)",
        "",
        "Fashion-MNIST test, offline encoder, cached features and nouns; fit time without the nouns "
        "(an upper bound where two fits shared the machine).",
        "",
        "| schedule | steps | seeds | ACC | NMI | ARI | fit s (mean) |",
        "|---|---|---|---|---|---|---|",
    ]
    for method in SCHEDULES:
        rows = [r for r in records if r["method"] == method]
        if not rows:
            continue
        per_seed = " / ".join(f"{r['acc']:.3f}" for r in sorted(rows, key=lambda r: r["seed"]))
        lines.append(
            f"| {method} | {rows[0]['steps']} | {len(rows)} | {mean_std([r['acc'] for r in rows])} ({per_seed}) | "
            f"{mean_std([r['nmi'] for r in rows])} | {mean_std([r['ari'] for r in rows])} | "
            f"{sum(r['fit_s'] for r in rows) / len(rows):.1f} |"
        )
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(SCHEDULES), choices=list(SCHEDULES))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", default=str(HERE / "results" / "laic_schedule.json"))
    args = parser.parse_args()
    tasks = [(method, seed) for method in args.methods for seed in args.seeds]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        records = list(pool.map(run_one, *zip(*tasks)))
    for r in records:
        print(r)
    write_records(args.out, records)


if __name__ == "__main__":
    main()
