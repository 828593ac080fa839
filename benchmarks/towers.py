"""Forward-pass cost of the offline visual towers (EfficientNet-Lite0 vs Lite2) on the same images.

Both towers run on the same 256 Fashion-MNIST train images at the same image size, one thread,
interleaved (Lite0, Lite2, Lite0, ...) ``--repeat`` times, so that load from other processes
affects both alike; the record keeps the best (least disturbed) pass of each and their ratio.
Writes ``benchmarks/results/towers.json``.

Run: ``.venv/bin/python benchmarks/towers.py [--image-size 128] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from semclust.data.fashion_mnist import FashionMNISTSource
from semclust.encoders.efficientnet import EfficientNetLiteTower
from semclust.encoders.preprocess import Preprocessing, images_to_tensor

sys.path.insert(0, str(Path(__file__).parent))
from common import write_records  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    source = FashionMNISTSource(split="train")
    picked = np.sort(np.random.default_rng(args.seed).choice(len(source), size=args.n, replace=False))
    batches = [
        images_to_tensor([source.load(int(i)) for i in picked[s : s + 32]], Preprocessing(args.image_size))
        for s in range(0, args.n, 32)
    ]
    towers = {m: EfficientNetLiteTower(image_size=args.image_size, model=m) for m in ("lite0", "lite2")}
    best = {m: float("inf") for m in towers}
    for _ in range(args.repeat):
        for model, tower in towers.items():
            start = time.perf_counter()
            for batch in batches:
                tower(batch)
            best[model] = min(best[model], time.perf_counter() - start)
    records = [
        {
            "method": f"efficientnet-{model}",
            "dataset": "fashion-mnist-train",
            "seed": args.seed,
            "image_size": args.image_size,
            "n": args.n,
            "threads": 1,
            "images_per_s": args.n / best[model],
            "wall_s": best[model],
            "cost_vs_lite0": best[model] / best["lite0"],
        }
        for model in towers
    ]
    write_records(Path(__file__).parent / "results" / "towers.json", records)
    for r in records:
        print(f"{r['method']}: {r['images_per_s']:.1f} images/s, {r['cost_vs_lite0']:.2f}x Lite0's time")


if __name__ == "__main__":
    main()
