"""Bridges from a classifier's output to a text space.

ConSE (Norouzi et al., 2014): an image is embedded as the probability-weighted sum of the
text embeddings of its T most probable classes, so it lands in the sentence encoder's space
and can be compared with any text.
"""

from __future__ import annotations

import numpy as np
import torch

from semclust.encoders.base import l2_normalize


class ConSEBridge:
    def __init__(self, class_text_embeddings: np.ndarray, top_t: int = 10):
        if not 1 <= top_t <= len(class_text_embeddings):
            raise ValueError(f"top_t must be in [1, {len(class_text_embeddings)}], got {top_t}")
        self.class_text_embeddings = torch.as_tensor(l2_normalize(class_text_embeddings))
        self.top_t = top_t

    def __call__(self, logits: torch.Tensor) -> np.ndarray:
        probs = logits.float().softmax(dim=1).cpu()
        top_p, top_idx = probs.topk(self.top_t, dim=1)
        weights = top_p / top_p.sum(dim=1, keepdim=True)
        # [n, T, 1] * [n, T, d] summed over T
        joint = (weights.unsqueeze(-1) * self.class_text_embeddings[top_idx]).sum(dim=1)
        return l2_normalize(joint.numpy())
