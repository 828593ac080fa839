"""Foundation benchmark: offline-encoder throughput on Fashion-MNIST test (10k) and the
k-means / zero-shot baselines over 5 seeds.

Writes ``benchmarks/results/foundation.json``; ``benchmarks/make_results.py`` turns every
results file into ``benchmarks/RESULTS.md``.

Run: ``.venv/bin/python benchmarks/foundation.py [--seeds 0 1 2 3 4]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from semclust.data.registry import open_source
from semclust.encoders.registry import get_encoder
from semclust.methods.registry import run_method
from semclust.metrics import evaluate
from semclust.store.feature_store import build_store
from semclust.workflow import feature_set_from_store

sys.path.insert(0, str(Path(__file__).parent))
from common import write_records  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default="dataset:fashion-mnist:test")
    parser.add_argument("--encoder", default="offline")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "foundation.json"))
    args = parser.parse_args()
    torch.set_num_threads(2)

    source = open_source(args.source)
    dataset = args.source.removeprefix("dataset:")
    encoder = get_encoder(args.encoder)
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        # A fresh store so the whole pipeline (decode, preprocess, forward, bridge, write) is timed.
        report = build_store(source, encoder, Path(tmp) / "store")
        records.append(
            {
                "method": "embed",
                "dataset": dataset,
                "seed": None,
                "encoder": args.encoder,
                "encoder_options": encoder.config()["options"],
                "n": report.n_items,
                "images_per_s": report.n_items / report.wall_s,
                "wall_s": report.wall_s,
            }
        )
        print(f"embedded {report.n_items} images in {report.wall_s:.1f}s", flush=True)
        from semclust.store.feature_store import FeatureStore

        features = feature_set_from_store(FeatureStore(Path(tmp) / "store"))
        runs = [("kmeans-visual", "kmeans", {"view": "visual"}), ("kmeans-joint", "kmeans", {"view": "joint"})]
        runs.append(("zeroshot", "zeroshot", {}))
        for label, method, options in runs:
            for seed in args.seeds:
                start = time.perf_counter()
                k = None if method == "zeroshot" else 10
                result = run_method(method, features, k, seed, **options)
                wall = time.perf_counter() - start
                metrics = evaluate(features.labels, result.labels)
                records.append(
                    {
                        "method": label,
                        "dataset": dataset,
                        "seed": seed,
                        "encoder": args.encoder,
                        **metrics,
                        "wall_s": wall,
                    }
                )
                print(label, seed, {k: round(v, 4) for k, v in metrics.items()}, f"{wall:.1f}s", flush=True)
    write_records(args.out, records)


if __name__ == "__main__":
    main()
