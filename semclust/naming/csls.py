"""Cross-domain similarity local scaling (CSLS, Conneau et al., 2018) for naming in a joint space.

Nearest-noun naming in a joint image-text space finds *hubs*: nouns near the centre of the
text space that are near every image. CSLS discounts each side by how close it is to its
``k`` nearest neighbours on the other side:
``csls(q, t) = 2 cos(q, t) - r_T(q) - r_S(t)``, with ``r_T(q)`` the mean cosine of query
``q`` to its ``k`` nearest nouns and ``r_S(t)`` the mean cosine of noun ``t`` to its ``k``
nearest images.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from semclust.ops.features import as_feature_matrix, check_positive_int, l2_normalize

DEFAULT_CSLS_K = 10


def mean_top_k_similarity(queries: ArrayLike, targets: ArrayLike, k: int, block: int = 4096) -> np.ndarray:
    """float32[n_queries]: mean cosine of each query to its ``k`` most similar targets."""
    q = l2_normalize(as_feature_matrix(queries, name="queries"))
    t = l2_normalize(as_feature_matrix(targets, name="targets"))
    k = min(check_positive_int(k, "k"), t.shape[0])
    out = np.empty(q.shape[0], dtype=np.float32)
    for start in range(0, q.shape[0], block):
        sims = q[start : start + block] @ t.T
        top = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:]
        out[start : start + block] = top.mean(axis=1)
    return out


def csls_matrix(
    queries: ArrayLike,
    nouns: ArrayLike,
    images: ArrayLike,
    k: int = DEFAULT_CSLS_K,
    noun_hubness: ArrayLike | None = None,
) -> np.ndarray:
    """float32[n_queries, n_nouns] CSLS scores; ``noun_hubness`` (``r_S``) may be passed precomputed."""
    q = l2_normalize(as_feature_matrix(queries, name="queries"))
    s = l2_normalize(as_feature_matrix(nouns, name="nouns"))
    r_s = mean_top_k_similarity(s, images, k) if noun_hubness is None else np.asarray(noun_hubness, np.float32)
    r_t = mean_top_k_similarity(q, s, k)
    return (2.0 * (q @ s.T) - r_t[:, None] - r_s[None, :]).astype(np.float32)
