"""LAIC's cross-modal relation matrix: each image re-described by its relation to the nouns.

The paper calls it "a ridge regression that reconstructs the image-text representation" and
gives no formula. The reading implemented as the default (``mode="ridge"``) is that row ``i``
of ``C`` holds the ridge coefficients that reconstruct image embedding ``u_i`` from the
selected noun embeddings ``S``::

    c_i = argmin_c ||u_i - c S||^2 + lam ||c||^2   =>   C = U S^T (S S^T + lam I)^-1

``"similarity"`` (``U S^T``) and ``"softmax"`` (row-softmax of ``U S^T / T``) are the
alternatives RESEARCH.md names. Rows are produced in blocks, so a million images never need
their whole ``[n, m]`` matrix at once unless the caller asks for it.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Literal

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike

from semclust.ops.features import as_feature_matrix, check_positive_int, l2_normalize

RelationMode = Literal["ridge", "similarity", "softmax"]
MODES = ("ridge", "similarity", "softmax")

# Rows of S are unit vectors, so every diagonal entry of S S^T is 1 and its eigenvalues
# average m / rank(S) >= 1. lam = 1 therefore matches one noun's self-similarity: it damps
# the many near-zero directions spanned by almost-collinear nouns (and makes the system
# solvable when m > d, where S S^T is singular) while barely shrinking the dominant ones.
DEFAULT_LAM = 1.0
# TAC's retrieval temperature for the same u . s softmax; the paper gives none for C.
DEFAULT_TEMPERATURE = 0.005
# Block rows are chosen so one [rows, m] float32 block stays near this many bytes.
DEFAULT_BLOCK_BYTES = 64 * 2**20


def ridge_operator(nouns: np.ndarray, lam: float) -> np.ndarray:
    """``W^T = S^T (S S^T + lam I_m)^-1`` as float32 ``[d, m]``, so that ``C = U @ W^T``.

    The push-through identity ``S^T (S S^T + lam I_m)^-1 = (S^T S + lam I_d)^-1 S^T`` lets
    the smaller of the m x m and d x d positive-definite systems be solved, once, in float64.
    With ``lam = 0`` this is ``pinv(S)`` when ``S`` has full rank (min-norm least squares).
    """
    s = nouns.astype(np.float64)
    m, d = s.shape
    try:
        with warnings.catch_warnings():
            # scipy only warns when the system is numerically singular; the result would be noise.
            warnings.simplefilter("error", scipy.linalg.LinAlgWarning)
            if m <= d:
                # (S S^T + lam I) W = S  ->  W^T = S^T G^-1 since G is symmetric
                gram = s @ s.T + lam * np.eye(m)
                operator = scipy.linalg.solve(gram, s, assume_a="pos").T
            else:
                gram = s.T @ s + lam * np.eye(d)
                operator = scipy.linalg.solve(gram, s.T, assume_a="pos")
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgWarning) as error:
        raise np.linalg.LinAlgError(
            f"the noun Gram matrix is singular for lam={lam} (m={m}, d={d}); use lam > 0"
        ) from error
    return np.ascontiguousarray(operator, dtype=np.float32)


def _check_inputs(
    images: ArrayLike, nouns: ArrayLike, mode: str, lam: float, temperature: float, normalize: bool
) -> tuple[np.ndarray, np.ndarray]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not np.isfinite(lam) or lam < 0:
        raise ValueError(f"lam must be a finite number >= 0, got {lam!r}")
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    # Keep a memmap as it is: image rows are converted block by block.
    u = np.asarray(images)
    if u.ndim != 2 or u.shape[0] == 0:
        raise ValueError(f"images must be a non-empty 2-D [n, d] array, got shape {u.shape}")
    s = as_feature_matrix(nouns, name="nouns")
    if u.shape[1] != s.shape[1]:
        raise ValueError(f"images have dimension {u.shape[1]} but nouns have {s.shape[1]}")
    if normalize:
        s = l2_normalize(s)
    return u, s


def _auto_block_size(m: int) -> int:
    return max(1, DEFAULT_BLOCK_BYTES // (4 * m))


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Numerically stable row softmax in float32 (the row max is subtracted first)."""
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def iter_relation_blocks(
    images: ArrayLike,
    nouns: ArrayLike,
    *,
    mode: RelationMode = "ridge",
    lam: float = DEFAULT_LAM,
    temperature: float = DEFAULT_TEMPERATURE,
    normalize: bool = True,
    block_size: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, C[start:start + rows])`` float32 blocks of the relation matrix.

    ``images`` may be a memmap; only one block of it is read into memory at a time. With
    ``normalize`` (the default) image and noun rows are L2-normalised first, so similarities
    are cosines, as in CLIP. ``block_size=None`` picks rows so a block is about 64 MiB.
    """
    u, s = _check_inputs(images, nouns, mode, lam, temperature, normalize)
    n, m = u.shape[0], s.shape[0]
    block_size = _auto_block_size(m) if block_size is None else check_positive_int(block_size, "block_size")
    right = ridge_operator(s, lam) if mode == "ridge" else np.ascontiguousarray(s.T)
    for start in range(0, n, block_size):
        block = as_feature_matrix(u[start : start + block_size], name="images")
        if normalize:
            block = l2_normalize(block)
        out = block @ right
        if mode == "softmax":
            out = softmax_rows(out / np.float32(temperature))
        yield start, np.ascontiguousarray(out, dtype=np.float32)


def relation_matrix(
    images: ArrayLike,
    nouns: ArrayLike,
    mode: RelationMode = "ridge",
    lam: float = DEFAULT_LAM,
    *,
    temperature: float = DEFAULT_TEMPERATURE,
    normalize: bool = True,
    block_size: int | None = None,
) -> np.ndarray:
    """The full float32 ``[n, m]`` relation matrix; see :func:`iter_relation_blocks`."""
    u = np.asarray(images)
    out: np.ndarray | None = None
    for start, block in iter_relation_blocks(
        u, nouns, mode=mode, lam=lam, temperature=temperature, normalize=normalize, block_size=block_size
    ):
        if out is None:
            out = np.empty((u.shape[0], block.shape[1]), dtype=np.float32)
        out[start : start + block.shape[0]] = block
    assert out is not None
    return out


def relation_rows_normalized(relation: ArrayLike) -> np.ndarray:
    """Unit-norm rows of ``C``, the representation kNN and spherical k-means work on.

    Normalising discards each row's overall scale (how well the nouns reconstruct the image)
    and keeps only which nouns it is made of, which is what neighbours should compare.
    """
    return l2_normalize(as_feature_matrix(relation, name="relation"))
