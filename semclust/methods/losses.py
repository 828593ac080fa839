"""Losses of the clustering heads (SCAN, TAC), on softmax outputs or logits of one batch."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from semclust.methods.heads import EVAL_BLOCK

EPS = 1e-8


def cluster_entropy(p_mean: torch.Tensor) -> torch.Tensor:
    """``H(p_mean)``: the entropy of the mean assignment, which the clustering losses maximise
    against collapse into few clusters (``p_mean`` clamped at 1e-8 inside the log)."""
    return -(p_mean * torch.log(p_mean.clamp_min(EPS))).sum()


def scan_loss(
    p_anchor: torch.Tensor, p_neighbour: torch.Tensor, entropy_weight: float = 5.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SCAN's loss on one batch of softmax outputs ``[B, K]``: ``(total, consistency, entropy)``.

    consistency = ``-mean_i log <p_anchor_i, p_neighbour_i>`` (argument clamped at 1e-8);
    entropy = ``H(mean_i p_anchor_i)`` (anchors only, as SCAN); total = consistency -
    entropy_weight * entropy.
    """
    agree = (p_anchor * p_neighbour).sum(dim=1).clamp_min(EPS)
    consistency = -torch.log(agree).mean()
    entropy = cluster_entropy(p_anchor.mean(dim=0))
    return consistency - entropy_weight * entropy, consistency, entropy


def selection_loss(
    probs: np.ndarray, neighbours: np.ndarray, entropy_weight: float = 5.0
) -> tuple[float, float, float]:
    """A head's loss on all data: ``(total, consistency, entropy)``.

    ``probs`` float[n, K] are the head's predictions on every row, ``neighbours`` int[n, k]
    the mined neighbours. consistency = mean over all ``n * k`` pairs of
    ``-log <p_i, p_j>``; entropy = ``H(mean_i p_i)``; total = consistency -
    entropy_weight * entropy.
    """
    p = np.asarray(probs, dtype=np.float64)
    nb = np.asarray(neighbours)
    total_log = 0.0
    for start in range(0, p.shape[0], EVAL_BLOCK):
        stop = min(start + EVAL_BLOCK, p.shape[0])
        agree = np.einsum("ik,ijk->ij", p[start:stop], p[nb[start:stop]])
        total_log += float(np.log(np.maximum(agree, EPS)).sum())
    consistency = -total_log / nb.size
    p_mean = p.mean(axis=0)
    entropy = float(-(p_mean * np.log(np.maximum(p_mean, EPS))).sum())
    return consistency - entropy_weight * entropy, consistency, entropy


def self_label_loss(logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor | None, int]:
    """SCAN's confidence-based, class-balanced cross-entropy on one batch of logits [B, K].

    Targets are the argmax of the detached softmax; only rows whose max probability exceeds
    ``threshold`` count. Class ``c`` gets weight ``n_confident / count_c`` (classes absent
    among the confident rows: weight 1, unused) and the weighted mean is taken, as
    ``torch.nn.functional.cross_entropy(weight=...)`` does. Returns ``(loss, n_confident)``;
    ``loss`` is None when no row is confident.
    """
    with torch.no_grad():
        prob = torch.softmax(logits.detach(), dim=1)
        max_prob, target = prob.max(dim=1)
        mask = max_prob > threshold
    n_conf = int(mask.sum())
    if n_conf == 0:
        return None, 0
    tgt = target[mask]
    idx, counts = torch.unique(tgt, return_counts=True)
    weight = torch.ones(logits.shape[1], dtype=logits.dtype, device=logits.device)
    weight[idx] = n_conf / counts.to(logits.dtype)
    loss = nn.functional.cross_entropy(logits[mask], tgt, weight=weight)
    return loss, n_conf
