"""TAC's text side (Li et al., ICML 2024): pick nouns near image centers, then give every
image a text counterpart retrieved from those nouns (RESEARCH.md section 2, steps 3-4)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from semclust.ops.features import as_feature_matrix, check_positive_int, cluster_mean_directions, l2_normalize
from semclust.ops.kmeans import spherical_kmeans
from semclust.ops.relation import softmax_rows

# TAC's retrieval temperature: with cosines in [-1, 1], 0.005 makes the softmax nearly a
# hard nearest-noun lookup that still blends near ties.
DEFAULT_TEMPERATURE = 0.005
DEFAULT_BLOCK_SIZE = 4096


# TAC's k-means settings (filter_nouns.py / concat_kmeans.py): 300 iterations, 10 restarts for
# the noun centers and 20 for the no-train clustering of [u ; t].
KMEANS_ITER = 300
NOUN_KMEANS_RESTARTS = 10
# faiss.Kmeans's own default, which TAC's scripts keep: k-means trains on a random subsample
# of 256 points per center when there are more (semclust.ops.kmeans otherwise uses all).
FAISS_MAX_POINTS_PER_CENTROID = 256
CONCAT_KMEANS_RESTARTS = 20


def default_n_centers(n: int, n_clusters: int | None = None) -> int:
    """TAC's k': ``round(N / 300)``, or ``3 K`` when that is fewer than ``K`` clusters.

    TAC lists k' per dataset (``filter_nouns.py``: 167, 167, 17, 43, 65, 141, 303, 4271 for
    CIFAR-10/20, STL-10, ImageNet-10, ImageNet-Dogs, DTD, UCF-101, ImageNet). ``N / 300``
    rounded half up gives six of them; DTD (5,640 images, K 47) and UCF-101 (9,537, K 101)
    would get 19 and 32 centers, fewer than K, and use 3K instead. (``max(N / 300, 3K)`` would
    give STL-10 30, not its 17.) Without ``n_clusters`` only ``N / 300`` applies. At least 2,
    at most ``n``.
    """
    n = check_positive_int(n, "n")
    if n < 2:
        raise ValueError(f"need at least 2 images to pick noun centers, got n={n}")
    k_prime = math.floor(n / 300 + 0.5)
    if n_clusters is not None and k_prime < check_positive_int(n_clusters, "n_clusters"):
        k_prime = 3 * int(n_clusters)
    return min(n, max(2, k_prime))


def assign_nouns_to_centers(
    noun_feats: ArrayLike,
    centers: ArrayLike,
    *,
    temperature: float = 1.0,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> tuple[np.ndarray, np.ndarray]:
    """``(center int64[m], confidence float32[m])`` of each noun.

    Each noun takes the softmax over centers of ``center . noun / temperature``; its center
    is the argmax and its confidence that probability. TAC's code applies the softmax to the
    raw cosines, i.e. ``temperature = 1``, which is the default. Nouns are processed
    ``block_size`` at a time so the ``[m, k']`` score matrix (82,115 x 4,271 for ImageNet)
    never exists in full.
    """
    s = l2_normalize(as_feature_matrix(noun_feats, name="noun_feats"))
    c = l2_normalize(as_feature_matrix(centers, name="centers"))
    if s.shape[1] != c.shape[1]:
        raise ValueError(f"nouns have dimension {s.shape[1]} but centers have {c.shape[1]}")
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    block_size = check_positive_int(block_size, "block_size")
    m = s.shape[0]
    assignment = np.empty(m, dtype=np.int64)
    confidence = np.empty(m, dtype=np.float32)
    for start in range(0, m, block_size):
        probs = softmax_rows((s[start : start + block_size] @ c.T) / np.float32(temperature))
        best = probs.argmax(axis=1)
        assignment[start : start + len(best)] = best
        confidence[start : start + len(best)] = probs[np.arange(len(best)), best]
    return assignment, confidence


def top_per_center(assignment: ArrayLike, confidence: ArrayLike, per_center: int) -> np.ndarray:
    """Ascending indices of the ``per_center`` most confident nouns of every center.

    Ties in confidence go to the lower index, so the choice is deterministic. Each noun has
    exactly one center, so no index can be chosen twice.
    """
    per_center = check_positive_int(per_center, "per_center")
    assign = np.asarray(assignment, dtype=np.int64)
    conf = np.asarray(confidence, dtype=np.float64)
    # lexsort's last key is primary: by center, then confidence descending, then index.
    order = np.lexsort((np.arange(len(assign)), -conf, assign))
    sorted_centers = assign[order]
    group_start = np.searchsorted(sorted_centers, sorted_centers, side="left")
    rank = np.arange(len(order)) - group_start
    return np.sort(order[rank < per_center])


def _first_of_duplicates(feats: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of every distinct row (ascending)."""
    rows = np.ascontiguousarray(feats).view(np.dtype((np.void, feats.dtype.itemsize * feats.shape[1])))
    _, first = np.unique(rows.ravel(), return_index=True)
    return np.sort(first)


def select_nouns(
    image_features: ArrayLike,
    noun_feats: ArrayLike,
    n_centers: int,
    per_center: int = 5,
    random_state: int = 0,
    *,
    n_init: int = NOUN_KMEANS_RESTARTS,
    max_iter: int = KMEANS_ITER,
    temperature: float = 1.0,
    dedupe: bool = True,
    max_points_per_centroid: int | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> np.ndarray:
    """Ascending indices (into ``noun_feats``) of the nouns TAC keeps, int64.

    Images are clustered by spherical k-means into ``n_centers`` (k') centers (TAC: 300
    iterations, ``n_init`` = 10 restarts), each center the mean direction of its images
    (:func:`semclust.ops.features.cluster_mean_directions`); each noun
    goes to its most probable center (:func:`assign_nouns_to_centers`); the ``per_center``
    most confident nouns of each center are kept. Centers that attract fewer nouns keep all
    they have, so the result can be shorter than ``n_centers * per_center``.

    ``dedupe`` (an addition to TAC) first drops nouns whose embedding exactly repeats an
    earlier one: WordNet names many synsets alike ("bank", "bass"), and without this a
    center could spend its five places on copies of one word. The first copy's index is
    the one returned. ``max_points_per_centroid`` goes to the image k-means
    (:func:`semclust.ops.kmeans.spherical_kmeans`; None: every image trains it).
    """
    u = as_feature_matrix(image_features, name="image_features")
    s = as_feature_matrix(noun_feats, name="noun_feats")
    if u.shape[1] != s.shape[1]:
        raise ValueError(f"images have dimension {u.shape[1]} but nouns have {s.shape[1]}")
    candidates = _first_of_duplicates(s) if dedupe else np.arange(s.shape[0])
    clustering = spherical_kmeans(
        u,
        n_centers,
        n_init=n_init,
        max_iter=max_iter,
        random_state=random_state,
        max_points_per_centroid=max_points_per_centroid,
    )
    # TAC's filter_nouns.py rebuilds each center from the labels of every image (faiss's
    # subsample trained the centroids on part of them); a center left empty keeps its centroid.
    centers = cluster_mean_directions(u, clustering.labels, n_centers)
    empty = ~centers.any(axis=1)
    centers[empty] = clustering.centers[empty]
    assignment, confidence = assign_nouns_to_centers(
        s[candidates], centers, temperature=temperature, block_size=block_size
    )
    return candidates[top_per_center(assignment, confidence, per_center)]


def text_counterparts(
    image_features: ArrayLike,
    selected_noun_feats: ArrayLike,
    temperature: float = DEFAULT_TEMPERATURE,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> np.ndarray:
    """float32[n, d]: ``t_i = normalise(sum_j softmax_j(u_i . s_j / T) s_j)``.

    Images and nouns are L2-normalised first so ``u . s`` is a cosine, as with CLIP. Images
    are processed ``block_size`` rows at a time; the softmax subtracts each row's maximum,
    so tiny temperatures do not overflow (as T -> 0, t_i becomes the nearest noun).
    """
    u = np.asarray(image_features)
    if u.ndim != 2 or u.shape[0] == 0:
        raise ValueError(f"image_features must be a non-empty 2-D [n, d] array, got shape {u.shape}")
    s = l2_normalize(as_feature_matrix(selected_noun_feats, name="selected_noun_feats"))
    if u.shape[1] != s.shape[1]:
        raise ValueError(f"images have dimension {u.shape[1]} but nouns have {s.shape[1]}")
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    block_size = check_positive_int(block_size, "block_size")
    out = np.empty((u.shape[0], s.shape[1]), dtype=np.float32)
    for start in range(0, u.shape[0], block_size):
        block = l2_normalize(as_feature_matrix(u[start : start + block_size], name="image_features"))
        weights = softmax_rows((block @ s.T) / np.float32(temperature))
        out[start : start + len(block)] = l2_normalize(weights @ s)
    return out
