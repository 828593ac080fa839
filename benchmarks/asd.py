"""ASD benchmark on Fashion-MNIST: ASD vs FixMatch with ground-truth labels for the same number
of images vs k-means on pixels and on the offline encoder's features; ACC/NMI/ARI per seed.

Learning uses a seeded subset of the train split (``--n-train``, default 10k); every method is
scored on the 10k test split. ``kmeans-pixels`` is fitted on the train subset's raw pixels and
predicts the test set; ``kmeans-offline`` is fitted transductively on the test split's offline
visual features (cached by ``semclust embed``); ``asd`` is fitted on the train subset (labels
unused) and predicts the test images; ``fixmatch-truth`` trains the same network for the same
steps / batch as ASD's SSL stage with the true labels of ``n_l`` train-subset images
(``n_l / 10`` per class), unlabelled data = the whole train subset.

Records are rewritten to ``benchmarks/results/asd.json`` after every run, cheapest first:
both k-means baselines for all seeds, then asd and fixmatch-truth seed by seed.

The frozen-backbone rows (``asd-frozen``, ``fixmatch-truth-frozen``, ``scan``, and
``kmeans-offline`` on emoji groups) come from ``benchmarks/asd_frozen.py``: see its docstring.

Run: ``.venv/bin/python benchmarks/asd.py [--seeds 0 1 2] [--instance-steps 400 --ssl-steps 400]``;
frozen rows: ``--methods asd-frozen fixmatch-truth-frozen scan --datasets fashion-mnist emoji --append``.
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

from semclust.data.base import ArraySource
from semclust.data.registry import open_source
from semclust.methods.asd import ASD, default_n_labelled
from semclust.methods.kmeans import KMeans
from semclust.metrics import evaluate
from semclust.ssl.data import labels_per_class_split, source_arrays
from semclust.ssl.trainer import Trainer
from semclust.workflow import embed

sys.path.insert(0, str(Path(__file__).parent))
from asd_frozen import FROZEN_METHODS, prepare, run  # noqa: E402
from common import write_records  # noqa: E402

DATASET = "fashion-mnist"
K = 10
# ASD's similarity between the sampled images: the paper's class transitions, the offline
# encoder's visual features (an encoder-assisted variant), or both averaged.
# asd-features-confident gives FixMatch only the more confidently grouped half of each group.
ASD_VARIANTS = {
    "asd": ("transitions", 1.0),
    "asd-features": ("features", 1.0),
    "asd-combined": ("combined", 1.0),
    "asd-features-confident": ("features", 0.5),
}


def _subset(n: int, size: int, seed: int) -> np.ndarray:
    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--n-train", type=int, default=10000, help="seeded train subset for asd / fixmatch-truth")
    parser.add_argument("--n-train-kmeans", type=int, default=10000, help="seeded train subset for kmeans-pixels")
    parser.add_argument("--instance-steps", type=int, default=400)
    parser.add_argument("--ssl-steps", type=int, default=400)
    parser.add_argument("--network", default="cnn")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--mu", type=int, default=7)
    parser.add_argument("--max-tracked", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--methods",
        nargs="*",
        default=["kmeans-pixels", "kmeans-offline", "asd", "fixmatch-truth"],
        help=f"any of kmeans-pixels kmeans-offline fixmatch-truth {' '.join(ASD_VARIANTS)}",
    )
    parser.add_argument(
        "--append",
        action="store_true",
        help="keep the records already in --out, replacing only those of the methods run now",
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "asd.json"))
    parser.add_argument("--datasets", nargs="*", default=["fashion-mnist"], help="frozen rows: fashion-mnist emoji")
    parser.add_argument("--n-weak", type=int, default=2, help="frozen rows: cached weak views per image")
    parser.add_argument("--n-strong", type=int, default=2, help="frozen rows: cached strong views per image")
    parser.add_argument("--frozen-instance-steps", type=int, default=300)
    parser.add_argument("--frozen-ssl-steps", type=int, default=300)
    parser.add_argument("--frozen-batch-size", type=int, default=64)
    parser.add_argument("--frozen-mu", type=int, default=7)
    parser.add_argument("--frozen-lr", type=float, default=0.03)
    parser.add_argument("--hidden", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--rounds", type=int, nargs="*", default=[1])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    frozen = [m for m in args.methods if m in FROZEN_METHODS and m != "kmeans-offline"]
    if frozen:
        _frozen_rows(args)
        args.methods = [m for m in args.methods if m not in frozen]
        if not args.methods or args.datasets == ["emoji"]:
            return

    x_train, y_train = source_arrays(open_source(f"dataset:{DATASET}:train"))
    x_test, y_test = source_arrays(open_source(f"dataset:{DATASET}:test"))
    image_size = [int(x_train.shape[1]), int(x_train.shape[2])]
    records: list[dict[str, Any]] = []
    if args.append and Path(args.out).exists():
        records = [r for r in json.loads(Path(args.out).read_text()) if r["method"] not in args.methods]

    def add(method: str, seed: int, metrics: dict[str, Any], wall: float, **settings: Any) -> None:
        record = {
            "method": method,
            "dataset": DATASET,
            "seed": seed,
            "acc": metrics["acc"],
            "nmi": metrics["nmi"],
            "ari": metrics["ari"],
            "n_test": metrics["n"],
            "wall_s": wall,
            "threads": args.threads,
            **settings,
        }
        records.append(record)
        write_records(args.out, records)
        print(method, seed, {k: round(metrics[k], 4) for k in ("acc", "nmi", "ari")}, f"{wall:.1f}s", flush=True)

    # ---------------------------------------------------------------- k-means on raw pixels
    if "kmeans-pixels" in args.methods:
        for seed in args.seeds:
            start = time.perf_counter()
            sub = _subset(len(x_train), args.n_train_kmeans, seed)
            flat = x_train[sub].reshape(len(sub), -1).astype(np.float32) / 255.0
            model = KMeans(n_clusters=K, random_state=seed).fit(flat)
            pred = model.predict(x_test.reshape(len(x_test), -1).astype(np.float32) / 255.0)
            wall = time.perf_counter() - start
            add("kmeans-pixels", seed, evaluate(y_test, pred), wall, features="raw pixels (flattened, /255)",
                kmeans="spherical, n_init 5, max_iter 100", fitted_on=f"seeded train subset of {len(sub)}",
                n_train=int(len(sub)), image_size=image_size, scored_on="test split (predict)")  # fmt: skip

    # ---------------------------------------------------------------- k-means on offline features
    if "kmeans-offline" in args.methods:
        store = embed(f"dataset:{DATASET}:test").store
        feats = store.load("visual")
        labels = store.labels
        for seed in args.seeds:
            start = time.perf_counter()
            pred = KMeans(n_clusters=K, random_state=seed).fit(feats).labels_
            wall = time.perf_counter() - start
            add("kmeans-offline", seed, evaluate(labels, pred), wall, features="offline encoder, visual view",
                kmeans="spherical, n_init 5, max_iter 100",
                fitted_on="test split features (transductive)", n_train=0, scored_on="test split (fit labels)",
                wall_s_is="k-means only; the features come from the embedding cache")  # fmt: skip

    # ---------------------------------------------------------------- asd and fixmatch-truth
    n_l = default_n_labelled(args.n_train, K)
    n_l = int(np.ceil(n_l / K) * K)
    common = {
        "network": args.network,
        "batch_size": args.batch_size,
        "mu": args.mu,
        "image_size": image_size,
        "n_train": int(min(args.n_train, len(x_train))),
        "n_labelled": n_l,
        "device": "cpu",
        "scored_on": "test split (predict)",
    }
    for seed in args.seeds:
        sub = _subset(len(x_train), args.n_train, seed)
        xs, ys = x_train[sub], y_train[sub]
        for method, (similarity, keep_confident) in ASD_VARIANTS.items():
            if method not in args.methods:
                continue
            feats = None
            if similarity != "transitions":
                # The subset's visual features, cached like every embedding (not part of wall_s).
                source = ArraySource(xs, ys, name=f"{DATASET}-train-{len(sub)}-seed{seed}")
                feats = embed(source).store.load("visual")
            start = time.perf_counter()
            asd = ASD(
                n_clusters=K,
                n_labelled=n_l,
                instance_steps=args.instance_steps,
                ssl_steps=args.ssl_steps,
                network=args.network,
                batch_size=args.batch_size,
                mu=args.mu,
                max_tracked=args.max_tracked,
                similarity=similarity,
                keep_confident=keep_confident,
                random_state=seed,
            )
            asd.fit(xs, y=ys, features=feats)  # y only measures pseudo-label purity; never trained on
            pred = asd.predict(x_test)
            wall = time.perf_counter() - start
            instance_steps = 0 if similarity == "features" else args.instance_steps
            add(method, seed, evaluate(y_test, pred), wall, **common, instance_steps=instance_steps,
                ssl_steps=args.ssl_steps, steps=instance_steps + args.ssl_steps, max_tracked=args.max_tracked,
                similarity=similarity, similarity_features=None if feats is None else "offline encoder, visual view",
                keep_confident=keep_confident, n_labelled_used=int(len(asd.labelled_indices_)),
                labelled_purity=asd.labelled_purity_,
                pseudo_label_purity=asd.pseudo_label_purity_, classes_covered=asd.classes_covered_,
                co_predictions_used=bool(asd.co_predictions_used_),
                train_acc=evaluate(ys, asd.labels_)["acc"])  # fmt: skip
        if "fixmatch-truth" in args.methods:
            start = time.perf_counter()
            lb, _ = labels_per_class_split(ys, n_l // K, seed)
            trainer = Trainer(
                "fixmatch",
                network=args.network,
                num_classes=K,
                in_channels=1,
                total_steps=args.ssl_steps,
                batch_size=args.batch_size,
                mu=args.mu,
                device="cpu",
                seed=seed,
                flip=True,
            )
            trainer.fit(xs[lb], ys[lb], xs)
            pred = trainer.predict(x_test)
            wall = time.perf_counter() - start
            metrics = evaluate(y_test, pred)
            add("fixmatch-truth", seed, metrics, wall, **common, steps=args.ssl_steps,
                labels_per_class=n_l // K, top1=float((pred == y_test).mean()))  # fmt: skip


def _frozen_rows(args: argparse.Namespace) -> None:
    records: list[dict[str, Any]] = []
    if args.append and Path(args.out).exists():
        records = json.loads(Path(args.out).read_text())
    methods = [m for m in args.methods if m in FROZEN_METHODS]
    settings = {
        "instance_steps": args.frozen_instance_steps,
        "ssl_steps": args.frozen_ssl_steps,
        "batch_size": args.frozen_batch_size,
        "mu": args.frozen_mu,
        "lr": args.frozen_lr,
        "hidden": args.hidden,
        "threshold": args.threshold,
        "rounds": args.rounds,
        "threads": args.threads,
    }
    for dataset in args.datasets:
        data, views_wall = prepare(dataset, args.n_train, args.n_weak, args.n_strong, args.threads)
        ran = methods if dataset == "emoji" else [m for m in methods if m != "kmeans-offline"]
        records[:] = [r for r in records if not _replaced(r, ran, dataset, args.rounds)]
        run(dataset, data, ran, args.seeds, settings, _adder(records, args, views_wall))


def _replaced(record: dict[str, Any], ran: list[str], dataset: str, rounds: list[int]) -> bool:
    """Whether this run replaces ``record`` (asd-frozen records of other ``rounds`` are kept)."""
    if record["method"] not in ran or record.get("dataset", DATASET) != dataset:
        return False
    return record["method"] != "asd-frozen" or record.get("rounds") in rounds


def _adder(records: list[dict[str, Any]], args: argparse.Namespace, views_wall: float) -> Any:
    def add(method: str, dataset: str, seed: int, metrics: dict[str, Any], wall: float, **extra: Any) -> None:
        scores = {k: metrics[k] for k in ("acc", "nmi", "ari")}
        record = {"method": method, "dataset": dataset, "seed": seed, **scores, "n_test": metrics["n"],
                  "wall_s": wall, "threads": args.threads, "views_wall_s": views_wall, **extra}  # fmt: skip
        records.append(record)
        write_records(args.out, records)
        print(method, dataset, seed, {k: round(v, 4) for k, v in scores.items()}, f"{wall:.1f}s", flush=True)

    return add


if __name__ == "__main__":
    main()
