"""Do the cluster names mean something? Names of true classes (oracle) and of methods' clusters.

For Fashion-MNIST test and the emoji food/animal subgroups, each cluster's first name is scored
against the WordNet synset(s) of its majority true class (hand-mapped below):
- hit: the name's synset is the class synset, a kind of it (hyponym), or a hypernym at most
  2 steps up;
- Wu-Palmer similarity to the class synset (best over the class's synsets);
- outside concrete: the name's synset is not in the concrete lexicographer files (or has none).

Naming routes (all through ``semclust.naming.name_clusters``): ``classifier`` (the offline
default: ImageNet class evidence up the WordNet tree), ``csls-joint`` (the offline joint view,
CSLS + margin over concrete nouns), ``nearest-joint`` (the previous behaviour: plain cosine
nearest concrete nouns to the joint centroid, for comparison).

Also the clustering table (ACC/NMI/ARI) of methods on emoji groups and subgroups. The offline
bridge is fitted on the classifier's weight rows and ImageNet class texts only, never on emoji
images: no scored image was seen with its name.

Run: ``nice -n 10 .venv/bin/python benchmarks/naming.py [--seeds 0 1 2] [--methods kmeans laic]``
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semclust.cache import default_cache_dir
from semclust.methods.registry import FeatureSet, run_method
from semclust.metrics import evaluate
from semclust.naming import ClusterName, ClusterNaming, name_by_csls, name_clusters, noun_hubness
from semclust.vocab.wordnet import CONCRETE_LEXNAMES, hypernym_distances, noun_synsets, wu_palmer
from semclust.workflow import embed, feature_set_from_store

sys.path.insert(0, str(Path(__file__).parent))
from common import mean_std, write_records  # noqa: E402

FASHION = "dataset:fashion-mnist:test"
EMOJI_GROUPS = "dataset:emoji"
EMOJI_SUB = "dataset:emoji:food-animals"
# Class -> WordNet synsets that name it (any of them counts).
CLASS_SYNSETS: dict[str, dict[str, list[str]]] = {
    FASHION: {
        "T-shirt/top": ["n03595614", "n04453666"],  # jersey/T-shirt; top (garment)
        "Trouser": ["n04489008"],
        "Pullover": ["n04370048", "n04021028"],  # sweater; pullover
        "Dress": ["n03236735"],
        "Coat": ["n03057021"],
        "Sandal": ["n04133789"],
        "Shirt": ["n04197391"],
        "Sneaker": ["n03472535"],  # gym shoe, sneaker
        "Bag": ["n02773037", "n02773838"],  # bag (container); bag (luggage)
        "Ankle boot": ["n02872752"],
    },
    EMOJI_SUB: {
        "animal-mammal": ["n01861778"],
        "animal-bird": ["n01503061"],
        "animal-reptile": ["n01661091"],
        "animal-marine": ["n01319467", "n01473806", "n02512053"],  # marine animal; aquatic vertebrate; fish
        "animal-bug": ["n01905661", "n01767661", "n02159955"],  # invertebrate; arthropod; insect
        "plant-flower": ["n11669921", "n11669335"],
        "plant-other": ["n00017222"],  # plant
        "food-fruit": ["n07705931", "n13134947"],  # edible fruit; fruit
        "food-vegetable": ["n07707451", "n12212361"],
        "food-prepared": ["n07557434", "n07622061"],  # dish; baked goods
        "food-asian": ["n07557434"],  # dish
        "food-marine": ["n07776866", "n07783210"],  # seafood; shellfish (food)
        "food-sweet": ["n07609840", "n07596684"],  # dessert; sweet/confection
        "drink": ["n07881800", "n07885223"],  # beverage; drink
        "dishware": ["n04381994", "n03133538", "n03153375", "n03621049"],  # tableware; crockery; cutlery; utensil
    },
}
NAMING_METHODS = ("kmeans", "laic")
TEMPERATURES = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)
RHOS = (0.5, 0.75)


def choose_temperature(n_images: int = 2000, seed: int = 0) -> list[dict]:
    """The classifier route's softmax temperature and ``rho`` on Fashion-MNIST *train* (a seeded
    subset; true classes as clusters): most names hit, then highest mean Wu-Palmer. Exact logits
    and the store's recovered ones (unit visual view x typical norm) are both scored."""
    from semclust.data.fashion_mnist import FashionMNISTSource
    from semclust.encoders.offline import OfflineEncoder
    from semclust.naming import imagenet_tree
    from semclust.naming.evidence import class_probabilities, classifier_head, softmax_logits
    from semclust.vocab.nouns import load_vocabulary

    source = FashionMNISTSource(split="train")
    picked = np.sort(np.random.default_rng(seed).choice(len(source), size=n_images, replace=False))
    encoder = OfflineEncoder()
    t0 = time.perf_counter()
    cache = default_cache_dir() / "naming" / f"fashion-mnist-train-{n_images}-seed{seed}.npz"
    if cache.is_file():
        stored = np.load(cache)
        raw, logits = stored["features"], torch.from_numpy(stored["logits"])
    else:
        raw, logits = encoder.visual_and_logits([source.load(int(i)) for i in picked])
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, features=raw, logits=logits.numpy(), labels=source.labels[picked])
    embed_s = time.perf_counter() - t0
    assert source.labels is not None and source.class_names is not None
    truth, classes = source.labels[picked], list(source.class_names)
    head = classifier_head(encoder)
    assert head is not None
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    tree, node_ids = imagenet_tree()
    synsets = noun_synsets()
    vocab = set(load_vocabulary().synset_ids)
    allowed = np.array([i in vocab for i in node_ids])
    node_names = [synsets[int(i[1:])].name for i in node_ids]
    records = []
    for temperature in TEMPERATURES:
        evidences = {
            "exact logits": softmax_logits(logits.numpy(), temperature),
            "recovered from the unit visual view": class_probabilities(unit, *head, temperature=temperature),
        }
        for evidence, probs in evidences.items():
            for rho in RHOS:
                naming = _classifier_naming(probs, truth, len(classes), tree, node_names, node_ids, allowed, rho)
                scored = score_names(naming, truth, truth, classes, CLASS_SYNSETS[FASHION])
                records.append(
                    {
                        "kind": "temperature",
                        "method": "oracle",
                        "dataset": f"fashion-mnist:train[{n_images}, seed {seed}]",
                        "seed": seed,
                        "temperature": temperature,
                        "rho": rho,
                        "evidence": evidence,
                        **{k: v for k, v in scored.items() if k != "clusters"},
                        "names": [r["name"] for r in scored["clusters"]],
                        "wall_s": embed_s,
                    }
                )
                print(
                    f"T={temperature} rho={rho} {evidence}: hits {scored['hits']} wup {scored['mean_wup']:.3f} "
                    + ", ".join(r["name"] for r in scored["clusters"]),
                    flush=True,
                )
    return records


def _classifier_naming(probs, labels, k, tree, node_names, node_ids, allowed, rho) -> ClusterNaming:
    from semclust.naming import name_from_class_evidence

    return name_from_class_evidence(probs, labels, k, tree, node_names, node_ids, allowed=allowed, rho=rho)


CLUSTER_METHODS = ("kmeans", "scan", "tac", "laic")


def hit(name_synset: str, targets: list[str], synsets: dict) -> bool:
    """The name is the class, a kind of it, or a generalisation at most 2 steps above it."""
    if not name_synset:
        return False
    offset = int(name_synset[1:])
    up_from_name = hypernym_distances(offset, synsets)
    for target in targets:
        t = int(target[1:])
        if t in up_from_name:  # the class is the name itself or one of its ancestors
            return True
        if hypernym_distances(t, synsets).get(offset, 99) <= 2:
            return True
    return False


def score_names(naming: ClusterNaming, labels: np.ndarray, truth: np.ndarray, class_names: list[str], mapping) -> dict:
    synsets = noun_synsets()
    rows = []
    for k, names in enumerate(naming.names):
        members = truth[labels == k]
        if not len(members) or not names:
            continue
        majority = class_names[int(np.bincount(members).argmax())]
        first: ClusterName = names[0]
        targets = mapping[majority]
        concrete = bool(first.synset_id) and synsets[int(first.synset_id[1:])].lexname in CONCRETE_LEXNAMES
        wup = max(wu_palmer(int(first.synset_id[1:]), int(t[1:]), synsets) for t in targets) if first.synset_id else 0.0
        rows.append(
            {
                "cluster": k,
                "class": majority,
                "name": first.name,
                "synset": first.synset_id,
                "score": round(first.score, 4),
                "weak": naming.weak(k),
                "hit": hit(first.synset_id, targets, synsets),
                "wup": round(wup, 4),
                "concrete": concrete,
                **(
                    {"center": [n.name + (" (hub)" if n.hub else "") for n in naming.centers[k][:3]]}
                    if naming.centers
                    else {}
                ),
            }
        )
    return {
        "hits": int(sum(r["hit"] for r in rows)),
        "n_named": len(rows),
        "mean_wup": float(np.mean([r["wup"] for r in rows])) if rows else 0.0,
        "outside_concrete": float(np.mean([not r["concrete"] for r in rows])) if rows else 0.0,
        "n_weak": int(sum(r["weak"] for r in rows)),
        "clusters": rows,
    }


def nearest_joint(features: FeatureSet, labels: np.ndarray, k: int) -> ClusterNaming:
    """The previous naming: each centroid's nearest nouns by plain cosine (no hubness correction)."""
    from semclust.methods.naming import name_clusters as cosine_names
    from semclust.methods.naming import text_space_centroids

    names, embeddings = features.noun_vocabulary()
    ids = features.noun_synset_ids() if features.noun_synset_ids else [""] * len(names)
    first_id = {}
    for n, i in zip(names, ids):
        first_id.setdefault(n, i)
    rows = cosine_names(text_space_centroids(features.joint, labels, k), embeddings, names, top=5)
    return ClusterNaming([[ClusterName(n, 0.0, first_id[n]) for n in row] for row in rows], "nearest-joint", 0.0)


def naming_routes(
    features: FeatureSet, labels: np.ndarray, k: int, result: Any = None, laic: bool = False
) -> dict[str, ClusterNaming]:
    ids = features.noun_synset_ids() if features.noun_synset_ids else None
    centers = getattr(result.estimator, "centers_", None) if laic else None
    out = {
        "classifier": name_clusters(
            labels,
            k,
            joint=features.joint,
            class_probabilities=features.class_probabilities,
            vocabulary_ids=ids,
            nouns=features.noun_vocabulary,
            centers=centers,
        ),
    }
    names, embeddings = features.noun_vocabulary()
    hub = noun_hubness(embeddings, features.joint)
    out["csls-joint"] = name_by_csls(features.joint, labels, k, embeddings, names, ids, hubness=hub)
    out["nearest-joint"] = nearest_joint(features, labels, k)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--naming-methods", nargs="*", default=list(NAMING_METHODS))
    parser.add_argument("--cluster-methods", nargs="*", default=list(CLUSTER_METHODS))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "naming.json"))
    parser.add_argument("--skip-temperature", action="store_true", help="keep the temperature records of --out")
    args = parser.parse_args()
    torch.set_num_threads(2)
    out = Path(args.out)
    if args.skip_temperature and out.exists():
        import json

        records: list[dict] = [r for r in json.loads(out.read_text()) if r.get("kind") == "temperature"]
    else:
        records = choose_temperature()
        write_records(args.out, records)
    cache: dict[str, FeatureSet] = {}

    def features_of(source: str) -> FeatureSet:
        if source not in cache:
            t0 = time.perf_counter()
            store = embed(source).store
            cache[source] = feature_set_from_store(store)
            print(f"{source}: {len(store)} images, features in {time.perf_counter() - t0:.0f} s", flush=True)
        return cache[source]

    for source in (FASHION, EMOJI_SUB):
        features = features_of(source)
        assert features.labels is not None and features.class_names is not None
        truth, classes = features.labels, list(features.class_names)
        runs: list[tuple[str, int, np.ndarray, Any, float]] = [("oracle", 0, truth, None, 0.0)]
        for method in args.naming_methods:
            t0 = time.perf_counter()
            result = run_method(method, features, len(classes), 0, name_clusters_with_nouns=False)
            runs.append((method, 0, result.labels, result, time.perf_counter() - t0))
        for method, seed, labels, result, fit_s in runs:
            for route, naming in naming_routes(features, labels, len(classes), result, laic=method == "laic").items():
                t0 = time.perf_counter()
                scored = score_names(naming, labels, truth, classes, CLASS_SYNSETS[source])
                record = {
                    "kind": "naming",
                    "method": method,
                    "route": route,
                    "dataset": source.removeprefix("dataset:"),
                    "seed": seed,
                    "n_clusters": len(classes),
                    **scored,
                    **({} if method == "oracle" else evaluate(truth, labels)),
                    "wall_s": fit_s + time.perf_counter() - t0,
                    "bridge": "procrustes on ImageNet fc rows + class glosses; no emoji image seen",
                }
                records.append(record)
                print(
                    f"{source} {method} {route}: hits {scored['hits']}/{scored['n_named']} "
                    f"wup {scored['mean_wup']:.3f} outside {scored['outside_concrete']:.2f} | "
                    + "; ".join(f"{r['class']}={r['name']}{'?' if r['weak'] else ''}" for r in scored["clusters"]),
                    flush=True,
                )
                write_records(args.out, records)

    for source in (EMOJI_GROUPS, EMOJI_SUB):
        features = features_of(source)
        assert features.labels is not None and features.class_names is not None
        for method in args.cluster_methods:
            for seed in args.seeds:
                t0 = time.perf_counter()
                result = run_method(method, features, len(features.class_names), seed, name_clusters_with_nouns=False)
                m = evaluate(features.labels, result.labels)
                records.append(
                    {
                        "kind": "clustering",
                        "method": method,
                        "dataset": source.removeprefix("dataset:"),
                        "seed": seed,
                        **m,
                        "wall_s": time.perf_counter() - t0,
                        "bridge": "procrustes on ImageNet fc rows + class glosses; no emoji image seen",
                    }
                )
                print(
                    f"{source} {method} seed {seed}: ACC {m['acc']:.3f} NMI {m['nmi']:.3f} ARI {m['ari']:.3f}",
                    flush=True,
                )
                write_records(args.out, records)


def naming_section(records: list[dict]) -> list[str]:
    """The RESULTS.md section (called by make_results.py)."""
    if not records:
        return []
    lines = [
        "## Cluster names (`benchmarks/naming.py`)",
        "",
        "First name of each cluster against the WordNet synset of its majority class: hit = the class, a kind "
        "of it, or a hypernym at most 2 steps up; mean Wu-Palmer; share of names outside the concrete nouns. "
        "Routes: `classifier` (offline default: ImageNet evidence up the WordNet tree, margin over other "
        "clusters), `csls-joint` (joint view, CSLS + margin), `nearest-joint` (plain nearest noun, the old way). "
        "Concrete-noun vocabulary throughout; methods at seed 0.",
        "",
        "| dataset | clusters | route | hits | mean Wu-Palmer | outside concrete | weak | names (class=name) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in (r for r in records if r.get("kind") == "naming"):
        names = "; ".join(f"{c['class']}={c['name']}{'?' if c['weak'] else ''}" for c in r["clusters"])
        lines.append(
            f"| {r['dataset']} | {r['method']} | {r['route']} | {r['hits']}/{r['n_named']} | {r['mean_wup']:.3f} "
            f"| {r['outside_concrete']:.2f} | {r['n_weak']} | {names} |"
        )
    temps = [r for r in records if r.get("kind") == "temperature"]
    if temps:
        lines += [
            "",
            "Classifier-route temperature and rho, chosen on a seeded 2,000-image subset of Fashion-MNIST *train* "
            "(true classes as clusters; rule: most hits, then highest mean Wu-Palmer, on the evidence the store "
            "gives, i.e. recovered from the unit visual view):",
            "",
            "| evidence | T | rho | hits | mean Wu-Palmer |",
            "|---|---|---|---|---|",
        ]
        for r in temps:
            lines.append(
                f"| {r['evidence']} | {r['temperature']:g} | {r['rho']:g} | {r['hits']}/10 | {r['mean_wup']:.3f} |"
            )
    for r in (r for r in records if r.get("kind") == "retrieval"):
        if r is next(x for x in records if x.get("kind") == "retrieval"):
            lines += [
                "",
                "Held-out emoji name retrieval among all emoji names (`benchmarks/paired_bridge.py`):",
                "",
                "| bridge | n | top-1 | top-5 | median rank |",
                "|---|---|---|---|---|",
            ]
        lines.append(f"| {r['method']} | {r['n']} | {r['top1']:.3f} | {r['top5']:.3f} | {r['median_rank']:.0f} |")
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in (r for r in records if r.get("kind") == "clustering"):
        groups[(r["dataset"], r["method"])].append(r)
    if groups:
        lines += [
            "",
            "Clustering on emoji (offline encoder; its bridge never saw an emoji image):",
            "",
            "| dataset | method | seeds | ACC | NMI | ARI |",
            "|---|---|---|---|---|---|",
        ]
        for (dataset, method), rows in groups.items():
            cells = [mean_std([r[m] for r in rows]) for m in ("acc", "nmi", "ari")]
            lines.append(f"| {dataset} | {method} | {len(rows)} | {' | '.join(cells)} |")
    return lines + [""]


if __name__ == "__main__":
    main()
