"""The Ray Data engine on a local 2-CPU Ray: the same store as the local engine, resumable.

Ray is part of `make install` (the `test` extra), so these tests fail rather than skip without it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import ray
import ray.data  # noqa: F401
from fakes import BrokenArraySource, ColourEncoder, colour_images
from PIL import Image
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from semclust.cli.main import app
from semclust.engines.ray import RayEngine
from semclust.store.feature_store import FeatureStore, build_store

TESTS = Path(__file__).parent


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    # Workers import the tests' fakes (ColourEncoder, BrokenArraySource) by module name.
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1"}},
    )
    try:
        yield
    finally:
        ray.shutdown()
        torch.set_num_threads(threads)


def _store_files(root: Path) -> dict[str, object]:
    return {p.name: json.loads(p.read_text()) for p in sorted((root / "shards").glob("*.json"))}


def _same_store(a: Path, b: Path, atol: float) -> None:
    sa, sb = FeatureStore(a), FeatureStore(b)
    assert sa.manifest == sb.manifest
    assert _store_files(a) == _store_files(b)  # ids, labels, positions, skipped: identical
    for view in sa.views:
        np.testing.assert_allclose(sa.load(view), sb.load(view), atol=atol)


def test_ray_engine_equals_local_engine_with_broken_items(tmp_path: Path) -> None:
    images, labels = colour_images(37)
    source = BrokenArraySource(images, labels, broken={0, 9, 36})
    build_store(source, ColourEncoder(), tmp_path / "local", shard_size=8, dtype="float32")
    report = build_store(
        source, ColourEncoder(), tmp_path / "ray", shard_size=8, dtype="float32", embedder=RayEngine(block_items=5)
    )
    assert (report.n_embedded, report.shards_written, report.shards_reused) == (34, 5, 0)
    assert [s.item_id for s in report.skipped] == ["0", "9", "36"]
    _same_store(tmp_path / "local", tmp_path / "ray", atol=1e-6)


def test_ray_engine_resumes_without_recomputing_finished_shards(tmp_path: Path) -> None:
    images, labels = colour_images(30)
    source = BrokenArraySource(images, labels, broken={3, 17})
    build_store(source, ColourEncoder(), tmp_path / "local", shard_size=8, dtype="float32")
    out = tmp_path / "ray"
    build_store(source, ColourEncoder(), out, shard_size=8, dtype="float32")
    for path in (out / "shards").glob("00002.*"):  # as if killed while shard 2 was being written
        path.unlink()
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()}
    seen: list[int] = []
    report = build_store(
        source,
        ColourEncoder(),
        out,
        shard_size=8,
        dtype="float32",
        # actor_cpus != 1: decoding stays in its own tasks and images cross the object store,
        # the layout GPU actors get
        embedder=RayEngine(block_items=3, num_actors=2, actor_cpus=0.5),
        on_progress=seen.append,
    )
    assert (report.shards_written, report.shards_reused) == (1, 3)
    assert [(s.item_id, s.reason) for s in report.skipped] == [("3", "truncated file"), ("17", "truncated file")]
    assert sum(seen) == 30
    assert all((out / "shards" / name).stat().st_mtime_ns == t for name, t in mtimes.items())
    _same_store(tmp_path / "local", out, atol=1e-6)


def test_cli_embed_with_ray_matches_local_with_the_offline_encoder(tmp_path: Path) -> None:
    """The real path: actors rebuild the offline encoder from the store's config."""
    images, _ = colour_images(12, seed=5)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).resize((32, 32)).save(folder / f"img{i:02d}.png")
    (folder / "empty.jpg").write_bytes(b"")
    common = ["--encoder", "offline:image_size=64", "--shard-size", "5", "--dtype", "float32"]
    runner = CliRunner()
    # Ray runs each one-CPU actor with one BLAS thread, and the offline encoder's Procrustes
    # bridge (an SVD fitted when the encoder is built) depends on the BLAS thread count in two
    # joint-space columns; fit the local one with one thread too so the engines are comparable.
    with threadpool_limits(limits=1):
        local = runner.invoke(
            app, ["embed", str(folder), "--out", str(tmp_path / "a"), *common], catch_exceptions=False
        )
    assert local.exit_code == 0, local.output
    remote = runner.invoke(
        app,
        ["embed", str(folder), "--out", str(tmp_path / "b"), "--engine", "ray", "--ray-actors", "1", *common],
        catch_exceptions=False,
    )
    assert remote.exit_code == 0, remote.output
    assert "embedded 12/13 items" in remote.output and "3 shards written" in remote.output
    a, b = FeatureStore(tmp_path / "a"), FeatureStore(tmp_path / "b")
    assert a.ids == b.ids and [s.item_id for s in b.skipped] == ["empty.jpg"]
    for view in ("joint", "visual"):
        np.testing.assert_allclose(a.load(view), b.load(view), atol=1e-4)


def test_cpu_actors_run_the_drivers_backend_with_one_thread_each() -> None:
    """Two one-CPU actors on two cores: each ONNX Runtime session (or torch) gets one thread."""
    from semclust.encoders.offline import OfflineEncoder
    from semclust.engines.ray import ConfigEncoderFactory, default_encoder_factory

    driver = OfflineEncoder(backend="onnx", threads=2)
    factory = default_encoder_factory(driver, "cpu", threads=1)
    assert isinstance(factory, ConfigEncoderFactory)
    assert (factory.threads, factory.backend) == (1, driver.backend)
    actor_encoder = factory()
    assert (actor_encoder.threads, actor_encoder.backend) == (1, driver.backend)
    assert actor_encoder.config()["options"] == driver.config()["options"]
    # GPU actors choose their own runtime and threads.
    gpu = default_encoder_factory(driver, "cuda", threads=None)
    assert isinstance(gpu, ConfigEncoderFactory) and (gpu.threads, gpu.backend) == (None, None)
    torch_driver = OfflineEncoder(backend="torch")
    assert default_encoder_factory(torch_driver, "cpu", threads=1)().backend == "torch"
