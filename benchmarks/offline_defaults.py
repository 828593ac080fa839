"""Choose the offline encoder's defaults (image size, ConSE top-T, class-text template) on
TRAINING data only: a seeded 2,000-image subset of Fashion-MNIST train, and digits.

For every image size the visual tower runs once; top-T and the class template only change
the cheap bridge, so they are swept on the cached logits. Writes
``benchmarks/results/offline_defaults.json`` (one record per setting).

Selection rule (stated before looking at the numbers):
- image size: the smallest size whose mean kNN-10 purity (visual and joint views, both
  datasets) is within 1 point of the best size, among sizes fast enough for the demo budget
  (>= 60 images/s, i.e. 10k images in under 3 minutes on 2 cores);
- top-T and template: the pair with the highest mean of joint kNN-10 purity and zero-shot
  accuracy over the two datasets, at the chosen size.

Run: ``.venv/bin/python benchmarks/offline_defaults.py``
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from semclust.data.digits import DigitsSource
from semclust.data.fashion_mnist import FashionMNISTSource
from semclust.encoders.base import l2_normalize
from semclust.encoders.bridge import ConSEBridge
from semclust.encoders.imagenet import imagenet_class_names
from semclust.encoders.offline import OfflineEncoder
from semclust.methods.zeroshot import build_class_embeddings
from semclust.metrics import evaluate
from semclust.ops.kmeans import spherical_kmeans
from semclust.ops.knn import knn, neighbour_purity

sys.path.insert(0, str(Path(__file__).parent))
from common import write_records  # noqa: E402

IMAGE_SIZES = (64, 96, 128, 160, 224)
TOP_TS = (1, 3, 5, 10, 20, 50, 1000)
TEMPLATES = ("{}", "a photo of a {}.")
ZEROSHOT_TEMPLATES = ["a photo of a {}."]
MIN_IMAGES_PER_S = 60.0


def training_subsets(n_fashion: int, seed: int) -> dict[str, tuple[list, np.ndarray, list[str]]]:
    fashion = FashionMNISTSource(split="train")
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(fashion), size=n_fashion, replace=False))
    digits = DigitsSource()
    return {
        "fashion-mnist-train": ([fashion.load(int(i)) for i in picked], fashion.labels[picked], fashion.class_names),
        "digits": ([digits.load(i) for i in range(len(digits))], digits.labels, digits.class_names),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-fashion", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(IMAGE_SIZES))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "offline_defaults.json"))
    parser.add_argument(
        "--timing-only",
        action="store_true",
        help="re-measure images/s per size on an otherwise idle machine and update the existing records",
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.timing_only:
        retime(Path(args.out), args.seed)
        return

    data = training_subsets(args.n_fashion, args.seed)
    text_encoder = OfflineEncoder()
    class_texts = {t: text_encoder.encode_texts([t.format(n) for n in imagenet_class_names()]) for t in TEMPLATES}
    zeroshot_classes = {
        name: build_class_embeddings(text_encoder.encode_texts, list(names), ZEROSHOT_TEMPLATES)
        for name, (_, _, names) in data.items()
    }
    records = []
    for size in args.sizes:
        encoder = OfflineEncoder(image_size=size, batch_size=32)
        encoder.visual_and_logits(data["digits"][0][:32])  # warm-up, excluded from timing
        for dataset, (images, labels, _) in data.items():
            start = time.perf_counter()
            features, logits = encoder.visual_and_logits(images)
            forward_s = time.perf_counter() - start
            visual = l2_normalize(features)
            visual_purity = neighbour_purity(knn(visual, 10)[0], labels)
            visual_km = evaluate(labels, spherical_kmeans(visual, 10, n_init=3, random_state=args.seed).labels)
            for template, top_t in itertools.product(TEMPLATES, TOP_TS):
                start = time.perf_counter()
                joint = ConSEBridge(class_texts[template], top_t=top_t)(logits)
                joint_km = evaluate(labels, spherical_kmeans(joint, 10, n_init=3, random_state=args.seed).labels)
                zeroshot = (joint @ zeroshot_classes[dataset].T).argmax(1)
                record = {
                    "method": "offline-encoder",
                    "dataset": dataset,
                    "seed": args.seed,
                    "image_size": size,
                    "top_t": top_t,
                    "class_template": template,
                    "n": len(labels),
                    "images_per_s": len(labels) / forward_s,
                    "knn10_purity_visual": visual_purity,
                    "knn10_purity_joint": neighbour_purity(knn(joint, 10)[0], labels),
                    "zeroshot_acc": float((zeroshot == labels).mean()),
                    "kmeans_visual_acc": visual_km["acc"],
                    "acc": joint_km["acc"],
                    "nmi": joint_km["nmi"],
                    "ari": joint_km["ari"],
                    "wall_s": forward_s + time.perf_counter() - start,
                }
                records.append(record)
            print(
                f"size {size} {dataset}: {len(labels) / forward_s:.1f} img/s, visual purity {visual_purity:.3f}",
                flush=True,
            )
    write_records(args.out, records)
    choice = choose_defaults(records)
    print("chosen:", choice)


def retime(path: Path, seed: int, n_images: int = 1024) -> None:
    """Throughput of the visual tower alone (forward pass incl. resize), per image size."""
    records = json.loads(path.read_text())
    images = training_subsets(n_images, seed)["fashion-mnist-train"][0]
    for size in sorted({r["image_size"] for r in records}):
        encoder = OfflineEncoder(image_size=size, batch_size=32)
        encoder.visual_and_logits(images[:64])
        start = time.perf_counter()
        encoder.visual_and_logits(images)
        rate = len(images) / (time.perf_counter() - start)
        for r in records:
            if r["image_size"] == size:
                r["images_per_s"] = rate
        print(f"size {size}: {rate:.1f} images/s", flush=True)
    write_records(path, records)


def choose_defaults(records: list[dict]) -> dict:
    sizes = sorted({r["image_size"] for r in records})
    fast = [s for s in sizes if min(r["images_per_s"] for r in records if r["image_size"] == s) >= MIN_IMAGES_PER_S]
    candidates = fast or sizes[:1]

    def size_score(size: int) -> float:
        rows = [r for r in records if r["image_size"] == size]
        best_joint = max(r["knn10_purity_joint"] for r in rows)
        return float(np.mean([np.mean([r["knn10_purity_visual"] for r in rows]), best_joint]))

    best = max(size_score(s) for s in candidates)
    size = min(s for s in candidates if size_score(s) >= best - 0.01)
    rows = [r for r in records if r["image_size"] == size]
    pairs = {(r["top_t"], r["class_template"]) for r in rows}

    def pair_score(pair: tuple[int, str]) -> float:
        chosen = [r for r in rows if (r["top_t"], r["class_template"]) == pair]
        return float(np.mean([(r["knn10_purity_joint"] + r["zeroshot_acc"]) / 2 for r in chosen]))

    top_t, template = max(sorted(pairs, key=str), key=pair_score)
    return {"image_size": size, "top_t": top_t, "class_template": template, "score": pair_score((top_t, template))}


if __name__ == "__main__":
    main()
