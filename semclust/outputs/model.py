"""A saved model: what a run learned, reloadable without pickle, to assign new images.

``RUN_DIR/model`` holds two files, each written atomically:

* ``model.safetensors``: every learned array and every tensor of the learned torch modules
  (``"<module>.<key>"``), plus array-valued constructor parameters (``"param.<name>"``);
* ``model.json``: format version, method, estimator class, ``get_params()``, the JSON-able
  learned values ``predict`` needs, the name/dtype/shape of every tensor, the SHA-256 of
  ``model.safetensors``, ``inputs`` (which feature-store view feeds each ``predict``
  argument, e.g. ``{"X": "joint", "image_features": "visual"}``, or ``{"X": "pixels"}``
  for asd, whose network reads the images themselves), the encoder config (rebuilt
  with :func:`semclust.encoders.registry.encoder_from_config`), K, the cluster names and the
  semclust version. It is written last, so its presence marks a complete model.

Loading never unpickles anything: the estimator class comes from a fixed table, its
parameters and values from JSON, its arrays from safetensors. A missing, truncated or
changed file is a ValueError naming that file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from semclust.atomic import atomic_write, write_json
from semclust.data.base import ImageDecodeError, ImageSource, SkippedItem
from semclust.data.files import image_source
from semclust.data.pixels import image_pixels
from semclust.methods.spec import PIXELS, VIEWS
from semclust.outputs.prediction import Prediction, SSLRunModel, build_prediction, count

if TYPE_CHECKING:
    from semclust.methods.spec import MethodSpec

FORMAT = "semclust-model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "model.json"
MODEL_DIR = "model"

ProgressFactory = Callable[[str, int], Callable[[int], None]]


def _spec(method: str) -> MethodSpec:
    from semclust.methods.registry import get_spec

    return get_spec(method)


def model_inputs(method: str, info: dict[str, Any]) -> dict[str, str]:
    """Which view feeds each ``predict`` argument, from a :class:`MethodResult`'s ``info``
    (the method's :attr:`MethodSpec.predict_inputs`): k-means and SCAN read the view they
    were fitted on, TAC the joint view plus its image view, asd the pixels, the rest the
    joint view."""
    return _spec(method).predict_inputs(info)


def _check_inputs(method: str, inputs: Any, where: str) -> dict[str, str]:
    spec = _spec(method)
    allowed = spec.predict_args
    first = allowed[0]
    # a model reads either the images themselves (asd) or feature views, never a mix
    kinds = (PIXELS,) if spec.reads_pixels else VIEWS
    if not isinstance(inputs, dict) or first not in inputs:
        raise ValueError(f"{where}: inputs must map predict arguments to views and include {first!r}, got {inputs!r}")
    for arg, view in inputs.items():
        if arg not in allowed:
            raise ValueError(f"{where}: {method} predict has no argument {arg!r} (has {', '.join(allowed)})")
        if view not in kinds:
            raise ValueError(f"{where}: unknown view {view!r} for {arg!r}; expected one of {', '.join(kinds)}")
    return {str(k): str(v) for k, v in inputs.items()}


def _semclust_version() -> str:
    from semclust import __version__

    return __version__


def _check_names(names: Any, n_clusters: int, where: str) -> list[list[str]] | None:
    if names is None:
        return None
    if (
        not isinstance(names, list)
        or len(names) != n_clusters
        or not all(isinstance(row, list) and all(isinstance(n, str) for n in row) for row in names)
    ):
        raise ValueError(f"{where}: cluster_names must be {n_clusters} lists of names")
    return names


# --------------------------------------------------------------------------- save


def save_model(
    model_dir: str | os.PathLike[str],
    *,
    method: str,
    estimator: Any,
    inputs: dict[str, str],
    encoder_config: dict[str, Any],
    n_clusters: int,
    cluster_names: Sequence[Sequence[str]] | None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``model_dir/model.safetensors`` then ``model_dir/model.json`` (see the module doc).

    ``extra`` is kept in the manifest as is; ``extra["feature_dtype"]`` (``"float16"`` or
    ``"float32"``, the feature store's storage type) makes :meth:`LoadedModel.predict_images`
    round new embeddings the same way the training features were.
    """
    from safetensors.numpy import save as safetensors_save

    expected_class = _spec(method).estimator.__name__
    if type(estimator).__name__ != expected_class:
        raise ValueError(f"method {method} saves a {expected_class}, got {type(estimator).__name__}")
    inputs = _check_inputs(method, inputs, "save_model")
    names = None if cluster_names is None else [[str(n) for n in row] for row in cluster_names]
    names = _check_names(names, int(n_clusters), "save_model")

    from semclust.atomic import json_plain

    arrays, values = estimator.to_state()
    params: dict[str, Any] = {}
    array_params: list[str] = []
    for name, value in estimator.get_params().items():
        if isinstance(value, np.ndarray) or (name == "class_embeddings" and value is not None):
            arrays[f"param.{name}"] = np.ascontiguousarray(np.asarray(value))
            array_params.append(name)
        else:
            params[name] = json_plain(value)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "semclust_version": _semclust_version(),
        "method": method,
        "estimator": expected_class,
        "params": params,
        "array_params": array_params,
        "learned": values,
        "inputs": inputs,
        "encoder": encoder_config,
        "n_clusters": int(n_clusters),
        "cluster_names": names,
        "extra": json_plain(extra or {}),
        "tensors": {k: {"dtype": str(a.dtype), "shape": list(a.shape)} for k, a in sorted(arrays.items())},
    }
    try:
        json.dumps(manifest)
    except (TypeError, ValueError) as err:
        raise ValueError(f"save_model: {expected_class} state is not JSON-able: {err}") from None
    blob = safetensors_save(arrays, metadata={"format": FORMAT})
    manifest["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    path = Path(model_dir)
    path.mkdir(parents=True, exist_ok=True)
    atomic_write(path / WEIGHTS_FILE, lambda handle: handle.write(blob), "wb")
    write_json(path / MANIFEST_FILE, manifest)


def save_result(
    model_dir: str | os.PathLike[str],
    *,
    method: str,
    result: Any,
    encoder_config: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> None:
    """:func:`save_model` for a :class:`semclust.methods.registry.MethodResult`."""
    save_model(
        model_dir,
        method=method,
        estimator=result.estimator,
        inputs=model_inputs(method, result.info),
        encoder_config=encoder_config,
        n_clusters=result.n_clusters,
        cluster_names=result.cluster_names,
        extra=extra,
    )


# --------------------------------------------------------------------------- load


@dataclass
class LoadedModel:
    """A reloaded estimator plus what is needed to feed it: views, encoder, names."""

    estimator: Any
    method: str
    inputs: dict[str, str]
    encoder_config: dict[str, Any]
    n_clusters: int
    cluster_names: list[list[str]] | None
    path: Path
    extra: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)

    def cluster_name(self, k: int) -> str:
        """The first name of cluster ``k``, or ``""``."""
        if self.cluster_names is None or not self.cluster_names[k]:
            return ""
        return self.cluster_names[k][0]

    @property
    def reads_pixels(self) -> bool:
        """True when the model classifies the images themselves (asd), not their features."""
        return PIXELS in self.inputs.values()

    def predict_features(self, views: dict[str, np.ndarray]) -> np.ndarray:
        """int64[n] clusters of rows given per view name (``{"joint": ..., "visual": ...}``)."""
        if self.reads_pixels:
            raise ValueError(f"this {self.method} model classifies images, not features; use predict_images")
        missing = sorted({v for v in self.inputs.values() if v not in views})
        if missing:
            raise ValueError(f"this {self.method} model predicts from the {', '.join(missing)} view(s); none given")
        kwargs = {arg: np.asarray(views[view], dtype=np.float32) for arg, view in self.inputs.items()}
        return np.asarray(self.estimator.predict(**kwargs), dtype=np.int64)

    def predict_images(
        self,
        images: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | ImageSource,
        device: str = "cpu",
        progress: ProgressFactory | None = None,
        *,
        encoder: Any = None,
        batch_size: int | None = None,
    ) -> Prediction:
        """Embed images with the run's encoder and assign them: a :class:`Prediction` (paths,
        clusters, names, scores, skipped; it unpacks as ``(ids, labels, skipped)``).

        ``images``: a folder (ids relative to it, as in a run), image files and folders (ids as
        given / ``folder/relative``), or an :class:`ImageSource`. Files that do not decode are
        skipped and returned in ``skipped``. ``encoder`` overrides the one rebuilt from the
        saved config (which must then produce the same views). Models that read pixels (asd)
        use no encoder: see :meth:`_predict_pixels`.
        """
        source = images if isinstance(images, ImageSource) else image_source(images)
        if self.reads_pixels:
            return self._predict_pixels(source, device=device, progress=progress)
        if encoder is None:
            from semclust.encoders.registry import encoder_from_config

            try:
                encoder = encoder_from_config(self.encoder_config, device=device)
            except KeyError as err:
                raise ValueError(f"{self.path / MANIFEST_FILE}: encoder config lacks {err}") from None
        if batch_size:
            encoder.batch_size = batch_size
        needed = sorted(set(self.inputs.values()))
        advance = progress(f"embedding {count(len(source), 'image')}", len(source)) if progress else None
        chunks: dict[str, list[np.ndarray]] = {v: [] for v in needed}
        kept: list[str] = []
        skipped: list[SkippedItem] = []
        ids = source.ids
        step = max(1, int(getattr(encoder, "batch_size", 64) or 64))
        for lo in range(0, len(source), step):
            hi = min(len(source), lo + step)
            batch: list[Image.Image] = []
            for i in range(lo, hi):
                try:
                    batch.append(source.load(i))
                    kept.append(ids[i])
                except ImageDecodeError as err:
                    skipped.append(SkippedItem(err.item_id, err.reason))
            if batch:
                out = _embed(encoder, batch, needed)
                for view in needed:
                    if view not in out:
                        raise ValueError(f"the encoder gives no {view!r} view, which this model predicts from")
                    chunks[view].append(np.asarray(out[view], dtype=np.float32))
            if advance:
                advance(hi - lo)
        if not kept:
            return build_prediction(self, [], np.zeros(0, dtype=np.int64), skipped)
        dtype = self.extra.get("feature_dtype", "float32")
        views = {}
        for view in needed:
            array = np.concatenate(chunks[view])
            # the same rounding as the stored training features, so a training image keeps its cluster
            views[view] = array.astype(dtype).astype(np.float32) if dtype == "float16" else array
        inputs = {arg: views[view] for arg, view in self.inputs.items()}
        return build_prediction(self, kept, self.predict_features(views), skipped, inputs)

    def _predict_pixels(
        self, source: ImageSource, device: str = "cpu", progress: ProgressFactory | None = None
    ) -> Prediction:
        """Assign images by a model that classifies pixels (asd).

        The images are brought to the shape the run's images had when the estimator was fitted
        (``estimator.input_shape_``) the way the run read them (``data.pixels.source_images``):
        decoded, converted to grey (``L``) or RGB, bilinearly resized; rows of an array-backed
        source of that shape are taken as they are. The estimator's ``predict`` then prepares
        them exactly as ``fit`` did, so every training image gets its training cluster back.
        """
        from semclust.data.base import ArraySource
        from semclust.encoders.base import resolve_device

        estimator = self.estimator
        shape = tuple(int(v) for v in estimator.input_shape_)
        estimator.model_.to(resolve_device(device))
        ids = source.ids
        advance = progress(f"classifying {count(len(source), 'image')}", len(source)) if progress else None
        array = np.asarray(source.pixels) if isinstance(source, ArraySource) else None
        if array is not None and tuple(array.shape[1:]) == shape and array.dtype == np.uint8:
            chunks = [estimator.predict(array[lo : lo + _PIXEL_CHUNK]) for lo in range(0, len(array), _PIXEL_CHUNK)]
            if advance:
                advance(len(array))
            labels = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
            return build_prediction(self, list(ids), labels, [])
        kept: list[str] = []
        skipped: list[SkippedItem] = []
        parts: list[np.ndarray] = []
        for lo in range(0, len(source), _PIXEL_CHUNK):  # a multiple of predict's batch: same batches
            hi = min(len(source), lo + _PIXEL_CHUNK)
            batch: list[np.ndarray] = []
            for i in range(lo, hi):
                try:
                    batch.append(image_pixels(source.load(i), shape))
                    kept.append(ids[i])
                except ImageDecodeError as err:
                    skipped.append(SkippedItem(err.item_id, err.reason))
            if batch:
                parts.append(np.asarray(estimator.predict(np.stack(batch)), dtype=np.int64))
            if advance:
                advance(hi - lo)
        labels = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return build_prediction(self, kept, labels, skipped)


_PIXEL_CHUNK = 2048
def _embed(encoder: Any, images: list[Image.Image], needed: list[str]) -> dict[str, np.ndarray]:
    """The views ``needed``; the offline encoder's visual view alone skips its text bridge
    (whose 1000 class texts cost tens of seconds on a CPU the first time)."""
    if needed == ["visual"] and hasattr(encoder, "visual_and_logits"):
        from semclust.ops.features import l2_normalize

        features, _ = encoder.visual_and_logits(images)
        return {"visual": l2_normalize(np.asarray(features, dtype=np.float32))}
    return encoder.image_views(images)


def _fail(path: Path, message: str) -> ValueError:
    return ValueError(f"{path}: {message}")


def load_model(model_dir: str | os.PathLike[str]) -> LoadedModel:
    """Rebuild a saved model (safetensors + JSON only); ValueError naming the bad file."""
    from safetensors.numpy import load as safetensors_load

    root = Path(model_dir)
    manifest_path, weights_path = root / MANIFEST_FILE, root / WEIGHTS_FILE
    if not manifest_path.is_file():
        raise ValueError(f"{manifest_path}: no saved model here (missing {MANIFEST_FILE})")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _fail(manifest_path, f"not a readable model manifest ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _fail(manifest_path, f"not a semclust model manifest (format is not {FORMAT!r})")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise _fail(manifest_path, f"model format version {version!r}; this semclust reads {FORMAT_VERSION}")
    try:
        method = manifest["method"]
        spec = _spec(method)
        class_name = spec.estimator.__name__
        if manifest["estimator"] not in spec.estimator_names():
            raise ValueError(f"estimator {manifest['estimator']!r} does not match method {method}")
        params, learned, tensors = manifest["params"], manifest["learned"], manifest["tensors"]
        array_params = manifest.get("array_params", [])
        if not (isinstance(params, dict) and isinstance(learned, dict) and isinstance(tensors, dict)):
            raise ValueError("params, learned and tensors must be objects")
        inputs = manifest["inputs"]
        renamed = {"image_feats": "image_features", "images": "X"}  # argument names of older saved models
        if isinstance(inputs, dict):
            inputs = {renamed.get(k, k): v for k, v in inputs.items()}
        inputs = _check_inputs(method, inputs, "inputs")
        n_clusters = manifest["n_clusters"]
        if isinstance(n_clusters, bool) or not isinstance(n_clusters, int) or n_clusters < 1:
            raise ValueError(f"n_clusters must be a positive integer, got {n_clusters!r}")
        names = _check_names(manifest.get("cluster_names"), n_clusters, "cluster_names")
        encoder_config = manifest["encoder"]
        if not isinstance(encoder_config, dict):
            raise ValueError("encoder must be an object")
        digest = manifest["weights_sha256"]
    except KeyError as err:
        raise _fail(manifest_path, f"missing field {err}") from None
    except (ValueError, TypeError) as err:
        raise _fail(manifest_path, str(err)) from None

    if not weights_path.is_file():
        raise _fail(weights_path, "missing; the saved model is incomplete")
    blob = weights_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != digest:
        raise _fail(weights_path, f"contents do not match {MANIFEST_FILE} (checksum differs): truncated or changed")
    try:
        arrays = safetensors_load(blob)
    except Exception as err:  # noqa: BLE001 - any parse failure means a corrupt file
        raise _fail(weights_path, f"not a readable safetensors file ({err})") from None
    missing = sorted(set(tensors) - set(arrays))
    if missing:
        raise _fail(weights_path, f"missing tensor(s) {', '.join(missing)} listed in {MANIFEST_FILE}")
    unexpected = sorted(set(arrays) - set(tensors))
    if unexpected:
        raise _fail(weights_path, f"tensor(s) {', '.join(unexpected)} not listed in {MANIFEST_FILE}")
    for name, meta in tensors.items():
        shape, dtype = list(arrays[name].shape), str(arrays[name].dtype)
        if not isinstance(meta, dict) or meta.get("shape") != shape or meta.get("dtype") != dtype:
            raise _fail(weights_path, f"tensor {name} is {dtype}{shape}, but {MANIFEST_FILE} says {meta}")

    cls = spec.estimator
    try:
        for name in array_params:
            params[name] = arrays.pop(f"param.{name}")
        estimator = cls.from_state(params, arrays, learned)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise _fail(manifest_path, f"does not describe a valid {class_name} ({err})") from None
    return LoadedModel(
        estimator=estimator,
        method=method,
        inputs=inputs,
        encoder_config=encoder_config,
        n_clusters=n_clusters,
        cluster_names=names,
        path=root,
        extra=manifest.get("extra") or {},
        manifest=manifest,
    )


def load(run_dir: str | os.PathLike[str]) -> Any:
    """The model a run saved: ``RUN_DIR/model`` (or a model directory). A ``semclust cluster``
    run's is a :class:`LoadedModel`; a ``semclust ssl ...`` run's a classifier with the same
    ``predict_images``/``cluster_name`` (:class:`semclust.ssl.saved_model.SSLModel`)."""
    from semclust.ssl.saved_model import is_ssl_model

    path = Path(run_dir)
    model_dir = path if (path / MANIFEST_FILE).is_file() else path / MODEL_DIR
    if model_dir is not path:
        if not path.is_dir():
            raise ValueError(f"{path}: no such run directory")
        if not (model_dir / MANIFEST_FILE).is_file():
            raise ValueError(f"{path} has no saved model ({MODEL_DIR}/{MANIFEST_FILE}); {_rerun_advice(path)}")
    if is_ssl_model(model_dir):
        from semclust.ssl.saved_model import load_ssl_model

        return SSLRunModel(load_ssl_model(model_dir))
    return load_model(model_dir)


def _rerun_advice(path: Path) -> str:
    """How to get a model into ``path``: re-run the command its run.json names, with --force."""
    try:
        command = str(json.loads((path / "run.json").read_text(encoding="utf-8")).get("command") or "")
    except (OSError, ValueError, AttributeError):
        command = ""
    if command.startswith("ssl "):
        return f"re-run 'semclust {command} ... --out {path} --force' to save one"
    if command and command != "cluster":
        return f"it was written by 'semclust {command}', which saves no model; predict needs a cluster or ssl run"
    return f"re-run 'semclust cluster ... --out {path} --force' (or 'semclust ssl ...') to save one"
