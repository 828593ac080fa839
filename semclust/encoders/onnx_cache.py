"""Towers exported to ONNX once, kept in the cache, and checked before every use.

An exported model is ``<cache>/onnx/<name>.onnx`` plus ``<name>.json`` describing it: the
identity it was exported for (tower, image size, library and weight versions) and the file's
SHA-256. The sidecar is written after the model, so a model without one was never finished.
A model whose sidecar is missing, whose identity differs (stale) or whose checksum fails
(corrupt) is exported again with a one-line notice; it is never loaded as it is.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

from semclust.atomic import as_stored_json, read_json, write_json
from semclust.cache import default_cache_dir

# Bump when the export itself changes (wrapper, opset), so older exports count as stale.
EXPORT_FORMAT = 1
OPSET = 17

logger = logging.getLogger("semclust")

Exporter = Callable[[Path], None]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _why_unusable(model: Path, sidecar: Path, identity: dict[str, Any]) -> str | None:
    """None when ``model`` is a finished export for ``identity`` with a matching checksum."""
    if not sidecar.is_file():
        return "not exported yet" if not model.exists() else "unfinished export (no sidecar)"
    try:
        meta = read_json(sidecar)
    except (OSError, ValueError):
        return "unreadable sidecar"
    if meta.get("format") != EXPORT_FORMAT or meta.get("identity") != identity:
        return "stale (exported for other versions or settings)"
    if not model.is_file():
        return "model file missing"
    if file_sha256(model) != meta.get("sha256"):
        return "corrupt (checksum mismatch)"
    return None


def exported_model(
    name: str, identity: dict[str, Any], export: Exporter, cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """The path of ``name``'s ONNX model for ``identity``, exporting it with ``export(path)`` when needed.

    ``identity`` must be JSON-able; it is compared in its stored (JSON) form.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "onnx"
    root.mkdir(parents=True, exist_ok=True)
    model, sidecar = root / f"{name}.onnx", root / f"{name}.json"
    identity = as_stored_json(identity)
    with FileLock(str(root / f".{name}.lock")):
        reason = _why_unusable(model, sidecar, identity)
        if reason is None:
            return model
        if reason == "not exported yet":
            logger.info("exporting %s to ONNX once (cached in %s)", name, root)
        else:
            logger.warning("rebuilding the ONNX model %s: %s", model, reason)
        sidecar.unlink(missing_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".onnx.tmp", dir=root)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            export(tmp)
            sha = file_sha256(tmp)
            os.replace(tmp, model)
        finally:
            tmp.unlink(missing_ok=True)
        write_json(sidecar, {"format": EXPORT_FORMAT, "identity": identity, "sha256": sha})
    return model
