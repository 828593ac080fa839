"""Language-assisted clustering benchmark: kmeans, zeroshot, tac-notrain, tac, laic-notrain,
laic and scan over seeds on Fashion-MNIST test and digits, plus LAIC ablations (relation
variants, neighbour filtering, prompt vs free centers).

Features come from the feature cache (embedded once per encoder); every method runs through
``semclust.methods.registry.run_method``, the same entry point as the CLI. Writes
``benchmarks/results/language.json`` (records are merged by encoder, so runs with different
encoders sit side by side).

Run: ``.venv/bin/python benchmarks/language.py [--encoder offline] [--seeds 0 1 2 3 4]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from semclust.methods.registry import run_method
from semclust.metrics import evaluate
from semclust.ops.knn import knn, neighbour_purity
from semclust.workflow import embed, feature_set_from_store

sys.path.insert(0, str(Path(__file__).parent))
from common import write_records  # noqa: E402

METHODS = ("kmeans", "zeroshot", "tac-notrain", "tac", "laic-notrain", "laic", "scan")
DATASETS = ("dataset:fashion-mnist:test", "dataset:digits")
# One change at a time from LAIC's defaults (ridge relation, cross filtering, prompt centers).
ABLATIONS = {
    "laic-notrain[relation=similarity]": ("laic-notrain", {"relation": "similarity"}),
    "laic-notrain[relation=softmax]": ("laic-notrain", {"relation": "softmax"}),
    "laic[relation=similarity]": ("laic", {"relation": "similarity"}),
    "laic[filter=none]": ("laic", {"filter_rule": "none"}),
    "laic[filter=mutual]": ("laic", {"filter_rule": "mutual"}),
    "laic[centers=free]": ("laic", {"centers": "free"}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoder", default="offline")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    parser.add_argument("--ablation-seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS))
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--no-ablations", action="store_true")
    parser.add_argument(
        "--tac-noun-templates", default="tac",
        help="noun templates for tac/tac-notrain (their default: TAC's seven); the other methods use 'single'",
    )  # fmt: skip
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "language.json"))
    args = parser.parse_args()
    torch.set_num_threads(2)

    out = Path(args.out)
    # Records of other encoders, and of this encoder's methods and datasets not rerun now, stay.
    rerun = set(args.methods) | (set() if args.no_ablations else set(ABLATIONS))
    rerun |= {"knn10-purity-visual", "knn10-purity-joint"}
    datasets = {d.removeprefix("dataset:") for d in args.datasets}
    kept = (
        [r for r in json.loads(out.read_text())
         if r.get("encoder") != args.encoder or r["method"] not in rerun or r["dataset"] not in datasets]
        if out.exists() else []
    )  # fmt: skip
    records: list[dict] = []
    for source in args.datasets:
        dataset = source.removeprefix("dataset:")
        store = embed(source, encoder=args.encoder).store
        features = feature_set_from_store(store)
        features.noun_vocabulary()  # embed/load the vocabulary once, outside the timings
        tac_features = features
        if any(m.startswith("tac") for m in args.methods) and args.tac_noun_templates != "single":
            tac_features = feature_set_from_store(store, noun_templates=args.tac_noun_templates)
            tac_features.noun_vocabulary()
        k = int(features.labels.max()) + 1
        base = {"dataset": dataset, "encoder": args.encoder, "encoder_options": store.encoder_config.get("options")}
        for view in ("visual", "joint"):
            if view == "joint" or features.visual is not None:
                purity = neighbour_purity(knn(features.view(view), 10)[0], features.labels)
                records.append(
                    {**base, "method": f"knn10-purity-{view}", "seed": None, "purity": purity, "wall_s": 0.0}
                )
        runs = [(m, m, {}) for m in args.methods]
        if not args.no_ablations and dataset.startswith("fashion-mnist"):
            runs += [(label, m, opts) for label, (m, opts) in ABLATIONS.items()]
        for label, method, options in runs:
            seeds = args.ablation_seeds if label in ABLATIONS else args.seeds
            for seed in seeds:
                start = time.perf_counter()
                is_tac = method.startswith("tac")
                feats = tac_features if is_tac else features
                result = run_method(method, feats, None if method == "zeroshot" else k, seed, **options)
                wall = time.perf_counter() - start
                record = {**base, "method": label, "seed": seed, **evaluate(features.labels, result.labels)}
                record["noun_templates"] = args.tac_noun_templates if is_tac else "single"
                record["wall_s"] = wall
                record["names"] = result.cluster_names
                record.update(
                    {
                        key: value
                        for key, value in result.info.items()
                        if key in ("neighbour_purity", "view", "image_view")
                    }
                )
                records.append(record)
                print(
                    f"{dataset} {label} seed {seed}: acc {record['acc']:.4f} nmi {record['nmi']:.4f} "
                    f"ari {record['ari']:.4f} ({wall:.1f}s)",
                    flush=True,
                )
                write_records(out, kept + records)  # partial results survive an interrupted run
    print(
        "cluster names of the last laic run:",
        next((r["names"] for r in reversed(records) if r["method"] == "laic"), None),
    )


def summary(records: list[dict]) -> dict[str, float]:
    return {m: float(np.mean([r["acc"] for r in records if r["method"] == m])) for m in {r["method"] for r in records}}


if __name__ == "__main__":
    main()
