"""The Ray Data engine: decode images in parallel Ray tasks, encode them in an actor pool.

Install with ``pip install 'semclust[distributed]'`` (``make install`` includes it). Every actor
builds the encoder once, from the store's encoder config (``semclust.encoders.registry``), on a
GPU when the cluster has GPUs and ``device`` allows it; a CPU actor runs the driver encoder's
backend (the ONNX Runtime session where it is installed) with one thread per actor CPU.
The driver collects the embeddings, puts them back in position order and hands them to
:func:`semclust.store.feature_store.build_store` shard by shard, so the manifest and shards
are the local engine's, finished shards are never recomputed, and a killed run resumes at
the first unfinished shard.

With GPU actors, decoding runs in separate one-CPU Ray tasks that feed the GPU actors
through the object store. With CPU actors Ray fuses the two steps (same resources), so each
actor decodes and encodes its own blocks, and decoding is as parallel as the pool.

Memory on the driver: Ray streams results in order (``preserve_order``), so the driver holds
about one shard of embeddings plus the batches in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from semclust.data.base import ImageDecodeError, ImageSource, SkippedItem
from semclust.encoders.base import Encoder
from semclust.store.shards import ProgressCallback, ShardEmbedding, ShardPlan

EncoderFactory = Callable[[], Encoder]

# Positions per input block: small enough that both read tasks and actors get work early.
DEFAULT_BLOCK_ITEMS = 256


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True


def _require_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ValueError(
            "the ray engine needs Ray Data: pip install 'semclust[distributed]' (or 'ray[data]')"
        ) from None
    return ray


class ConfigEncoderFactory:
    """Rebuilds a registry encoder (offline, clip, ...) from its config inside a worker.

    ``threads``: CPU threads for the actor's forward passes (its ONNX Runtime session, or torch);
    ``backend``: the offline encoder's runtime (``onnx``/``torch``), default the encoder's own choice.
    """

    def __init__(
        self,
        config: dict[str, Any],
        device: str,
        batch_size: int | None,
        threads: int | None = None,
        backend: str | None = None,
    ) -> None:
        self.config, self.device, self.batch_size = config, device, batch_size
        self.threads, self.backend = threads, backend

    def __call__(self) -> Encoder:
        from semclust.encoders.registry import get_encoder

        options = dict(self.config.get("options", {}))
        if self.backend is not None:
            options["backend"] = self.backend
        return get_encoder(
            self.config["spec"], device=self.device, batch_size=self.batch_size, threads=self.threads, **options
        )


class InstanceEncoderFactory:
    """Ships a (picklable) encoder object as it is, for encoders the registry cannot rebuild."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder

    def __call__(self) -> Encoder:
        return self.encoder


def default_encoder_factory(encoder: Encoder, device: str, threads: int | None = None) -> EncoderFactory:
    """Rebuild from config when the registry knows the encoder's spec, else ship the object.

    CPU actors run the backend the driver's encoder chose (ONNX Runtime where it is installed)
    with ``threads`` threads; GPU actors pick their own (PyTorch on CUDA unless ONNX Runtime
    has its CUDA provider)."""
    from semclust.encoders.registry import ENCODER_KINDS

    config = encoder.config()
    kind = str(config.get("spec", "")).partition(":")[0]
    if kind not in ENCODER_KINDS:
        return InstanceEncoderFactory(encoder)
    backend = config.get("runtime", {}).get("backend") if device == "cpu" else None
    return ConfigEncoderFactory(config, device, getattr(encoder, "batch_size", None), threads, backend)


def load_images(batch: dict[str, np.ndarray], source: ImageSource) -> dict[str, np.ndarray]:
    """Ray task body: decode a batch of positions into uint8 ``[H, W, 3]`` arrays.

    Items that fail to decode get an empty image and their reason in ``error``.
    """
    positions = np.asarray(batch["position"], dtype=np.int64)
    images = np.empty(len(positions), dtype=object)
    errors = np.empty(len(positions), dtype=object)
    item_ids = np.empty(len(positions), dtype=object)
    for i, position in enumerate(positions):
        try:
            images[i] = np.asarray(source.load(int(position)).convert("RGB"), dtype=np.uint8)
            errors[i], item_ids[i] = "", ""
        except ImageDecodeError as err:
            images[i] = np.zeros((1, 1, 3), dtype=np.uint8)
            errors[i], item_ids[i] = err.reason, err.item_id
    return {"position": positions, "image": images, "error": errors, "item_id": item_ids}


class EncodeImages:
    """Ray actor body: builds the encoder once, then encodes every batch it is given."""

    def __init__(self, factory: EncoderFactory, view_dims: dict[str, int], torch_threads: int | None = None) -> None:
        if torch_threads:
            import torch

            torch.set_num_threads(int(torch_threads))
        self.encoder = factory()
        self.view_dims = dict(view_dims)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from PIL import Image

        positions = np.asarray(batch["position"], dtype=np.int64)
        errors = [str(e) for e in batch["error"]]
        ok = [i for i, e in enumerate(errors) if not e]
        out: dict[str, np.ndarray] = {
            "position": positions,
            "error": np.asarray(errors, dtype=object),
            "item_id": np.asarray([str(x) for x in batch["item_id"]], dtype=object),
        }
        views: dict[str, np.ndarray] = {}
        if ok:
            images = [Image.fromarray(np.asarray(batch["image"][i], dtype=np.uint8), mode="RGB") for i in ok]
            views = self.encoder.image_views(images)
        for name, dim in self.view_dims.items():
            array = np.zeros((len(positions), dim), dtype=np.float32)
            if ok:
                array[ok] = np.asarray(views[name], dtype=np.float32)
            out[f"view_{name}"] = array
        return out


class RayEngine:
    """Embed shards with Ray Data; a :data:`semclust.store.feature_store.ShardEmbedder`.

    ``address``: a running cluster (``"auto"``, ``"ray://host:10001"``, ...); ``None`` uses the
    Ray instance this process already joined, or starts a local one (stopped afterwards).
    ``num_actors``: encoder actors (default: one per GPU when the encoder runs on GPUs, else
    one per CPU). ``device``: ``"cpu"``, ``"cuda"``
    or ``"auto"`` (GPU actors when the cluster has GPUs). ``batch_size``: images per encoder
    call (default the encoder's). ``actor_cpus``: CPUs per CPU actor (default 1; its torch
    threads); any value other than 1 also keeps decoding in separate tasks, as with GPU actors.
    ``encoder_factory`` overrides how actors build the encoder.
    ``init_options`` go to ``ray.init`` when this engine starts Ray.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        num_actors: int | None = None,
        device: str | None = "cpu",
        batch_size: int | None = None,
        encoder_factory: EncoderFactory | None = None,
        block_items: int = DEFAULT_BLOCK_ITEMS,
        actor_cpus: float | None = None,
        init_options: dict[str, Any] | None = None,
    ) -> None:
        _require_ray()  # a missing install is a one-line error before any work starts
        if num_actors is not None and num_actors < 1:
            raise ValueError(f"num_actors must be >= 1, got {num_actors}")
        if block_items < 1:
            raise ValueError(f"block_items must be >= 1, got {block_items}")
        self.address = address
        self.num_actors = num_actors
        self.device = device or "cpu"
        self.batch_size = batch_size
        self.encoder_factory = encoder_factory
        self.block_items = block_items
        if actor_cpus is not None and actor_cpus <= 0:
            raise ValueError(f"actor_cpus must be > 0, got {actor_cpus}")
        self.actor_cpus = actor_cpus
        self.init_options = dict(init_options or {})

    def _start(self, ray: Any) -> bool:
        """Join or start Ray; True when this call started it (and should stop it)."""
        if ray.is_initialized():
            return False
        options = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
        options.update(self.init_options)
        ray.init(address=self.address, **options)
        return True

    def _actor_plan(self, ray: Any) -> tuple[str, dict[str, float], int]:
        """(encoder device, per-actor resources, number of actors)."""
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))
        use_gpu = self.device.startswith("cuda") or (self.device == "auto" and gpus > 0)
        if use_gpu:
            if gpus == 0:
                raise ValueError(f"device {self.device!r} asked for GPU actors but the Ray cluster has no GPU")
            device = "cuda" if self.device == "auto" else self.device
            return device, {"num_gpus": 1}, self.num_actors or gpus
        per_actor = self.actor_cpus or 1.0
        return "cpu", {"num_cpus": per_actor}, self.num_actors or max(1, int(cpus // per_actor))

    def __call__(
        self,
        source: ImageSource,
        encoder: Encoder,
        shards: Sequence[ShardPlan],
        on_progress: ProgressCallback | None = None,
    ) -> Iterator[ShardEmbedding]:
        if not shards:
            return
        ray = _require_ray()
        started = self._start(ray)
        context = ray.data.DataContext.get_current()
        # Ordered results bound the driver's memory; semclust shows its own progress bar.
        settings = {"enable_progress_bars": False, "print_on_execution_start": False}
        saved = {key: getattr(context, key) for key in settings if hasattr(context, key)}
        saved_order = context.execution_options.preserve_order
        try:
            context.execution_options.preserve_order = True
            for key in saved:
                setattr(context, key, settings[key])
            yield from self._run(ray, source, encoder, shards, on_progress)
        finally:
            context.execution_options.preserve_order = saved_order
            for key, value in saved.items():
                setattr(context, key, value)
            if started:
                ray.shutdown()

    def _run(
        self,
        ray: Any,
        source: ImageSource,
        encoder: Encoder,
        shards: Sequence[ShardPlan],
        on_progress: ProgressCallback | None,
    ) -> Iterator[ShardEmbedding]:
        device, actor_resources, n_actors = self._actor_plan(ray)
        # A CPU actor's threads are its CPUs (one by default): N actors never oversubscribe N cores.
        threads = max(1, int(actor_resources["num_cpus"])) if "num_cpus" in actor_resources else None
        factory = self.encoder_factory or default_encoder_factory(encoder, device, threads)
        view_dims = dict(encoder.view_dims)
        batch_size = self.batch_size or int(getattr(encoder, "batch_size", 64) or 64)
        positions = np.concatenate([np.arange(s.start, s.stop, dtype=np.int64) for s in shards])
        blocks = [positions[i : i + self.block_items] for i in range(0, len(positions), self.block_items)]
        # One block per slice of positions, so decoding runs in as many tasks as there are slices.
        dataset = ray.data.from_numpy(blocks).rename_columns({"data": "position"})
        dataset = dataset.map_batches(load_images, fn_kwargs={"source": source}, batch_size=None, num_cpus=1)
        dataset = dataset.map_batches(
            EncodeImages,
            fn_constructor_kwargs={
                "factory": factory,
                "view_dims": view_dims,
                "torch_threads": threads,
            },
            batch_size=batch_size,
            compute=ray.data.ActorPoolStrategy(size=n_actors),
            **actor_resources,
        )

        starts = [s.start for s in shards]
        pending: dict[int, list[dict[str, np.ndarray]]] = {}
        received: dict[int, int] = {}
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            batch_positions = np.asarray(batch["position"], dtype=np.int64)
            which = np.searchsorted(starts, batch_positions, side="right") - 1
            for slot in np.unique(which):
                rows = which == slot
                shard = shards[int(slot)]
                pending.setdefault(shard.index, []).append(
                    {key: np.asarray(value)[rows] for key, value in batch.items()}
                )
                received[shard.index] = received.get(shard.index, 0) + int(rows.sum())
                if received[shard.index] == shard.stop - shard.start:
                    yield _assemble(shard, pending.pop(shard.index), view_dims)
            if on_progress:
                on_progress(len(batch_positions))
        missing = [s.index for s in shards if received.get(s.index, 0) != s.stop - s.start]
        if missing:
            raise RuntimeError(f"Ray returned incomplete shards {missing}")


def _assemble(shard: ShardPlan, parts: list[dict[str, np.ndarray]], view_dims: dict[str, int]) -> ShardEmbedding:
    """Concatenate a shard's rows, sort them by position, split kept from skipped."""
    merged = {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    order = np.argsort(merged["position"], kind="stable")
    positions = merged["position"][order]
    errors = [str(e) for e in merged["error"][order]]
    item_ids = [str(x) for x in merged["item_id"][order]]
    if len(positions) != shard.stop - shard.start or np.any(positions != np.arange(shard.start, shard.stop)):
        raise RuntimeError(f"shard {shard.index}: Ray returned positions that do not cover {shard.start}..{shard.stop}")
    kept = np.array([not e for e in errors], dtype=bool)
    skipped = [SkippedItem(item_ids[i], errors[i]) for i in np.flatnonzero(~kept)]
    views = {name: merged[f"view_{name}"][order][kept] for name in view_dims}
    return ShardEmbedding(shard.index, views, [int(p) for p in positions[kept]], skipped)


__all__ = [
    "ConfigEncoderFactory",
    "EncodeImages",
    "InstanceEncoderFactory",
    "RayEngine",
    "default_encoder_factory",
    "load_images",
    "ray_available",
]
