from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never touch the user's feature cache; one cache is shared within a test session."""
    monkeypatch.setenv("SEMCLUST_CACHE", str(tmp_path_factory.getbasetemp() / "semclust-cache"))
