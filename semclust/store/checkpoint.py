"""Training checkpoints, one system for every training loop: the clustering methods' epochs
(LAIC, TAC, SCAN, ASD's own state) and the semi-supervised trainer's steps
(:class:`semclust.ssl.trainer.Trainer`; its "epoch" is the step).

A training loop saves, after every epoch, everything its next epoch reads: module weights and
buffers, optimizer state, the RNG states (torch generators as their uint8 state tensors, the
global torch RNG, numpy bit generators as JSON) and its histories. A fit with ``resume=True``
restores them and continues with the next epoch, so it ends with exactly the result of an
uninterrupted fit with the same seed.

Layout of a checkpoint directory: ``tensors-<epoch>.safetensors`` (every tensor) and
``checkpoint.json`` (format, the fingerprint of the run, the epoch, the tensor file's name
and SHA-256, and every JSON value). Both are written atomically (temporary file + rename) and
the JSON last, so the JSON only ever names a complete tensor file; older tensor files are
removed afterwards. Loading reads safetensors and JSON only, never pickle.

The fingerprint (estimator class, parameters, a digest of the training inputs) is stored and
compared on resume: a checkpoint written for other data or settings is refused, not mixed in.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from semclust.atomic import atomic_write, json_plain, read_json, write_json

FORMAT = "semclust-epoch-checkpoint/1"
STATE_FILE = "checkpoint.json"
TENSOR_PREFIX = "tensors-"
TENSOR_SUFFIX = ".safetensors"
TORCH_GLOBAL_RNG = "rng.torch_global"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: damaged, or written for another run."""


def digest_arrays(*arrays: np.ndarray | None) -> str:
    """SHA-256 over the shapes, dtypes and bytes of ``arrays`` (None counts as a marker)."""
    h = hashlib.sha256()
    for array in arrays:
        if array is None:
            h.update(b"none;")
            continue
        a = np.ascontiguousarray(array)
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def fingerprint(estimator: Any, data_digest: str) -> dict[str, Any]:
    """What identifies a training run: the estimator's class and parameters, and its inputs."""
    params = {k: v for k, v in estimator.get_params().items() if k not in ("device", "torch_threads")}
    # round-trip through JSON so a fresh value compares equal to one read back from disk
    plain = json.loads(json.dumps(params, sort_keys=True, default=str))
    return {"estimator": type(estimator).__name__, "params": plain, "data": data_digest}


@dataclass
class TrainingState:
    """One epoch's worth of training state, as tensors and JSON values."""

    epoch: int
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    # -------------------------------------------------------------- capture

    def put_module(self, name: str, module: torch.nn.Module) -> None:
        for key, value in module.state_dict().items():
            self.tensors[f"{name}.{key}"] = _cpu(value)

    def put_optimizer(self, name: str, optimizer: torch.optim.Optimizer) -> None:
        state = optimizer.state_dict()
        extra: dict[str, dict[str, Any]] = {}
        for pid, pstate in state["state"].items():
            for key, value in pstate.items():
                if isinstance(value, torch.Tensor):
                    self.tensors[f"{name}.{pid}.{key}"] = _cpu(value)
                else:
                    extra.setdefault(str(pid), {})[key] = value
        self.values[name] = {"param_groups": state["param_groups"], "state": extra}

    def put_generator(self, name: str, generator: torch.Generator) -> None:
        self.tensors[name] = generator.get_state().clone()

    def put_numpy_rng(self, name: str, rng: np.random.Generator) -> None:
        self.values[name] = rng.bit_generator.state

    def put_torch_global_rng(self) -> None:
        self.tensors[TORCH_GLOBAL_RNG] = torch.get_rng_state().clone()

    # -------------------------------------------------------------- restore

    def load_module(self, name: str, module: torch.nn.Module) -> None:
        prefix = f"{name}."
        state = {k[len(prefix) :]: v for k, v in self.tensors.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise CheckpointError(f"checkpoint does not fit module {name}: {err}") from None

    def load_optimizer(self, name: str, optimizer: torch.optim.Optimizer) -> None:
        saved = self.values.get(name)
        if not isinstance(saved, dict):
            raise CheckpointError(f"checkpoint holds no optimizer state {name!r}")
        prefix = f"{name}."
        state: dict[int, dict[str, Any]] = {}
        for key, value in self.tensors.items():
            if key.startswith(prefix):
                pid, _, item = key[len(prefix) :].partition(".")
                state.setdefault(int(pid), {})[item] = value
        for pid, extra in saved["state"].items():
            state.setdefault(int(pid), {}).update(extra)
        fresh = optimizer.state_dict()["param_groups"]
        groups = saved["param_groups"]
        if len(groups) != len(fresh):
            raise CheckpointError(
                f"checkpoint optimizer {name} has {len(groups)} parameter groups, expected {len(fresh)}"
            )
        # JSON turned tuples (Adam's betas) into lists; give them back their type
        groups = [
            {k: tuple(v) if isinstance(now.get(k), tuple) else v for k, v in group.items()}
            for group, now in zip(groups, fresh)
        ]
        try:
            optimizer.load_state_dict({"state": state, "param_groups": groups})
        except (ValueError, KeyError) as err:
            raise CheckpointError(f"checkpoint does not fit optimizer {name}: {err}") from None

    def load_generator(self, name: str, generator: torch.Generator) -> None:
        generator.set_state(self._tensor(name))

    def load_numpy_rng(self, name: str, rng: np.random.Generator) -> None:
        if name not in self.values:
            raise CheckpointError(f"checkpoint holds no numpy RNG state {name!r}")
        rng.bit_generator.state = self.values[name]

    def load_torch_global_rng(self) -> None:
        torch.set_rng_state(self._tensor(TORCH_GLOBAL_RNG))

    def _tensor(self, name: str) -> torch.Tensor:
        if name not in self.tensors:
            raise CheckpointError(f"checkpoint holds no tensor {name!r}")
        return self.tensors[name]


class EpochCheckpoint:
    """The checkpoint directory of one training run, identified by ``fingerprint``."""

    def __init__(self, directory: str | os.PathLike[str], fingerprint: Mapping[str, Any]) -> None:
        self.directory = Path(directory)
        self.fingerprint = json.loads(json.dumps(dict(fingerprint), sort_keys=True, default=str))

    @property
    def state_path(self) -> Path:
        return self.directory / STATE_FILE

    def exists(self) -> bool:
        return self.state_path.is_file()

    def save(self, state: TrainingState) -> None:
        """Write ``state`` atomically: its tensor file first, then the JSON that names it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        blob = save_tensors({k: v.contiguous() for k, v in state.tensors.items()})
        tensor_name = f"{TENSOR_PREFIX}{int(state.epoch)}{TENSOR_SUFFIX}"
        atomic_write(self.directory / tensor_name, lambda handle: handle.write(blob), "wb")
        record = {
            "format": FORMAT,
            "fingerprint": self.fingerprint,
            "epoch": int(state.epoch),
            "tensors": tensor_name,
            "tensors_sha256": hashlib.sha256(blob).hexdigest(),
            "values": json_plain(state.values),
        }
        write_json(self.state_path, record)
        self._remove_stale(keep=tensor_name)

    def load(self) -> TrainingState | None:
        """The saved state, or None when there is no checkpoint yet.

        Raises :class:`CheckpointError` when the checkpoint is damaged or was written for
        another run (other data, estimator or parameters).
        """
        if not self.exists():
            return None
        try:
            record = read_json(self.state_path)
        except (OSError, json.JSONDecodeError) as err:
            raise CheckpointError(f"cannot read checkpoint {self.state_path}: {err}") from None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise CheckpointError(f"{self.state_path} is not a semclust training checkpoint")
        if record.get("fingerprint") != self.fingerprint:
            difference = _difference(record.get("fingerprint"), self.fingerprint)
            raise CheckpointError(
                f"checkpoint in {self.directory} was written for another run ({difference}); "
                "start over without resuming"
            )
        tensor_name = str(record.get("tensors", ""))
        if Path(tensor_name).name != tensor_name or not tensor_name.endswith(TENSOR_SUFFIX):
            raise CheckpointError(f"{self.state_path} names an invalid tensor file {tensor_name!r}")
        tensor_path = self.directory / tensor_name
        try:
            blob = tensor_path.read_bytes()
        except OSError as err:
            raise CheckpointError(f"cannot read checkpoint tensors {tensor_path}: {err}") from None
        if hashlib.sha256(blob).hexdigest() != record.get("tensors_sha256"):
            raise CheckpointError(f"checkpoint tensors {tensor_path} do not match their SHA-256 (damaged file)")
        try:
            tensors = load_tensors(blob)
        except Exception as err:  # noqa: BLE001 - any safetensors parse failure is a damaged file
            raise CheckpointError(f"cannot parse checkpoint tensors {tensor_path}: {err}") from None
        return TrainingState(epoch=int(record["epoch"]), tensors=dict(tensors), values=dict(record["values"]))

    def clear(self) -> None:
        """Remove this checkpoint's files (the directory too when nothing else is left in it)."""
        if not self.directory.is_dir():
            return
        self.state_path.unlink(missing_ok=True)
        self._remove_stale(keep=None)
        try:
            self.directory.rmdir()
        except OSError:
            pass  # something else lives there: leave it

    def _remove_stale(self, keep: str | None) -> None:
        for path in self.directory.glob(f"{TENSOR_PREFIX}*{TENSOR_SUFFIX}"):
            if path.name != keep:
                path.unlink(missing_ok=True)


def open_checkpoint(
    directory: str | os.PathLike[str] | None, estimator: Any, data_digest: str, *, resume: bool
) -> tuple[EpochCheckpoint | None, TrainingState | None]:
    """``(checkpoint, saved state)`` for a fit: no directory gives ``(None, None)``; without
    ``resume`` an old checkpoint there is removed so the fit starts over."""
    if directory is None:
        return None, None
    checkpoint = EpochCheckpoint(directory, fingerprint(estimator, data_digest))
    if not resume:
        checkpoint.clear()
        return checkpoint, None
    return checkpoint, checkpoint.load()


def _cpu(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to("cpu").contiguous().clone()


def _difference(saved: Any, now: dict[str, Any]) -> str:
    if not isinstance(saved, dict):
        return "no fingerprint"
    if saved.get("estimator") != now.get("estimator"):
        return f"estimator {saved.get('estimator')} vs {now.get('estimator')}"
    if saved.get("data") != now.get("data"):
        return "other training inputs"
    # an estimator's fingerprint nests its settings under "params"; the trainer's are top-level
    old, new = (saved.get("params") or {}, now["params"]) if "params" in now else (saved, now)
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} then, {new.get(k)!r} now" for k in keys) or "other settings"


def saved_position(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Where a run checkpointed in ``directory`` would resume, read from its ``checkpoint.json``
    (no tensors loaded, nothing validated): ``{"epoch": n}`` for a clustering method,
    ``{"step": n}`` for the semi-supervised trainer (its epoch is the step), or, for a run that
    keeps one trainer directory per stage (ASD: ``round<r>-<stage>/``), the stage written last
    as ``{"stage": name, "step": n}``. None when there is no readable checkpoint.
    """
    root = Path(directory)
    stages = sorted((p for p in root.glob(f"*/{STATE_FILE}") if p.is_file()), key=lambda p: p.stat().st_mtime_ns)
    if stages:
        record = _state_record(stages[-1])
        if record is not None:
            return {"stage": stages[-1].parent.name, "step": int(record["epoch"])}
    record = _state_record(root / STATE_FILE)
    if record is None:
        return None
    fingerprint = record.get("fingerprint")
    unit = "step" if isinstance(fingerprint, dict) and "trainer" in fingerprint else "epoch"
    return {unit: int(record["epoch"])}


def _state_record(path: Path) -> dict[str, Any] | None:
    try:
        record = read_json(path)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT or not isinstance(record.get("epoch"), int):
        return None
    return record
