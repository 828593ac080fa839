"""Which predictions ASD's instance stage should record on a frozen backbone (the default it chose).

ASD counts class transitions of the instance classifier's predictions; the paper leaves the
transition window and the tracked images open (RESEARCH.md section 4). This runs frozen-backbone
ASD on the seeded 10k Fashion-MNIST *train* subset of ``benchmarks/asd.py`` (its cached views)
under several recording settings and scores the grouping purity of the sampled images and the
ACC of ``labels_`` on that same train subset. The labels only score; the test split is never
read, so the test figures of ``benchmarks/asd.py`` stay unseen by this choice.

Run: ``.venv/bin/python benchmarks/asd_recording.py [--seeds 0 1 2] [--configs base w1-all]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semclust.methods.asd import ASD, default_n_labelled
from semclust.metrics import evaluate

sys.path.insert(0, str(Path(__file__).parent))
from asd_frozen import prepare  # noqa: E402
from common import mean_std, write_records  # noqa: E402

# name -> ASD parameters; the pixel backbone's recording (last half, 5,000 images) is "base"
CONFIGS: dict[str, dict[str, Any]] = {
    "base": {"transition_window": 0.5, "max_tracked": 5000},
    "whole-stage": {"transition_window": 1.0, "max_tracked": 5000},
    "every-image": {"transition_window": 0.5, "max_tracked": None},
    "whole-stage, every image (default)": {},
    "whole-stage, every image, co-predictions": {"co_prediction": True},
    "whole-stage, every image, + feature similarity": {"similarity": "combined"},
    "whole-stage, every image, 1000 steps": {"instance_steps": 1000},
    "whole-stage, every image, keep_confident 0.5": {"keep_confident": 0.5},
    "whole-stage, every image, prototype sampler + 5 neighbours": {"sampler": "prototype", "n_neighbours": 5},
    "whole-stage, every image, 600 SSL steps": {"ssl_steps": 600},
    "whole-stage, every image, MLP head (128 hidden)": {"hidden": 128},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "asd_recording.json"))
    parser.add_argument("--append", action="store_true", help="keep --out's records of the other configs")
    args = parser.parse_args()
    torch.set_num_threads(2)
    data, _ = prepare("fashion-mnist", 10000, 2, 2, 2)
    x, y, features, views = data["x"], data["y"], data["features"], data["views"]
    k = data["n_clusters"]
    n_l = int(np.ceil(default_n_labelled(len(features), k) / k) * k)
    head = {"batch_size": 64, "mu": 7, "lr": 0.03, "threshold": 0.95, "hidden": 0}
    records: list[dict[str, Any]] = []
    if args.append and Path(args.out).is_file():
        records = [r for r in json.loads(Path(args.out).read_text()) if r["config"] not in args.configs]
    for name in args.configs:
        for seed in args.seeds:
            start = time.perf_counter()
            params = {"instance_steps": 300, "ssl_steps": 300, **CONFIGS[name]}
            asd = ASD(n_clusters=k, n_labelled=n_l, backbone="frozen", random_state=seed, **{**head, **params})
            asd.fit(x, y=y, features=features, views=views)  # y only scores the grouping
            metrics = evaluate(y, asd.labels_)
            records.append(
                {
                    "method": "asd-frozen",
                    "config": name,
                    "dataset": "fashion-mnist:train[10k subset, seed 0]",
                    "seed": seed,
                    "pseudo_label_purity": asd.pseudo_label_purity_,
                    "acc": metrics["acc"],
                    "nmi": metrics["nmi"],
                    "ari": metrics["ari"],
                    "transitions_counted": int(asd.transitions_.sum()),
                    "params": dict(params),
                    "n_labelled": n_l,
                    "wall_s": time.perf_counter() - start,
                }
            )
            write_records(args.out, records)
            print(name, seed, f"purity {asd.pseudo_label_purity_:.2f} acc {metrics['acc']:.4f}", flush=True)


def results_section(records: list[dict]) -> list[str]:
    if not records:
        return []
    lines = [
        "## ASD's recording on a frozen backbone (`benchmarks/asd_recording.py`)",
        "",
        "Frozen-backbone ASD on the seeded 10k Fashion-MNIST *train* subset (labels only score; the test "
        "split is never read): grouping purity of the sampled images and ACC of `labels_` on that subset. "
        "300 instance + 300 SSL steps, `n_l` = 100, 2 + 2 cached views. Wall times were measured beside "
        "other benchmarks on the 2 cores (contended): they compare nothing.",
        "",
        "| recording | seeds | pseudo-label purity | ACC (train subset) | transitions counted | wall s |",
        "|---|---|---|---|---|---|",
    ]
    names = list(dict.fromkeys(r["config"] for r in records))
    for name in names:
        rows = [r for r in records if r["config"] == name]
        lines.append(
            f"| {name} | {len(rows)} | {mean_std([r['pseudo_label_purity'] for r in rows])} "
            f"| {mean_std([r['acc'] for r in rows])} | {np.mean([r['transitions_counted'] for r in rows]):.0f} "
            f"| {np.mean([r['wall_s'] for r in rows]):.1f} |"
        )
    return lines + [""]


if __name__ == "__main__":
    main()
