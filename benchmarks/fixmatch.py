"""FixMatch on Fashion-MNIST with N labels per class against the same network trained on every label.

Runs ``semclust ssl fixmatch`` (the user's command) and reads each run's ``metrics.json``:
``fixmatch`` with ``--labels-per-class N`` and ``supervised-all`` with all 6,000 labels per
class and ``--lambda-u 0`` (no unlabelled loss), same network, steps and batch. Writes
``benchmarks/results/fixmatch.json``.

Run: ``.venv/bin/python benchmarks/fixmatch.py [--labels-per-class 40] [--steps 1500] [--seeds 0]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import write_records  # noqa: E402

SEMCLUST = Path(sys.executable).parent / "semclust"


def run(args: list[str], out: Path) -> tuple[dict, float]:
    start = time.perf_counter()
    subprocess.run([str(SEMCLUST), "ssl", "fixmatch", *args, "--out", str(out)], check=True)
    return json.loads((out / "metrics.json").read_text()), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels-per-class", type=int, default=40)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    args = parser.parse_args()
    common = ["--dataset", "fashion-mnist", "--steps", str(args.steps), "--network", "cnn"]
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            settings = {
                "fixmatch": ["--labels-per-class", str(args.labels_per_class)],
                "supervised-all": ["--labels-per-class", "6000", "--lambda-u", "0"],
            }
            for method, extra in settings.items():
                metrics, wall = run([*common, *extra, "--seed", str(seed)], Path(tmp) / f"{method}-{seed}")
                records.append(
                    {
                        "method": method, "dataset": "fashion-mnist", "seed": seed,
                        "labels_per_class": int(extra[1]), "steps": args.steps, "network": "cnn",
                        "acc": metrics["acc"], "top1": metrics["top1"], "nmi": metrics["nmi"], "ari": metrics["ari"],
                        "wall_s": wall,
                    }
                )  # fmt: skip
                write_records(Path(__file__).parent / "results" / "fixmatch.json", records)
                print(f"{method} seed {seed}: top-1 {metrics['top1']:.4f} ({wall:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
