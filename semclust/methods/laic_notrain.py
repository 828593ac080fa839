"""LAIC without training ("Ours (no-train)"): k-means on the rows of the relation matrix.

RESEARCH.md section 1. TAC's noun selection, the relation matrix ``C = relation_matrix(U,
S_sel)`` (ridge rows by default), spherical k-means on the L2-normalised rows of ``C``; also
the noun ranking both LAIC estimators name their clusters with. The trained estimator, which
starts from this one, is :class:`semclust.methods.laic.LAIC`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from semclust.methods.base import BaseClusterer, check_n_clusters
from semclust.methods.spec import FeatureSet, MethodResult, MethodSpec
from semclust.ops.features import as_feature_matrix, l2_normalize
from semclust.ops.kmeans import assign_to_centers, spherical_kmeans
from semclust.ops.relation import RelationMode, relation_matrix, relation_rows_normalized
from semclust.ops.tac_text import default_n_centers, select_nouns

_NAME_BLOCK = 256  # centers per block when ranking all nouns against them
LAIC_KMEANS_ITER = 100


def check_noun_embeddings(noun_embeddings: ArrayLike | None, dim: int) -> np.ndarray:
    if noun_embeddings is None:
        raise ValueError("fit needs noun_embeddings, float[m, d] in the same space as the images")
    s = as_feature_matrix(noun_embeddings, name="noun_embeddings")
    if s.shape[1] != dim:
        raise ValueError(f"images have dimension {dim} but noun_embeddings have {s.shape[1]}")
    return s


def nearest_distinct_nouns(queries: np.ndarray, nouns: np.ndarray, names: Sequence[str], top: int) -> list[list[int]]:
    """For each query row, indices of its ``top`` most cosine-similar nouns with distinct names."""
    q, s = l2_normalize(queries), l2_normalize(nouns)
    look = min(s.shape[0], max(4 * top, top + 16))
    out: list[list[int]] = []
    for start in range(0, q.shape[0], _NAME_BLOCK):
        sims = q[start : start + _NAME_BLOCK] @ s.T
        cand = (
            np.argpartition(-sims, look - 1, axis=1)[:, :look]
            if look < s.shape[0]
            else np.tile(np.arange(s.shape[0]), (sims.shape[0], 1))
        )
        for row, idx in zip(sims, cand):
            chosen: list[int] = []
            seen: set[str] = set()
            for j in idx[np.lexsort((idx, -row[idx]))]:
                if names[j] not in seen:
                    seen.add(names[j])
                    chosen.append(int(j))
                    if len(chosen) == top:
                        break
            out.append(chosen)
    return out


def initial_center_nouns(centroids: np.ndarray, nouns: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """One noun per centroid, the nearest, with no name used twice (greedy, most similar first)."""
    k = centroids.shape[0]
    q, s = l2_normalize(centroids), l2_normalize(nouns)
    cands = nearest_distinct_nouns(q, s, names, top=min(k, s.shape[0]))
    if len({names[j] for c in cands for j in c}) < k:
        raise ValueError(f"need at least {k} distinct noun names to name {k} clusters")
    pairs = sorted(
        ((-float(q[c] @ s[j]), c, r, j) for c, cand in enumerate(cands) for r, j in enumerate(cand)),
    )
    taken: dict[int, int] = {}
    used: set[str] = set()
    for _, c, _, j in pairs:
        if c in taken or names[j] in used:
            continue
        taken[c] = j
        used.add(names[j])
        if len(taken) == k:
            break
    if len(taken) < k:  # candidates exhausted by collisions: fall back to any unused noun
        free = [j for j in range(s.shape[0]) if names[j] not in used]
        for c in range(k):
            if c not in taken:
                j = max(free, key=lambda j: float(q[c] @ s[j]))
                free = [f for f in free if names[f] != names[j]]
                taken[c] = j
                used.add(names[j])
    return np.array([taken[c] for c in range(k)], dtype=np.int64)


class LAICNoTrain(BaseClusterer):
    """Spherical k-means on normalised rows of the relation matrix ``C``.

    Learned: ``labels_``, ``centers_`` (unit-norm, in C-row space ``[K, m_sel]``),
    ``selected_nouns_`` (indices into ``noun_embeddings``), ``selected_noun_embeddings_``,
    ``relation_`` (raw ``C``, float32 ``[n, m_sel]``), ``n_centers_`` and, when ``noun_names``
    are given, ``cluster_nouns_`` (the 5 nouns with the largest center weights) and ``cluster_names_``
    (the first of them).
    """

    _state_arrays = ("labels_", "centers_", "selected_nouns_", "selected_noun_embeddings_")
    _state_values = ("n_features_in_", "cluster_names_", "cluster_nouns_", "n_centers_")

    def __init__(
        self,
        n_clusters: int = 10,
        relation: RelationMode = "ridge",
        lam: float = 1.0,
        n_centers: int | None = None,
        nouns_per_center: int = 5,
        n_init: int = 5,
        kmeans_iter: int = LAIC_KMEANS_ITER,
        random_state: int = 0,
    ) -> None:
        self.n_clusters = n_clusters
        self.relation = relation
        self.lam = lam
        self.n_centers = n_centers
        self.nouns_per_center = nouns_per_center
        self.n_init = n_init
        self.kmeans_iter = kmeans_iter
        self.random_state = random_state

    def fit(
        self,
        X: ArrayLike,
        noun_embeddings: ArrayLike | None = None,
        noun_names: Sequence[str] | None = None,
        y: ArrayLike | None = None,
    ) -> LAICNoTrain:
        u = l2_normalize(self._validate_fit_input(X, min_samples=2))
        n_clusters = check_n_clusters(self.n_clusters, u.shape[0])
        s = l2_normalize(check_noun_embeddings(noun_embeddings, u.shape[1]))
        n_centers = default_n_centers(u.shape[0]) if self.n_centers is None else int(self.n_centers)
        selected = select_nouns(
            u,
            s,
            n_centers,
            per_center=self.nouns_per_center,
            random_state=self.random_state,
            n_init=self.n_init,
            max_iter=self.kmeans_iter,
        )
        self.selected_nouns_ = selected
        self.selected_noun_embeddings_ = s[selected]
        self.relation_ = self._relation(u)
        result = spherical_kmeans(
            relation_rows_normalized(self.relation_),
            n_clusters,
            n_init=self.n_init,
            max_iter=self.kmeans_iter,
            random_state=self.random_state,
        )
        self.labels_ = result.labels
        self.centers_ = result.centers
        self.n_centers_ = n_centers
        self.n_features_in_ = u.shape[1]
        self.cluster_names_ = self.cluster_nouns_ = None
        if noun_names is not None:
            names = [str(n) for n in noun_names]
            if len(names) != s.shape[0]:
                raise ValueError(f"noun_names has {len(names)} entries for {s.shape[0]} nouns")
            sel_names = [names[j] for j in selected]
            tops = nearest_distinct_nouns(result.centers, np.eye(len(selected), dtype=np.float32), sel_names, 5)
            self.cluster_nouns_ = [[sel_names[j] for j in top] for top in tops]
            self.cluster_names_ = [top[0] if top else "" for top in self.cluster_nouns_]
        return self

    def _relation(self, u: np.ndarray) -> np.ndarray:
        return relation_matrix(u, self.selected_noun_embeddings_, mode=self.relation, lam=self.lam)

    def transform(self, X: ArrayLike) -> np.ndarray:
        """Normalised relation rows of new joint-space images (the space k-means ran in)."""
        x = self._validate_predict_input(X)
        return relation_rows_normalized(self._relation(x))

    def predict(self, X: ArrayLike) -> np.ndarray:
        labels, _ = assign_to_centers(self.transform(X), self.centers_)
        return labels


def fit_laic_notrain(features: FeatureSet, n_clusters: int, random_state: int, **options: Any) -> MethodResult:
    names, nouns = features.noun_vocabulary()
    estimator = LAICNoTrain(n_clusters=n_clusters, random_state=random_state, **options)
    estimator.fit(features.joint, nouns, noun_names=names)
    return MethodResult(estimator, estimator.labels_, n_clusters, info={"n_centers": estimator.n_centers_})


SPEC = MethodSpec(
    name="laic-notrain",
    estimator=LAICNoTrain,
    fit=fit_laic_notrain,
    summary="LAIC without training: k-means on the image-noun relation rows",
    needs=frozenset({"nouns"}),
)
METHOD_SPECS = (SPEC,)
