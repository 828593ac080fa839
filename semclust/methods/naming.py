"""Naming clusters with nouns: the nouns whose text embeddings lie closest to each cluster.

Used by TAC (RESEARCH.md section 2) to label clusters with the nouns its text counterparts
were built from; works for any method whose clusters live in CLIP's joint space.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from semclust.ops.features import as_feature_matrix, check_positive_int, cluster_mean_directions, l2_normalize


def text_space_centroids(joint_feats: ArrayLike, labels: ArrayLike, n_clusters: int) -> np.ndarray:
    """float32[K, d]: the normalised mean of each cluster's (normalised) joint embeddings
    (:func:`semclust.ops.features.cluster_mean_directions`). A cluster with no members (or whose
    members cancel out) gets an all-zero row, which :func:`name_clusters` names ``[]``.
    """
    return cluster_mean_directions(joint_feats, labels, n_clusters)


def name_clusters(
    centers_text_space: ArrayLike,
    noun_embeddings: ArrayLike,
    noun_names: Sequence[str],
    top: int = 5,
) -> list[list[str]]:
    """For each center, the ``top`` distinct noun names most cosine-similar to it.

    Both sides are L2-normalised so the score is a cosine. Names are taken in decreasing
    similarity (ties go to the lower noun index); a name already taken for the same center
    (e.g. two WordNet synsets both called "bank") is skipped, so each list holds distinct
    strings and may be shorter than ``top`` when there are too few distinct names. An
    all-zero center (an empty cluster) gets ``[]``.
    """
    c = as_feature_matrix(centers_text_space, name="centers_text_space")
    s = l2_normalize(as_feature_matrix(noun_embeddings, name="noun_embeddings"))
    if c.shape[1] != s.shape[1]:
        raise ValueError(f"centers have dimension {c.shape[1]} but nouns have {s.shape[1]}")
    names = [str(name) for name in noun_names]
    if len(names) != s.shape[0]:
        raise ValueError(f"noun_names has {len(names)} entries for {s.shape[0]} noun embeddings")
    top = check_positive_int(top, "top")
    empty = np.linalg.norm(c, axis=1) <= 1e-12
    sims = l2_normalize(c) @ s.T
    result: list[list[str]] = []
    for row, is_empty in zip(sims, empty):
        if is_empty:
            result.append([])
            continue
        # stable sort on -similarity: equal scores keep ascending index order
        order = np.argsort(-row, kind="stable")
        chosen: list[str] = []
        seen: set[str] = set()
        for j in order:
            name = names[j]
            if name in seen:
                continue
            seen.add(name)
            chosen.append(name)
            if len(chosen) == top:
                break
        result.append(chosen)
    return result
