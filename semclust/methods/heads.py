"""Clustering heads on frozen features, and their predictions on all rows in blocks."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

EVAL_BLOCK = 4096  # rows per block when a head is evaluated on all data


def make_scan_head(dim: int, n_clusters: int, hidden_dim: int | None = None) -> nn.Module:
    """A clustering head giving logits ``[B, K]``: linear, or Linear-BN-ReLU-Linear."""
    if hidden_dim is None:
        return nn.Linear(dim, n_clusters)
    return nn.Sequential(
        nn.Linear(dim, hidden_dim),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(),
        nn.Linear(hidden_dim, n_clusters),
    )


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


@torch.no_grad()
def head_logits(head: nn.Module, u: np.ndarray, device: torch.device) -> np.ndarray:
    was_training = head.training
    head.eval()
    out = [
        head(torch.from_numpy(u[s : s + EVAL_BLOCK]).to(device)).float().cpu().numpy()
        for s in range(0, u.shape[0], EVAL_BLOCK)
    ]
    head.train(was_training)
    return np.concatenate(out, axis=0)
