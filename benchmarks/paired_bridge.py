"""A text map fitted on rendered emoji + their names (held out by code point) vs the default bridge.

Emoji are split into halves by a hash of their code points. Each half's images are mapped into
MiniLM space by a ridge map fitted on the *other* half's (rendered image, CLDR name + keywords)
pairs, joined by the classifier's 1000 weight rows and class texts; no scored image was ever
fitted with its name. Reported: name retrieval of held-out emoji among all emoji names (top-1,
top-5, median rank), against the default Procrustes bridge; and the names of the emoji
food/animal subgroups (true classes and k-means / LAIC clusters of the offline features) given
by CSLS + margin over concrete WordNet nouns in the cross-fitted view, scored as in
``benchmarks/naming.py``.

Run: ``nice -n 10 .venv/bin/python benchmarks/paired_bridge.py``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from semclust.cache import default_cache_dir
from semclust.data.emoji import EmojiSource
from semclust.encoders.offline import OfflineEncoder
from semclust.encoders.paired_bridge import RENDERINGS, cross_fitted_text_view, emoji_pair_features, split_by_codepoint
from semclust.methods.registry import run_method
from semclust.naming import name_by_csls, noun_hubness
from semclust.workflow import embed, feature_set_from_store

sys.path.insert(0, str(Path(__file__).parent))
from common import write_records  # noqa: E402
from naming import CLASS_SYNSETS, EMOJI_SUB, score_names  # noqa: E402


def retrieval(view: np.ndarray, texts: np.ndarray) -> dict[str, float]:
    sims = view @ texts.T
    ranks = (sims > np.diag(sims)[:, None]).sum(axis=1)
    return {
        "top1": float((ranks < 1).mean()),
        "top5": float((ranks < 5).mean()),
        "median_rank": float(np.median(ranks) + 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lam", type=float, default=1.0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "paired_bridge.json"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    encoder = OfflineEncoder()
    emoji = EmojiSource("all")
    cache = default_cache_dir() / "paired" / f"emoji-{len(emoji)}-{'-'.join(RENDERINGS)}.npz"
    t0 = time.perf_counter()
    if cache.is_file():
        pairs = dict(np.load(cache))
    else:
        pairs = emoji_pair_features(encoder, emoji)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **pairs)
    print(f"pair features {pairs['visual'].shape} in {time.perf_counter() - t0:.0f} s", flush=True)
    keys = [e.key for e in emoji.entries]
    in_a = split_by_codepoint(keys)
    weights, class_texts = encoder.classifier_weights(), encoder.class_text_embeddings()
    texts = pairs["texts"] / np.linalg.norm(pairs["texts"], axis=1, keepdims=True)
    colour = pairs["visual"][:, 0]
    records = []
    paired = cross_fitted_text_view(colour, in_a, pairs["visual"], pairs["texts"], in_a, weights, class_texts, args.lam)
    default = encoder.bridge.embed(colour, torch.zeros(len(colour), 1000))
    for bridge, view in (("paired (cross-fitted by code point)", paired), ("procrustes (default)", default)):
        r = retrieval(view, texts)
        records.append(
            {
                "kind": "retrieval",
                "method": bridge,
                "dataset": "emoji:all",
                "seed": 0,
                "n": len(view),
                **r,
                "wall_s": 0.0,
            }
        )
        print(bridge, r, flush=True)
    write_records(args.out, records)

    store = embed(EMOJI_SUB).store
    features = feature_set_from_store(store)
    index = {k: i for i, k in enumerate(keys)}
    rows = np.array([index[i.split("/", 1)[1]] for i in store.ids])
    view = paired[rows]
    names, nouns = features.noun_vocabulary()
    ids = features.noun_synset_ids() if features.noun_synset_ids else None
    hub = noun_hubness(nouns, view)
    truth, classes = features.labels, list(features.class_names or [])
    assert truth is not None
    runs = [("oracle", truth)]
    for method in ("kmeans", "laic"):
        runs.append((method, run_method(method, features, len(classes), 0, name_clusters_with_nouns=False).labels))
    for method, labels in runs:
        t0 = time.perf_counter()
        naming = name_by_csls(view, labels, len(classes), nouns, names, ids, hubness=hub)
        scored = score_names(naming, labels, truth, classes, CLASS_SYNSETS[EMOJI_SUB])
        records.append(
            {
                "kind": "naming",
                "method": method,
                "route": "csls-paired",
                "dataset": EMOJI_SUB.removeprefix("dataset:"),
                "seed": 0,
                "n_clusters": len(classes),
                **scored,
                "wall_s": time.perf_counter() - t0,
                "bridge": "paired, cross-fitted: every image mapped by a map fitted on the other half by code point",
            }
        )
        print(
            f"{method}: hits {scored['hits']}/{scored['n_named']} wup {scored['mean_wup']:.3f} | "
            + "; ".join(f"{r['class']}={r['name']}{'?' if r['weak'] else ''}" for r in scored["clusters"]),
            flush=True,
        )
        write_records(args.out, records)


if __name__ == "__main__":
    main()
