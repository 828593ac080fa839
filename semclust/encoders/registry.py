"""Encoders by name: ``offline``, ``clip:<hf-name-or-dir>``, ``open_clip:<arch>[:<checkpoint>]``."""

from __future__ import annotations

from typing import Any

import torch

from semclust.encoders.base import Encoder

ENCODER_KINDS = ("offline", "clip", "open_clip")


def _parse_options(text: str) -> dict[str, Any]:
    """``image_size=96,top_t=5`` -> {"image_size": 96, "top_t": 5}."""
    options: dict[str, Any] = {}
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"encoder option {part!r} is not key=value")
        options[key.strip().replace("-", "_")] = int(value) if value.strip().isdigit() else value
    return options


def get_encoder(
    spec: str = "offline",
    *,
    device: str = "cpu",
    batch_size: int | None = None,
    threads: int | None = None,
    **options: Any,
) -> Encoder:
    """Build an encoder from its spec string.

    ``offline[:key=value,...]`` takes the options of :class:`OfflineEncoder` (``image_size``,
    ``top_t``, ``class_template``, ``backend``); keyword ``options`` override those in the string.
    ``threads``: CPU threads for the forward passes (the offline encoder's ONNX Runtime sessions;
    torch's thread count for the others); default all cores.
    """
    kind, _, rest = spec.partition(":")
    extra: dict[str, Any] = {"batch_size": batch_size} if batch_size else {}
    if kind == "offline":
        from semclust.encoders.offline import OfflineEncoder

        return OfflineEncoder(device=device, threads=threads, **{**_parse_options(rest), **options, **extra})
    if threads is not None:
        from semclust.encoders.runtime import check_threads

        torch.set_num_threads(check_threads(threads))
    if kind == "clip":
        if not rest:
            raise ValueError("clip encoder needs a model: clip:<hf-name-or-local-dir>")
        from semclust.encoders.clip import HFClipEncoder

        return HFClipEncoder(rest, device=device, **options, **extra)
    if kind == "open_clip":
        try:
            from semclust.encoders.open_clip import OpenClipEncoder
        except ImportError as exc:
            raise ValueError(f"open_clip encoders are not available here: {exc}") from None
        arch, _, checkpoint = rest.partition(":")
        return OpenClipEncoder(arch, checkpoint=checkpoint or None, device=device, **options, **extra)
    raise ValueError(f"unknown encoder {spec!r}; expected one of: offline, clip:<model>, open_clip:<arch>")


def encoder_from_config(config: dict[str, Any], *, device: str = "cpu", threads: int | None = None) -> Encoder:
    """Rebuild the encoder that produced a feature store (for its text tower, or new images).

    The backend that ran it is not reused: both give the same features (within 1e-4), and the
    machine that reads the store picks its own (``backend="auto"``)."""
    return get_encoder(config["spec"], device=device, threads=threads, **config.get("options", {}))
