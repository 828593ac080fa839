"""How ASD's class-transition grouping improves with the instance stage's training budget.

ASD's final accuracy follows the purity of the cluster labels it gives its sampled images (the
pseudo-labels FixMatch then trains on; see ``benchmarks/asd.py``). This measures that purity
alone: the instance stage (small CNN, FixMatch with one class per sampled image) for each
``--instance-steps`` budget on the same seeded Fashion-MNIST train subset as ``asd.py``, then
grouping by class transitions. The SSL stage is cut to one step, so ``wall_s`` is essentially
the instance stage. Purity = accuracy of the sampled images' groups against their true classes
(Hungarian matching); the labels are used for nothing else.

Run: ``.venv/bin/python benchmarks/asd_budget.py [--instance-steps 400 800 1600] [--seeds 0]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from semclust.data.registry import open_source
from semclust.methods.asd import ASD
from semclust.ssl.data import source_arrays

sys.path.insert(0, str(Path(__file__).parent))
from asd import DATASET, K, _subset  # noqa: E402
from common import write_records  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instance-steps", type=int, nargs="*", default=[400, 800, 1600])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--n-train", type=int, default=10000)
    parser.add_argument("--n-labelled", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--mu", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--append", action="store_true", help="keep records of other (seed, steps) in --out")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "asd_budget.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    x_train, y_train = source_arrays(open_source(f"dataset:{DATASET}:train"))
    records: list[dict[str, Any]] = []
    if args.append and Path(args.out).exists():
        done = {(s, n) for s in args.seeds for n in args.instance_steps}
        records = [r for r in json.loads(Path(args.out).read_text()) if (r["seed"], r["instance_steps"]) not in done]
    for seed in args.seeds:
        sub = _subset(len(x_train), args.n_train, seed)
        xs, ys = x_train[sub], y_train[sub]
        for steps in args.instance_steps:
            start = time.perf_counter()
            asd = ASD(
                n_clusters=K,
                n_labelled=args.n_labelled,
                instance_steps=steps,
                ssl_steps=1,
                batch_size=args.batch_size,
                mu=args.mu,
                random_state=seed,
            ).fit(xs, y=ys)
            wall = time.perf_counter() - start
            records.append(
                {
                    "method": "asd-instance-stage",
                    "dataset": DATASET,
                    "seed": seed,
                    "instance_steps": steps,
                    "purity": asd.pseudo_label_purity_,
                    "classes_covered": asd.classes_covered_,
                    "transitions_counted": int(asd.transitions_.sum()),
                    "co_predictions_used": bool(asd.co_predictions_used_),
                    "n_train": int(len(sub)),
                    "n_labelled": args.n_labelled,
                    "network": "cnn",
                    "batch_size": args.batch_size,
                    "mu": args.mu,
                    "threads": args.threads,
                    "wall_s": wall,
                }
            )
            write_records(args.out, sorted(records, key=lambda r: (r["seed"], r["instance_steps"])))
            print(f"seed {seed} steps {steps}: purity {asd.pseudo_label_purity_:.3f} ({wall:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
