"""CLIP-family dual encoders (CLIP, SigLIP, SigLIP 2) loaded through Hugging Face ``transformers``.

The model is a hub name or a directory written by ``save_pretrained`` (model, tokenizer and
image processor together). A directory is always loaded with ``local_files_only`` so that an
offline machine never waits on the network.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import platform
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from typing import Any

import numpy as np
import torch
from PIL import Image

from semclust.encoders.base import Encoder, l2_normalize, resolve_device

# Models whose text tower pools the last position and was trained on max-length padded input:
# any other padding changes their text embeddings.
_MAX_LENGTH_PADDING_TYPES = ("siglip", "siglip2")

# Image-processor settings worth recording: they decide what the model sees.
_PREPROCESSING_KEYS = (
    "do_convert_rgb",
    "do_resize",
    "size",
    "resample",
    "do_center_crop",
    "crop_size",
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "image_mean",
    "image_std",
    "patch_size",
    "max_num_patches",
)

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def _version(dist: str) -> str | None:
    try:
        return _dist_version(dist)
    except PackageNotFoundError:
        return None


def _transformers_major() -> int:
    import transformers

    return int(transformers.__version__.split(".")[0])


def _resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    # float32 unless asked: newer transformers default to the checkpoint's dtype, and a half
    # precision checkpoint on the CPU is slow or unsupported.
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(set(_DTYPES))}")
    return _DTYPES[key]


def _looks_like_path(model: str) -> bool:
    # Hub ids are "org/name" too, so only unmistakable path forms count as paths.
    return (
        os.path.isabs(model)
        or model.startswith(("./", "../", "~", ".\\", "..\\"))
        or model in (".", "..")
        or os.path.exists(model)
    )


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, (np.generic,)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _pooled(output: Any) -> torch.Tensor:
    # transformers 4.x returns the projected features as a tensor; 5.x returns a model output
    # whose ``pooler_output`` holds them.
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    if isinstance(output, (tuple, list)) and len(output) > 1 and isinstance(output[1], torch.Tensor):
        return output[1]
    raise TypeError(f"cannot find pooled features in a {type(output).__name__}")


class HFClipEncoder(Encoder):
    """A CLIP/SigLIP model from ``transformers``; ``joint`` is its image-text space."""

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        device: str | torch.device | None = "cpu",
        batch_size: int = 64,
        dtype: str | torch.dtype | None = None,
    ) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model_id = os.fspath(model)
        self.name = f"clip:{self.model_id}"
        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        self._dtype_option = None if dtype is None else str(dtype).removeprefix("torch.")
        self.dtype = _resolve_dtype(dtype)

        self._model, self._image_processor, self._tokenizer = self._load()
        config = self._model.config
        self.model_type: str = getattr(config, "model_type", "") or ""
        text_config = getattr(config, "text_config", config)
        self.dim = int(
            getattr(config, "projection_dim", None)
            or getattr(text_config, "projection_size", None)
            or text_config.hidden_size
        )
        siglip_like = self.model_type in _MAX_LENGTH_PADDING_TYPES
        self._padding: bool | str = "max_length" if siglip_like else True
        self._max_length = self._text_max_length(text_config)

    # ------------------------------------------------------------------ loading

    def _load(self) -> tuple[Any, Any, Any]:
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        source = self.model_id
        is_dir = os.path.isdir(os.path.expanduser(source))
        if not is_dir and _looks_like_path(source):
            what = "is a file, not a directory" if os.path.exists(source) else "no such directory"
            raise ValueError(
                f"clip model {source!r}: {what}; offline use needs a local directory "
                "written by save_pretrained() (model, tokenizer and image processor)"
            )
        if is_dir:
            source = os.path.expanduser(source)
        common: dict[str, Any] = {"local_files_only": True} if is_dir else {}
        new_api = _transformers_major() >= 5
        # Pin the PIL image pipeline: the torchvision one resizes slightly differently, so
        # stored embeddings would depend on whether torchvision happens to be installed.
        image_kwargs = {"backend": "pil"} if new_api else {"use_fast": False}
        dtype_kwarg = "dtype" if new_api else "torch_dtype"
        try:
            model = AutoModel.from_pretrained(source, **common, **{dtype_kwarg: self.dtype})
            image_processor = AutoImageProcessor.from_pretrained(source, **common, **image_kwargs)
            tokenizer = AutoTokenizer.from_pretrained(source, **common)
        except (OSError, ValueError, KeyError, ImportError) as exc:
            where = (
                "the directory must hold what save_pretrained() writes for the model, its "
                "tokenizer and its image processor"
                if is_dir
                else "offline use needs a local directory written by save_pretrained() "
                "(or the model already in the Hugging Face cache)"
            )
            raise ValueError(f"could not load clip model {self.model_id!r}: {exc}; {where}") from exc
        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise ValueError(
                f"clip model {self.model_id!r} is a {type(model).__name__}, not an image-text "
                "dual encoder (CLIP, SigLIP)"
            )
        model.to(self.device)
        model.eval()
        return model, image_processor, tokenizer

    def _text_max_length(self, text_config: Any) -> int:
        limit = int(getattr(text_config, "max_position_embeddings", 0) or 0)
        tok_limit = int(getattr(self._tokenizer, "model_max_length", 0) or 0)
        # Tokenizers without a configured limit report a huge sentinel (about 1e30).
        if 0 < tok_limit < 1_000_000:
            limit = min(limit, tok_limit) if limit else tok_limit
        if limit <= 0:
            raise ValueError(f"clip model {self.model_id!r}: cannot tell the text tower's max length")
        return limit

    # ------------------------------------------------------------------ encoding

    def _to_device(self, batch: Any) -> dict[str, torch.Tensor]:
        moved: dict[str, torch.Tensor] = {}
        for key, value in batch.items():
            if not isinstance(value, torch.Tensor):
                continue
            value = value.to(self.device)
            if value.is_floating_point():
                value = value.to(self.dtype)
            moved[key] = value
        return moved

    def image_views(self, images: Sequence[Image.Image]) -> dict[str, np.ndarray]:
        images = list(images)
        if not images:
            return {"joint": np.zeros((0, self.dim), dtype=np.float32)}
        chunks: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                # Processors disagree on grey and RGBA input (SigLIP's keeps the channel count).
                batch = [
                    im if im.mode == "RGB" else im.convert("RGB") for im in images[start : start + self.batch_size]
                ]
                inputs = self._image_processor(images=batch, return_tensors="pt")
                feats = _pooled(self._model.get_image_features(**self._to_device(inputs)))
                chunks.append(feats.float().cpu().numpy())
        return {"joint": l2_normalize(np.concatenate(chunks, axis=0))}

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("encode_texts takes a sequence of strings, not one string")
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                tokens = self._tokenizer(
                    texts[start : start + self.batch_size],
                    padding=self._padding,
                    truncation=True,
                    max_length=self._max_length,
                    return_tensors="pt",
                )
                # The text towers take ids and mask only; e.g. token_type_ids would be rejected.
                inputs = {k: v for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
                feats = _pooled(self._model.get_text_features(**self._to_device(inputs)))
                chunks.append(feats.float().cpu().numpy())
        return l2_normalize(np.concatenate(chunks, axis=0))

    # ------------------------------------------------------------------ description

    def preprocessing(self) -> dict[str, Any]:
        proc = self._image_processor
        info: dict[str, Any] = {"processor": type(proc).__name__}
        vision_config = getattr(self._model.config, "vision_config", None)
        image_size = getattr(vision_config, "image_size", None)
        if image_size is not None:
            info["image_size"] = image_size
        for key in _PREPROCESSING_KEYS:
            value = getattr(proc, key, None)
            if value is not None:
                info[key] = _jsonable(value)
        info["text"] = {"padding": self._padding, "max_length": self._max_length, "truncation": True}
        return info

    def config(self) -> dict[str, Any]:
        import transformers

        options = {"dtype": self._dtype_option} if self._dtype_option else {}
        return {
            "name": self.name,
            "spec": self.name,
            "options": options,
            "dim": self.dim,
            "views": {"joint": self.dim},
            "model": self.model_id,
            "model_type": self.model_type,
            "architecture": type(self._model).__name__,
            # Set when the model came from the hub cache: pins the exact weights used.
            "revision": getattr(self._model.config, "_commit_hash", None),
            "dtype": str(self.dtype).removeprefix("torch."),
            "preprocessing": self.preprocessing(),
            "versions": {
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "tokenizers": _version("tokenizers"),
                "python": platform.python_version(),
            },
        }


__all__ = ["HFClipEncoder"]
