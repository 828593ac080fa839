"""`semclust datasets`: availability of every built-in dataset and how to get a missing one."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from semclust.cli.main import app
from semclust.data.registry import list_datasets

runner = CliRunner()


def test_missing_datasets_say_how_to_get_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEMCLUST_DATA_ROOT", str(tmp_path))  # an empty data root: cifar & co. are missing
    result = runner.invoke(app, ["datasets"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    entries = {e["name"]: e for e in list_datasets()}
    assert not entries["cifar10"]["available"] and not entries["svhn"]["available"]
    for name, entry in entries.items():
        at = next(i for i, line in enumerate(lines) if line.startswith(f"dataset:{name} "))
        following = lines[at + 1] if at + 1 < len(lines) else ""
        if entry["available"]:
            assert " available " in lines[at] and "to get it:" not in following
        else:
            assert " missing " in lines[at], lines[at]
            assert following.strip().startswith("to get it: ") and entry["how_to_get"] in following
    hint = entries["cifar10"]["how_to_get"]
    assert "cifar-10-binary.tar.gz" in hint and "--data-root" in hint and "SEMCLUST_DATA_ROOT" in hint
    assert "apt-get install" in entries["emoji"]["how_to_get"]
    assert "dataset-fashion-mnist" in entries["fashion-mnist"]["how_to_get"]
    assert all(e["how_to_get"] for e in entries.values())
