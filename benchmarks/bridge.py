"""Compare the offline encoder's bridge variants on TRAINING data only: a seeded 2,000-image
subset of Fashion-MNIST train, and digits (issue 9).

The visual tower runs once per dataset (image size 128, the current default); every bridge
variant is a cheap function of the cached features and logits. For each variant and dataset
the record holds kNN-10 purity in the visual and joint views, zero-shot accuracy with the
dataset's class names ("a photo of a {}."), spherical k-means ACC/NMI/ARI in the joint view
(acc/nmi/ari) and the visual view, images/s of the forward pass and the options. Writes
``benchmarks/results/bridge.json``.

Selection rule (stated before looking at the numbers): the variant with the highest mean,
over the two training sets, of (joint kNN-10 purity + zero-shot accuracy) / 2; ties go to the
variant listed first (simpler first). The issue's targets are checked and printed for it:
joint kNN-10 purity on Fashion-MNIST within 10 points of the visual view, and zero-shot
accuracy at least double the plain ConSE bridge's (mean over the two sets).

Run: ``.venv/bin/python benchmarks/bridge.py`` (``--n-fashion 300`` for a quick look).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from semclust.encoders.evaluate import evaluate_bridge
from semclust.encoders.offline import OfflineEncoder

sys.path.insert(0, str(Path(__file__).parent))
from common import write_records  # noqa: E402
from offline_defaults import training_subsets  # noqa: E402


def variant_grid() -> list[dict]:
    grid: list[dict] = [{"bridge": "conse", "class_text": t} for t in ("name", "gloss", "hypernym")]
    grid += [
        {"bridge": "linear", "class_text": t, "bridge_lambda": lam}
        for t in ("name", "gloss")
        for lam in (0.1, 1.0, 10.0)
    ]
    grid += [{"bridge": "linear", "class_text": "hypernym", "bridge_lambda": 1.0}]
    grid += [{"bridge": "procrustes", "class_text": t} for t in ("name", "gloss")]
    grid += [
        {"bridge": "mix", "class_text": t, "bridge_lambda": 1.0, "bridge_alpha": a}
        for t in ("name", "gloss")
        for a in (0.25, 0.5, 0.75)
    ]
    return grid


def variant_label(options: dict) -> str:
    parts = [options["bridge"], options["class_text"]]
    if options["bridge"] in ("linear", "mix"):
        parts.append(f"lambda={options['bridge_lambda']:g}")
    if options["bridge"] == "mix":
        parts.append(f"alpha={options['bridge_alpha']:g}")
    return "/".join(parts)


def choose(records: list[dict], grid: list[dict]) -> tuple[str, float]:
    labels = [variant_label(g) for g in grid]

    def score(label: str) -> float:
        rows = [r for r in records if r["variant"] == label]
        return float(np.mean([(r["knn10_purity_joint"] + r["zeroshot_acc"]) / 2 for r in rows]))

    best = max(labels, key=lambda label: (score(label), -labels.index(label)))
    return best, score(best)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-fashion", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bridge.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = training_subsets(args.n_fashion, args.seed)
    encoder = OfflineEncoder(batch_size=32)
    encoder.visual_and_logits(data["digits"][0][:32])  # load + warm-up, excluded from timing
    grid = variant_grid()
    records = []
    for dataset, (images, labels, class_names) in data.items():
        start = time.perf_counter()
        rows = evaluate_bridge(encoder, labels, class_names, images=images, variants=grid, seed=args.seed)
        for options, row in zip(grid, rows):
            label = variant_label(options)
            records.append(
                {
                    "method": f"bridge:{label}",
                    "variant": label,
                    "dataset": dataset,
                    "seed": args.seed,
                    "n": row["n"],
                    "acc": row["acc"],
                    "nmi": row["nmi"],
                    "ari": row["ari"],
                    "knn10_purity_visual": row["knn10_purity_visual"],
                    "knn10_purity_joint": row["knn10_purity_joint"],
                    "zeroshot_acc": row["zeroshot_acc"],
                    "kmeans_acc_visual": row["kmeans_acc_visual"],
                    "kmeans_nmi_visual": row["kmeans_nmi_visual"],
                    "kmeans_ari_visual": row["kmeans_ari_visual"],
                    "images_per_s": row["images_per_s"],
                    "wall_s": row["embed_s"] + row["bridge_s"],
                    "options": row["options"],
                    "bridge": row["bridge"],
                }
            )
            print(
                f"{dataset:20s} {label:32s} purity v/j {row['knn10_purity_visual']:.3f}/"
                f"{row['knn10_purity_joint']:.3f}  zs {row['zeroshot_acc']:.3f}  km-acc j {row['acc']:.3f}",
                flush=True,
            )
        print(f"{dataset}: {time.perf_counter() - start:.0f}s, {rows[0]['images_per_s']:.1f} images/s", flush=True)
    write_records(args.out, records)

    best, score = choose(records, grid)
    print(f"chosen by the rule: {best} (score {score:.4f})")
    fashion = {r["variant"]: r for r in records if r["dataset"] == "fashion-mnist-train"}
    gap = fashion[best]["knn10_purity_visual"] - fashion[best]["knn10_purity_joint"]
    zs = {v: np.mean([r["zeroshot_acc"] for r in records if r["variant"] == v]) for v in fashion}
    print(
        f"targets: Fashion-MNIST purity gap {100 * gap:.1f} points (target <= 10); "
        f"zero-shot {zs[best]:.3f} vs ConSE {zs['conse/name']:.3f} (target >= 2x)"
    )


if __name__ == "__main__":
    main()
