"""The model a ``semclust ssl ...`` run saves, reloadable without pickle, to classify new images.

``RUN_DIR/model`` holds ``model.safetensors`` (the EMA network's state, the one every
evaluation used) and ``model.json`` (format, the algorithm and its hyperparameters, the
network's name, class count and input shape, the per-channel normalisation, the class names
and the SHA-256 of the tensor file), written in that order, each atomically. The same file
names as a cluster run's model (:mod:`semclust.outputs.model`), told apart by ``format``.

New images are read as the training images of a folder run were
(:func:`semclust.ssl.folders.read_source`: grey or RGB, bilinear resize), normalised with the
saved statistics and classified by the algorithm's own ``eval_outputs``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semclust.atomic import atomic_write, json_plain, write_json
from semclust.data.base import ImageSource, SkippedItem

FORMAT = "semclust-ssl-model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "model.json"
_CHUNK = 512


def save_ssl_model(
    model_dir: str | os.PathLike[str], trainer: Any, class_names: Sequence[str], input_shape: Sequence[int]
) -> Path:
    """Write ``trainer``'s EMA network and what predicting needs into ``model_dir``;
    ``input_shape`` is the training images' ``(H, W)`` or ``(H, W, C)``."""
    from safetensors.torch import save as save_tensors

    config = trainer.config
    if not isinstance(trainer.settings.network, str):
        raise ValueError("only a network given by name (cnn, wrn-28-2) can be saved and rebuilt")
    if len(class_names) != int(config["num_classes"]):
        raise ValueError(f"{len(class_names)} class names for {config['num_classes']} classes")
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in trainer.ema.model.state_dict().items()}
    blob = save_tensors(state, metadata={"format": FORMAT})
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "method": config["algorithm"],
        "algo_hyperparams": json_plain(config["algo_hyperparams"]),
        "network": config["network"],
        "num_classes": int(config["num_classes"]),
        "in_channels": int(config["in_channels"]),
        "input_shape": [int(v) for v in input_shape],
        "mean": [float(v) for v in trainer.mean],
        "std": [float(v) for v in trainer.std],
        "class_names": [str(n) for n in class_names],
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
    }
    path = Path(model_dir)
    path.mkdir(parents=True, exist_ok=True)
    atomic_write(path / WEIGHTS_FILE, lambda handle: handle.write(blob), "wb")
    write_json(path / MANIFEST_FILE, manifest)
    return path


def is_ssl_model(model_dir: str | os.PathLike[str]) -> bool:
    try:
        manifest = json.loads((Path(model_dir) / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


@dataclass
class SSLModel:
    """A reloaded classifier: ``predict_images`` assigns classes, ``cluster_name(k)`` names them
    (the labelled folder's subfolder names), as :class:`semclust.outputs.model.LoadedModel` does
    for clusters."""

    method: str
    algorithm: Any
    network: torch.nn.Module
    input_shape: tuple[int, ...]
    mean: list[float]
    std: list[float]
    cluster_names: list[list[str]]
    path: Path
    manifest: dict[str, Any]

    @property
    def n_clusters(self) -> int:
        return len(self.cluster_names)

    @property
    def class_names(self) -> list[str]:
        return [names[0] for names in self.cluster_names]

    def cluster_name(self, k: int) -> str:
        return self.cluster_names[k][0]

    @torch.no_grad()
    def predict_pixels(self, pixels: np.ndarray, device: str = "cpu") -> np.ndarray:
        """int64 class of each uint8 image shaped as the training images (``input_shape``)."""
        from semclust.ssl.augment import normalize, to_float
        from semclust.ssl.data import as_uint8_tensor

        x = as_uint8_tensor(pixels, "images")
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"images are {list(x.shape[1:])}, this model reads {list(self.input_shape)}")
        self.network.to(device).eval()
        parts = []
        for lo in range(0, len(x), _CHUNK):
            chunk = normalize(to_float(x[lo : lo + _CHUNK]), self.mean, self.std).to(device)
            parts.append(self.algorithm.eval_outputs(self.network, chunk)["pred"].cpu())
        return torch.cat(parts).numpy().astype(np.int64) if parts else np.zeros(0, dtype=np.int64)

    def predict_images(
        self,
        images: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | ImageSource,
        device: str = "cpu",
        progress: Callable[[str, int], Callable[[int], None]] | None = None,
        *,
        encoder: Any = None,
        batch_size: int | None = None,
    ) -> tuple[list[str], np.ndarray, list[SkippedItem]]:
        """``(ids, classes, skipped)`` for image files and folders (ids as a cluster model's
        ``predict_images`` gives them: a folder's relative to it) or an :class:`ImageSource`,
        the signature of :meth:`semclust.outputs.model.LoadedModel.predict_images`; ``encoder``
        and ``batch_size`` are unused (the network reads the pixels)."""
        from semclust.data.files import image_source

        source = images if isinstance(images, ImageSource) else image_source(images)
        return self.predict_source(source, device=device, progress=progress)

    def predict_source(
        self,
        source: ImageSource,
        device: str = "cpu",
        progress: Callable[[str, int], Callable[[int], None]] | None = None,
    ) -> tuple[list[str], np.ndarray, list[SkippedItem]]:
        """``(ids, classes, skipped)`` for every image of ``source``; files that do not decode
        are skipped."""
        from semclust.ssl.folders import read_source

        size, channels = self.input_shape[0], (1 if len(self.input_shape) == 2 else self.input_shape[2])
        advance = progress(f"classifying {len(source)} images", len(source)) if progress else None
        pixels, kept, skipped = read_source(source, size, channels, advance)
        if not kept:
            return [], np.zeros(0, dtype=np.int64), skipped
        return [source.ids[i] for i in kept], self.predict_pixels(pixels, device=device), skipped


def load_ssl_model(model_dir: str | os.PathLike[str]) -> SSLModel:
    """Rebuild a saved ssl model (safetensors + JSON only); ValueError naming the bad file."""
    from safetensors.torch import load as load_tensors

    from semclust.ssl.algorithms import get_algorithm
    from semclust.ssl.nets import build_network

    root = Path(model_dir)
    manifest_path, weights_path = root / MANIFEST_FILE, root / WEIGHTS_FILE
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{manifest_path}: not a readable model manifest ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{manifest_path}: not a semclust ssl model (format is not {FORMAT!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{manifest_path}: ssl model format version {manifest.get('format_version')!r}; "
                         f"this semclust reads {FORMAT_VERSION}")  # fmt: skip
    if not weights_path.is_file():
        raise ValueError(f"{weights_path}: missing; the saved model is incomplete")
    blob = weights_path.read_bytes()
    try:
        if hashlib.sha256(blob).hexdigest() != manifest["weights_sha256"]:
            raise ValueError(f"{weights_path}: contents do not match {MANIFEST_FILE} (checksum differs)")
        num_classes, in_channels = int(manifest["num_classes"]), int(manifest["in_channels"])
        network = build_network(manifest["network"], num_classes=num_classes, in_channels=in_channels)
        algorithm = get_algorithm(manifest["method"])(network, num_classes, **manifest["algo_hyperparams"])
        model = algorithm.model  # an algorithm may wrap the network (expert heads): that is what was saved
        model.load_state_dict(load_tensors(blob), strict=True)
        names = [str(n) for n in manifest["class_names"]]
        if len(names) != num_classes:
            raise ValueError(f"{len(names)} class names for {num_classes} classes")
        shape = tuple(int(v) for v in manifest["input_shape"])
    except KeyError as err:
        raise ValueError(f"{manifest_path}: missing field {err}") from None
    except (TypeError, RuntimeError) as err:
        raise ValueError(f"{manifest_path}: does not describe a valid model ({err})") from None
    model.eval()
    return SSLModel(
        method=str(manifest["method"]),
        algorithm=algorithm,
        network=model,
        input_shape=shape,
        mean=[float(v) for v in manifest["mean"]],
        std=[float(v) for v in manifest["std"]],
        cluster_names=[[n] for n in names],
        path=root,
        manifest=manifest,
    )
