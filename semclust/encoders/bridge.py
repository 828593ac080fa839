"""Bridges from a classifier's output to a text space.

- ConSE (Norouzi et al., 2014): an image is embedded as the probability-weighted sum of the
  text embeddings of its T most probable classes.
- Linear (DeViSE-style, Frome et al., 2013): a linear map from the visual features to the text
  space, fitted on the classifier's own weight rows (one per class) paired with the class-text
  embeddings; ``ridge`` least squares or orthogonal ``procrustes``. No bias term, so the map
  commutes with L2-normalising the input features.
- Mix: ``normalise(alpha * conse + (1 - alpha) * linear)``.

Every bridge returns L2-normalised float32 rows, so the image lands in the sentence encoder's
space and can be compared with any text. All are cheap functions of the visual tower's
(features, logits), so variants can be compared from one forward pass.
"""

from __future__ import annotations

import numpy as np
import torch

from semclust.encoders.base import l2_normalize

# "paired" (semclust.encoders.paired_bridge) is fitted on rendered emoji, not on the classifier alone.
BRIDGE_KINDS = ("conse", "linear", "procrustes", "mix", "paired")


class ConSEBridge:
    kind = "conse"

    def __init__(self, class_text_embeddings: np.ndarray, top_t: int = 10):
        if not 1 <= top_t <= len(class_text_embeddings):
            raise ValueError(f"top_t must be in [1, {len(class_text_embeddings)}], got {top_t}")
        self.class_text_embeddings = torch.as_tensor(l2_normalize(class_text_embeddings))
        self.top_t = top_t

    def __call__(self, logits: torch.Tensor) -> np.ndarray:
        probs = torch.as_tensor(logits).float().softmax(dim=1).cpu()
        top_p, top_idx = probs.topk(self.top_t, dim=1)
        weights = top_p / top_p.sum(dim=1, keepdim=True)
        # [n, T, 1] * [n, T, d] summed over T
        joint = (weights.unsqueeze(-1) * self.class_text_embeddings[top_idx]).sum(dim=1)
        return l2_normalize(joint.numpy())

    def embed(self, features: np.ndarray, logits: torch.Tensor) -> np.ndarray:
        return self(logits)


def ridge_map(class_weights: np.ndarray, class_texts: np.ndarray, lam: float) -> np.ndarray:
    """``M = argmin ||W M - T||^2 + lam ||M||^2 = (W^T W + lam I)^-1 W^T T`` (float64 solve).

    ``W`` [C, D] holds one classifier weight row per class, ``T`` [C, d] the class texts;
    ``M`` is [D, d]. Computed in the dual form ``W^T (W W^T + lam I)^-1 T`` when C < D.
    """
    if lam <= 0:
        raise ValueError(f"bridge_lambda must be > 0, got {lam}")
    w = np.asarray(class_weights, dtype=np.float64)
    t = np.asarray(class_texts, dtype=np.float64)
    c, d = w.shape
    if c < d:
        m = w.T @ np.linalg.solve(w @ w.T + lam * np.eye(c), t)
    else:
        m = np.linalg.solve(w.T @ w + lam * np.eye(d), w.T @ t)
    return m.astype(np.float32)


def procrustes_map(class_weights: np.ndarray, class_texts: np.ndarray) -> np.ndarray:
    """Semi-orthogonal ``Q`` [D, d] (``Q^T Q = I``, D >= d) minimising ``||W Q - T||``.

    Rows of ``W`` and ``T`` are L2-normalised first (only directions matter). With
    ``W^T T = U S V^T`` (thin SVD), ``Q = U V^T``: a rotation of the text space embedded
    in the visual one, so no padding or projection of dimensions is needed.
    """
    w = l2_normalize(np.asarray(class_weights, dtype=np.float64))
    t = l2_normalize(np.asarray(class_texts, dtype=np.float64))
    if w.shape[1] < t.shape[1]:
        raise ValueError(f"procrustes needs visual dim >= text dim, got {w.shape[1]} < {t.shape[1]}")
    u, _, vt = np.linalg.svd(w.T @ t, full_matrices=False)
    return (u @ vt).astype(np.float32)


class LinearBridge:
    """``normalise(features @ M)`` with ``M`` fitted on (classifier weight rows, class texts)."""

    def __init__(
        self,
        class_weights: np.ndarray,
        class_text_embeddings: np.ndarray,
        lam: float = 1.0,
        method: str = "ridge",
    ) -> None:
        if len(class_weights) != len(class_text_embeddings):
            raise ValueError(f"{len(class_weights)} weight rows but {len(class_text_embeddings)} class texts")
        texts = l2_normalize(np.asarray(class_text_embeddings, dtype=np.float32))
        if method == "ridge":
            self.matrix = ridge_map(class_weights, texts, lam)
        elif method == "procrustes":
            self.matrix = procrustes_map(class_weights, texts)
        else:
            raise ValueError(f"unknown linear bridge method {method!r}; expected ridge or procrustes")
        self.kind = "linear" if method == "ridge" else "procrustes"
        self.method = method
        self.lam = lam

    def __call__(self, features: np.ndarray) -> np.ndarray:
        x = np.asarray(features, dtype=np.float32)
        return l2_normalize((x @ self.matrix).astype(np.float32))

    def embed(self, features: np.ndarray, logits: torch.Tensor) -> np.ndarray:
        return self(features)


class MixBridge:
    """``normalise(alpha * conse + (1 - alpha) * linear)`` of two normalised embeddings."""

    kind = "mix"

    def __init__(self, conse: ConSEBridge, linear: LinearBridge, alpha: float = 0.5) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"bridge_alpha must be in [0, 1], got {alpha}")
        self.conse, self.linear, self.alpha = conse, linear, alpha

    def embed(self, features: np.ndarray, logits: torch.Tensor) -> np.ndarray:
        mixed = self.alpha * self.conse(logits) + (1.0 - self.alpha) * self.linear(features)
        return l2_normalize(mixed.astype(np.float32))
