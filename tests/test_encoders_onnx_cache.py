from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from semclust.encoders.onnx_cache import exported_model, file_sha256


class CountingExporter:
    """Writes a small fake model file and counts how often it was asked to."""

    def __init__(self, payload: bytes = b"fake onnx model") -> None:
        self.payload = payload
        self.calls = 0

    def __call__(self, path: Path) -> None:
        self.calls += 1
        path.write_bytes(self.payload)


IDENTITY = {"tower": "t", "image_size": 64, "versions": ("1", "2")}


def test_exports_once_then_reuses_the_checked_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    exporter = CountingExporter()
    first = exported_model("tower", IDENTITY, exporter, cache_dir=tmp_path)
    again = exported_model("tower", IDENTITY, exporter, cache_dir=tmp_path)
    assert first == again == tmp_path / "tower.onnx"
    assert exporter.calls == 1
    sidecar = json.loads((tmp_path / "tower.json").read_text())
    assert sidecar["sha256"] == file_sha256(first)
    assert sidecar["identity"] == {"tower": "t", "image_size": 64, "versions": ["1", "2"]}
    assert not any(r.levelno >= logging.WARNING for r in caplog.records)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda root: (root / "tower.onnx").write_bytes(b"truncated"), "corrupt"),
        (lambda root: (root / "tower.json").unlink(), "unfinished export"),
        (lambda root: (root / "tower.onnx").unlink(), "model file missing"),
        (lambda root: (root / "tower.json").write_text("{not json"), "unreadable sidecar"),
    ],
)
def test_a_damaged_export_is_rebuilt_with_a_one_line_notice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage, reason: str  # noqa: ANN001
) -> None:
    exporter = CountingExporter()
    path = exported_model("tower", IDENTITY, exporter, cache_dir=tmp_path)
    damage(tmp_path)
    with caplog.at_level(logging.INFO, logger="semclust"):
        rebuilt = exported_model("tower", IDENTITY, exporter, cache_dir=tmp_path)
    assert rebuilt == path and exporter.calls == 2
    assert rebuilt.read_bytes() == exporter.payload
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and reason in warnings[0] and "\n" not in warnings[0]


def test_an_export_for_other_versions_is_stale(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    exporter = CountingExporter()
    exported_model("tower", IDENTITY, exporter, cache_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="semclust"):
        exported_model("tower", {**IDENTITY, "image_size": 96}, exporter, cache_dir=tmp_path)
    assert exporter.calls == 2
    assert "stale" in caplog.records[-1].getMessage()
    assert json.loads((tmp_path / "tower.json").read_text())["identity"]["image_size"] == 96


def test_a_failed_export_leaves_nothing_that_looks_finished(tmp_path: Path) -> None:
    def failing(path: Path) -> None:
        path.write_bytes(b"half")
        raise RuntimeError("exporter crashed")

    with pytest.raises(RuntimeError, match="exporter crashed"):
        exported_model("tower", IDENTITY, failing, cache_dir=tmp_path)
    assert not (tmp_path / "tower.json").exists() and not (tmp_path / "tower.onnx").exists()
    assert list(tmp_path.glob("*.tmp")) == []
    exporter = CountingExporter()
    exported_model("tower", IDENTITY, exporter, cache_dir=tmp_path)
    assert exporter.calls == 1
