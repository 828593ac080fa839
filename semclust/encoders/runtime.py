"""Which engine runs a frozen tower's forward pass: ONNX Runtime or PyTorch.

ONNX Runtime's CPU provider runs EfficientNet-Lite0 about 7x faster than PyTorch eager on this
project's 2-core machines (benchmarks/results/speed.json) with features equal within 1e-5, so
``backend="auto"`` picks it on the CPU. PyTorch stays the reference (``backend="torch"``) and
runs CUDA devices, unless ONNX Runtime's CUDA provider is installed. A missing or failing
ONNX Runtime falls back to PyTorch with a warning instead of ending the run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

BACKENDS = ("auto", "torch", "onnx")

logger = logging.getLogger("semclust")


def single_threaded_blas() -> Any:
    """A context in which numpy's (and scipy's, faiss's) BLAS runs on one thread.

    For the small matrix products around a forward pass (the bridge to the text space, the
    normalising of features). OpenBLAS's threads keep spinning after each call, and on a machine
    whose every core runs ONNX Runtime's pool they take those cores from it: measured on 2 cores,
    the offline encoder's views ran at 0.74 of the bare session with the bridge's [64, 1280] x
    [1280, 384] product on 2 BLAS threads, 0.94 with one (benchmarks/speed.py).
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def default_threads() -> int:
    """All the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def check_threads(threads: int | None) -> int:
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or int(threads) != threads or int(threads) < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    return int(threads)


def _ort_providers(device: torch.device) -> list[str] | None:
    """ONNX Runtime's providers for ``device``, or None when it cannot run there."""
    try:
        import onnxruntime
    except ImportError:
        return None
    available = onnxruntime.get_available_providers()
    if device.type == "cuda":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"] if "CUDAExecutionProvider" in available else None
    return ["CPUExecutionProvider"]


def resolve_backend(backend: str, device: torch.device) -> str:
    """``"onnx"`` or ``"torch"`` for the asked ``backend`` on ``device`` (warns when it must fall back)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "torch":
        return "torch"
    if _ort_providers(device) is not None:
        return "onnx"
    if backend == "onnx":
        logger.warning("ONNX Runtime cannot run on %s here (not installed, or no such provider); using PyTorch", device)
    return "torch"


def ort_session(model: Path, threads: int, device: torch.device) -> Any:
    """An ``onnxruntime.InferenceSession`` on ``device`` with ``threads`` intra-op threads."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    # One graph, run op after op: a second pool would only compete for the same cores.
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # Idle pool threads sleep instead of spinning: the decode thread and the bridge need the same
    # cores between runs (spinning measured 10-25% slower end to end on 2 shared cores).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = _ort_providers(device) or ["CPUExecutionProvider"]
    return onnxruntime.InferenceSession(str(model), options, providers=providers)


def fall_back_warning(tower: str, error: BaseException) -> None:
    logger.warning("ONNX Runtime failed for the %s tower (%s); using PyTorch", tower, str(error).splitlines()[0][:200])
