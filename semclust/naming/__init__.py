"""Cluster names with scores: one function, :func:`name_clusters`, behind every method.

- A WordNet vocabulary and a classifier over WordNet synsets (the offline encoder's ImageNet
  head): each cluster's mean class probabilities propagated up the hypernym tree, the name
  chosen by its margin over the other clusters (:mod:`.hierarchy`); the score is that margin
  relative to the cluster's own support for the name.
- Otherwise, any joint image-text space (CLIP, SigLIP, the offline joint view, a user's
  vocabulary): the nouns ranked by their CSLS score against the cluster's centroid
  (:mod:`.csls`) plus their CSLS margin over the best other cluster; the score is that margin.
- Text-space centers (LAIC): their nearest nouns through the text tower are kept beside the
  names, each flagged when it is a hub (among the vocabulary's most central nouns).

Every name carries its score; a cluster whose best score is under the source's threshold is
``weak``, and the outputs say so instead of printing a confident word.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from semclust.naming.csls import DEFAULT_CSLS_K, csls_matrix, mean_top_k_similarity
from semclust.naming.evidence import cluster_means
from semclust.naming.hierarchy import DEFAULT_RHO, SynsetTree, choose_names, propagate

# Under these the evidence does not single the cluster out. Classifier route: the relative margin
# margin / coverage; under 0.2 the cluster supports its name less than 1.25 times as much as the
# other clusters do on average. CSLS route: the CSLS margin over the best other cluster. Both are
# set by hand, not fitted: on Fashion-MNIST the score does not predict whether a name is right.
WEAK_CLASSIFIER_MARGIN = 0.2
WEAK_CSLS_MARGIN = 0.02
HUB_QUANTILE = 0.95  # a noun in the vocabulary's top 5% by CSLS hubness r_S is a hub
HUBNESS_SAMPLE = 2000  # images drawn (seeded) to estimate each noun's hubness


def score_meaning(source: str) -> str:
    """What a name's score means for a naming ``source`` (``clusters.json``'s ``naming``)."""
    if source == "classifier-wordnet":
        return "margin over the other clusters' mean support, relative to this cluster's support"
    return "CSLS margin over the best other cluster"


@dataclass(frozen=True)
class ClusterName:
    name: str
    score: float
    synset_id: str = ""
    hub: bool = False


@dataclass
class ClusterNaming:
    """Per cluster, its names best first (``names[k]`` may be empty for an empty cluster)."""

    names: list[list[ClusterName]]
    source: str  # "classifier-wordnet", "csls" or "given"
    weak_below: float
    centers: list[list[ClusterName]] | None = None  # LAIC's center nouns, with hub flags
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def score_meaning(self) -> str:
        return score_meaning(self.source)

    def weak(self, k: int) -> bool:
        return not self.names[k] or self.names[k][0].score < self.weak_below

    def as_lists(self) -> list[list[str]]:
        return [[n.name for n in row] for row in self.names]

    def summary(self, k: int) -> dict[str, Any]:
        """What clusters.json records about cluster ``k``'s names."""
        row = self.names[k]
        out: dict[str, Any] = {
            "name_scores": [round(n.score, 4) for n in row],
            "name_synsets": [n.synset_id for n in row],
            "weak": self.weak(k),
            "naming": self.source,
        }
        if self.centers is not None:
            out["center_names"] = [n.name for n in self.centers[k]]
            out["center_hubs"] = [n.hub for n in self.centers[k]]
        return out

    def label(self, k: int, top: int = 3) -> str:
        """Console form: ``jersey 0.41, sweatshirt 0.22`` or ``weak: jersey? 0.04``."""
        row = self.names[k][:top]
        if not row:
            return "(no members)"
        text = ", ".join(f"{n.name} {n.score:.2f}" for n in row)
        return f"weak: {row[0].name}? ({text})" if self.weak(k) else text


@lru_cache(maxsize=2)
def imagenet_tree() -> tuple[SynsetTree, tuple[str, ...]]:
    """The WordNet tree above the 1000 ImageNet classes and each node's synset id."""
    from semclust.encoders.imagenet import imagenet_synset_ids
    from semclust.vocab.wordnet import noun_synsets

    synsets = noun_synsets()
    classes = [int(s[1:]) for s in imagenet_synset_ids()]
    tree = SynsetTree.from_parents(classes, {o: s.hypernyms for o, s in synsets.items()})
    return tree, tuple(f"n{o:08d}" for o in tree.nodes)


def name_from_class_evidence(
    probabilities: np.ndarray,
    labels: np.ndarray,
    n_clusters: int,
    tree: SynsetTree,
    node_names: Sequence[str],
    node_ids: Sequence[str] | None = None,
    allowed: np.ndarray | None = None,
    top: int = 5,
    rho: float = DEFAULT_RHO,
) -> ClusterNaming:
    """Names from per-image class probabilities ``[n, C]`` over ``tree``'s classes."""
    mean, sizes = cluster_means(probabilities, labels, n_clusters)
    coverage = propagate(mean, tree)
    chosen = choose_names(coverage, tree, allowed=allowed, top=top, rho=rho)
    ids = list(node_ids) if node_ids is not None else [""] * len(tree.nodes)
    names: list[list[ClusterName]] = []
    for k, row in enumerate(chosen):
        seen: set[str] = set()
        out = []
        for choice in row if sizes[k] else []:
            name = node_names[choice.node]
            if name not in seen:  # two synsets may share a first lemma
                seen.add(name)
                out.append(ClusterName(name, choice.relative, ids[choice.node]))
        names.append(out)
    return ClusterNaming(names, "classifier-wordnet", WEAK_CLASSIFIER_MARGIN)


def _centroids(joint: np.ndarray, labels: np.ndarray, n_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    from semclust.ops.features import l2_normalize

    mean, sizes = cluster_means(l2_normalize(np.asarray(joint, dtype=np.float32)), labels, n_clusters)
    return mean.astype(np.float32), sizes


def noun_hubness(noun_embeddings: np.ndarray, joint: np.ndarray, k: int = DEFAULT_CSLS_K, seed: int = 0) -> np.ndarray:
    """CSLS's ``r_S`` per noun: mean cosine to its ``k`` nearest images (a seeded sample of them)."""
    x = np.asarray(joint)
    if len(x) > HUBNESS_SAMPLE:
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), HUBNESS_SAMPLE, replace=False))]
    return mean_top_k_similarity(noun_embeddings, x, k)


def name_by_csls(
    joint: np.ndarray,
    labels: np.ndarray,
    n_clusters: int,
    noun_embeddings: np.ndarray,
    noun_names: Sequence[str],
    noun_ids: Sequence[str] | None = None,
    hubness: np.ndarray | None = None,
    top: int = 5,
    k: int = DEFAULT_CSLS_K,
) -> ClusterNaming:
    """Per cluster, the nouns ranked by CSLS score to its centroid plus their CSLS margin over
    the best other cluster; each name's score is that margin."""
    centroids, sizes = _centroids(joint, labels, n_clusters)
    r_s = noun_hubness(noun_embeddings, joint, k) if hubness is None else hubness
    scores = csls_matrix(centroids, noun_embeddings, joint, k=k, noun_hubness=r_s)
    if n_clusters > 1:
        order = np.sort(scores, axis=0)
        rival = np.where(scores >= order[-1][None, :], order[-2][None, :], order[-1][None, :])
        margin = scores - rival
    else:
        margin = scores
    ids = list(noun_ids) if noun_ids is not None else [""] * len(noun_names)
    names: list[list[ClusterName]] = []
    for c in range(n_clusters):
        if not sizes[c]:
            names.append([])
            continue
        # own CSLS score plus the lead over the best rival: a noun every cluster is near
        # (a hub CSLS did not fully discount) falls behind one this cluster alone is near
        ranked = np.argsort(-(scores[c] + margin[c]), kind="stable")
        out: list[ClusterName] = []
        seen: set[str] = set()
        for j in ranked:
            if noun_names[j] in seen:
                continue
            seen.add(noun_names[j])
            out.append(ClusterName(str(noun_names[j]), float(margin[c, j]), ids[j]))
            if len(out) == top:
                break
        names.append(out)
    return ClusterNaming(names, "csls", WEAK_CSLS_MARGIN, info={"csls_k": k})


def center_nouns(
    centers: np.ndarray, noun_embeddings: np.ndarray, noun_names: Sequence[str], hubness: np.ndarray, top: int = 5
) -> list[list[ClusterName]]:
    """Each text-space center's ``top`` nearest distinct nouns (cosine), flagged when a hub."""
    from semclust.ops.features import l2_normalize

    threshold = float(np.quantile(hubness, HUB_QUANTILE))
    sims = l2_normalize(np.asarray(centers, np.float32)) @ l2_normalize(np.asarray(noun_embeddings, np.float32)).T
    out = []
    for row in sims:
        chosen: list[ClusterName] = []
        seen: set[str] = set()
        for j in np.argsort(-row, kind="stable"):
            if noun_names[j] in seen:
                continue
            seen.add(noun_names[j])
            chosen.append(ClusterName(str(noun_names[j]), float(row[j]), hub=bool(hubness[j] >= threshold)))
            if len(chosen) == top:
                break
        out.append(chosen)
    return out


def name_clusters(
    labels: np.ndarray,
    n_clusters: int,
    *,
    joint: np.ndarray | None = None,
    class_probabilities: Callable[[], np.ndarray] | None = None,
    vocabulary_ids: Sequence[str] | None = None,
    nouns: Callable[[], tuple[list[str], np.ndarray]] | None = None,
    centers: np.ndarray | None = None,
    top: int = 5,
) -> ClusterNaming:
    """Name every cluster of ``labels`` with scored nouns (see the module docstring).

    ``class_probabilities`` (per image, over the ImageNet classes) with a WordNet vocabulary
    (``vocabulary_ids`` all synset ids) takes the classifier route, names restricted to the
    vocabulary's synsets; otherwise ``joint`` and ``nouns`` (names, unit embeddings) the CSLS
    route. ``centers`` (text-space, one per cluster) adds the center nouns with hub flags.
    """
    lab = np.asarray(labels, dtype=np.int64)
    wordnet_vocab = vocabulary_ids is not None and len(vocabulary_ids) > 0 and all(vocabulary_ids)
    naming: ClusterNaming
    hubs: dict[str, np.ndarray] = {}
    if class_probabilities is not None and wordnet_vocab:
        from semclust.vocab.wordnet import noun_synsets

        tree, node_ids = imagenet_tree()
        synsets = noun_synsets()
        allowed_ids = set(vocabulary_ids or ())
        allowed = np.array([i in allowed_ids for i in node_ids], dtype=bool)
        node_names = [synsets[int(i[1:])].name for i in node_ids]
        naming = name_from_class_evidence(
            class_probabilities(), lab, n_clusters, tree, node_names, node_ids, allowed=allowed, top=top
        )
    elif joint is not None and nouns is not None:
        names, embeddings = nouns()
        hubness = noun_hubness(embeddings, joint)
        hubs["r_s"] = hubness
        naming = name_by_csls(joint, lab, n_clusters, embeddings, names, vocabulary_ids, hubness=hubness, top=top)
    else:
        raise ValueError("naming needs class probabilities with a WordNet vocabulary, or joint features and nouns")
    if centers is not None and joint is not None and nouns is not None:
        names, embeddings = nouns()
        hubness = hubs["r_s"] if "r_s" in hubs else noun_hubness(embeddings, joint)
        naming.centers = center_nouns(centers, embeddings, names, hubness, top=top)
    return naming


__all__ = [
    "ClusterName",
    "ClusterNaming",
    "center_nouns",
    "name_by_csls",
    "name_clusters",
    "name_from_class_evidence",
    "noun_hubness",
]
