"""Exact cosine k-nearest neighbours on top of faiss, and how label-pure they are."""

from __future__ import annotations

from typing import cast

import faiss
import numpy as np
from numpy.typing import ArrayLike

from semclust.ops.features import as_feature_matrix, check_positive_int, l2_normalize

DEFAULT_BLOCK_SIZE = 8192


def knn(
    features: ArrayLike,
    k: int,
    *,
    queries: ArrayLike | None = None,
    exclude_self: bool = True,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most cosine-similar rows of ``features`` for every query.

    Returns ``(indices int64[m, k], similarities float32[m, k])`` sorted by decreasing
    similarity. Inputs of any float dtype (float16 included) are copied to float32 and
    L2-normalised, so the caller's arrays are never modified.

    With ``queries=None`` the features are searched against themselves; ``exclude_self``
    then removes each row's own index from its neighbour list. ``exclude_self`` has no
    effect when ``queries`` is given, because nothing ties a query to a row of ``features``.
    Queries are searched ``block_size`` rows at a time so faiss's temporary distance
    buffers stay bounded however many queries there are.
    """
    base = l2_normalize(as_feature_matrix(features, name="features"))
    n, dim = base.shape
    self_search = queries is None
    if self_search:
        query_matrix = base
    else:
        query_matrix = l2_normalize(as_feature_matrix(cast(ArrayLike, queries), name="queries"))
        if query_matrix.shape[1] != dim:
            raise ValueError(f"queries have dimension {query_matrix.shape[1]} but features have {dim}")
    drop_self = self_search and exclude_self
    k = check_positive_int(k, "k")
    max_k = n - 1 if drop_self else n
    if k > max_k:
        relation = "k < n (self is excluded)" if drop_self else "k <= n"
        raise ValueError(f"need {relation}, got k={k} and n={n}")
    block_size = check_positive_int(block_size, "block_size")

    index = faiss.IndexFlatIP(dim)
    index.add(base)
    m = query_matrix.shape[0]
    indices = np.empty((m, k), dtype=np.int64)
    similarities = np.empty((m, k), dtype=np.float32)
    search_k = k + 1 if drop_self else k
    for start in range(0, m, block_size):
        stop = min(start + block_size, m)
        block_sims, block_idx = index.search(query_matrix[start:stop], search_k)
        if drop_self:
            block_idx, block_sims = drop_own_index(block_idx, block_sims, np.arange(start, stop))
        indices[start:stop] = block_idx
        similarities[start:stop] = block_sims
    return indices, similarities


def drop_own_index(idx: np.ndarray, sims: np.ndarray, own: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own index from ``k + 1`` results, leaving ``k``.

    Exact duplicates tie with the query itself, so faiss may rank a duplicate first and the
    query second, or push the query out of the top ``k + 1`` altogether; dropping column 0
    would then keep the query as its own neighbour. Where the own index is absent every
    kept result ties with it, so dropping the last column is equally correct.
    """
    is_self = idx == own[:, None]
    has_self = is_self.any(axis=1)
    drop_col = np.where(has_self, is_self.argmax(axis=1), idx.shape[1] - 1)
    keep = np.ones(idx.shape, dtype=bool)
    keep[np.arange(idx.shape[0]), drop_col] = False
    k = idx.shape[1] - 1
    return idx[keep].reshape(-1, k), sims[keep].reshape(-1, k)


def neighbour_purity(indices: ArrayLike, labels: ArrayLike) -> float:
    """Mean fraction of a row's neighbours that share its label.

    Rows with a negative (unknown) label are skipped; a neighbour with an unknown label
    counts as a mismatch, since it cannot be shown to agree.
    """
    idx = np.asarray(indices)
    lab = np.asarray(labels)
    if idx.ndim != 2 or idx.shape[1] == 0:
        raise ValueError(f"indices must be 2-D [n, k] with k >= 1, got shape {idx.shape}")
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"indices must be integers, got dtype {idx.dtype}")
    if lab.ndim != 1 or len(lab) != idx.shape[0]:
        raise ValueError(f"labels must be 1-D with {idx.shape[0]} entries, got shape {lab.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= len(lab)):
        bad = idx.min() if idx.min() < 0 else idx.max()
        raise ValueError(f"indices must lie in [0, {len(lab)}), got {bad}")
    known = lab >= 0
    if not known.any():
        raise ValueError("neighbour_purity needs at least one row with a non-negative label")
    same = lab[idx[known]] == lab[known][:, None]
    return float(same.mean())
