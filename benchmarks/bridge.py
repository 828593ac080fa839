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
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from semclust.encoders.imagenet import imagenet_class_names
from semclust.encoders.offline import OfflineEncoder
from semclust.outputs.encoder_report import embed_once, evaluate_bridge

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


def top_imagenet_classes(logits: torch.Tensor, labels: np.ndarray, class_names: list[str], top: int = 3) -> dict:
    """Per dataset class: its images' most frequent top-1 ImageNet classes and their share.

    Shows what the classifier the bridge stands on recognises in these images: no bridge can
    name a class whose images the classifier maps to unrelated ImageNet classes.
    """
    imagenet = imagenet_class_names()
    top1 = torch.as_tensor(logits).argmax(dim=1).numpy()
    out = {}
    for c, name in enumerate(class_names):
        counts = np.bincount(top1[labels == c], minlength=len(imagenet))
        best = counts.argsort()[::-1][:top]
        out[str(name)] = [[imagenet[i], round(float(counts[i] / max(1, counts.sum())), 3)] for i in best]
    return out


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
    parser.add_argument("--visual-model", default="lite0", help="lite0 (default tower) or lite2")
    parser.add_argument(
        "--append", action="store_true", help="add to --out, replacing only records of this visual model"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = training_subsets(args.n_fashion, args.seed)
    encoder = OfflineEncoder(batch_size=32, visual_model=args.visual_model)
    encoder.visual_and_logits(data["digits"][0][:32])  # load + warm-up, excluded from timing
    grid = variant_grid()
    records = []
    for dataset, (images, labels, class_names) in data.items():
        start = time.perf_counter()
        embedded = embed_once(encoder, images)
        rows = evaluate_bridge(
            encoder, labels, class_names, features=embedded["features"], logits=embedded["logits"],
            variants=grid, seed=args.seed,
        )  # fmt: skip
        diagnosis = top_imagenet_classes(embedded["logits"], labels, class_names)
        for options, row in zip(grid, rows):
            row = {**row, "images_per_s": embedded["images_per_s"], "embed_s": embedded["embed_s"]}
            label = variant_label(options)
            records.append(
                {
                    "method": f"bridge:{label}",
                    "variant": label,
                    "visual_model": args.visual_model,
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
                    "top1_imagenet_by_class": diagnosis,
                }
            )
            print(
                f"{dataset:20s} {label:32s} purity v/j {row['knn10_purity_visual']:.3f}/"
                f"{row['knn10_purity_joint']:.3f}  zs {row['zeroshot_acc']:.3f}  km-acc j {row['acc']:.3f}",
                flush=True,
            )
        print(f"{dataset}: {time.perf_counter() - start:.0f}s, {embedded['images_per_s']:.1f} images/s", flush=True)
    if args.append and Path(args.out).exists():
        previous = json.loads(Path(args.out).read_text())
        kept = [r for r in previous if r.get("visual_model", "lite0") != args.visual_model]
        write_records(args.out, kept + records)
    else:
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
