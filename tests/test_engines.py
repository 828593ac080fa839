"""Embedding engines without Ray: the registry, and build_store's contract with any engine."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from fakes import ColourEncoder, colour_images
from typer.testing import CliRunner

from semclust.cli.main import app
from semclust.data.base import ArraySource, ImageSource
from semclust.encoders.base import Encoder
from semclust.engines import ENGINES, ShardEmbedding, ShardPlan, embed_shards_local, get_engine
from semclust.store.feature_store import FeatureStore, StoreError, build_store


def test_registry_names_both_engines() -> None:
    assert ENGINES == ("local", "ray")
    assert get_engine("local") is embed_shards_local
    with pytest.raises(ValueError, match="unknown engine 'spark'"):
        get_engine("spark")
    with pytest.raises(ValueError, match="takes no options"):
        get_engine("local", address="auto")


def test_a_custom_engine_writes_the_same_store(tmp_path: Path) -> None:
    """Shards handed back out of order and in pieces still make the local engine's store."""
    images, labels = colour_images(21)
    source = ArraySource(images, labels, name="c")

    def reversed_engine(
        source: ImageSource, encoder: Encoder, shards: Sequence[ShardPlan], on_progress=None
    ) -> Iterator[ShardEmbedding]:
        yield from reversed(list(embed_shards_local(source, encoder, shards, on_progress)))

    build_store(source, ColourEncoder(), tmp_path / "a", shard_size=5, dtype="float32")
    report = build_store(
        source, ColourEncoder(), tmp_path / "b", shard_size=5, dtype="float32", embedder=reversed_engine
    )
    assert report.shards_written == 5
    a, b = FeatureStore(tmp_path / "a"), FeatureStore(tmp_path / "b")
    assert a.manifest == b.manifest and a.ids == b.ids
    np.testing.assert_array_equal(a.load("visual"), b.load("visual"))


def test_an_engine_that_drops_a_shard_leaves_the_store_incomplete(tmp_path: Path) -> None:
    images, labels = colour_images(10)
    source = ArraySource(images, labels)

    def lossy(source, encoder, shards, on_progress=None) -> Iterator[ShardEmbedding]:
        yield from embed_shards_local(source, encoder, shards[:1], on_progress)

    with pytest.raises(StoreError, match=r"did not return shard\(s\) \[1\]"):
        build_store(source, ColourEncoder(), tmp_path / "s", shard_size=5, embedder=lossy)
    assert not FeatureStore(tmp_path / "s").complete
    resumed = build_store(source, ColourEncoder(), tmp_path / "s", shard_size=5)
    assert (resumed.shards_reused, resumed.shards_written) == (1, 1)


def test_ray_address_without_the_ray_engine_is_a_user_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["embed", "dataset:digits", "--ray-address", "auto", "--out", str(tmp_path / "s")], catch_exceptions=False
    )
    assert result.exit_code == 2 and "--ray-address needs --engine ray" in result.output


def test_the_ray_engine_without_ray_is_a_one_line_user_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(ValueError, match=r"pip install 'semclust\[distributed\]'"):
        get_engine("ray")
    result = CliRunner().invoke(
        app, ["embed", "dataset:digits", "--engine", "ray", "--out", str(tmp_path / "s")], catch_exceptions=False
    )
    assert result.exit_code == 2 and "semclust[distributed]" in result.output


def test_semclust_imports_without_ray() -> None:
    """Ray is installed here, but the library, CLI and engine registry must not need it to import."""
    code = (
        "import sys\n"
        "sys.modules['ray'] = None\n"  # any `import ray` now raises ImportError
        "import semclust, semclust.cli.main, semclust.engines, semclust.workflow\n"
        "from semclust.engines import get_engine\n"
        "assert get_engine('local') is not None\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
