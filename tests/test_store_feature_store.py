from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fakes import ColourEncoder, colour_images
from PIL import Image

from semclust.data.base import ArraySource, ImageDecodeError, ImageSource
from semclust.store.feature_store import FeatureStore, StoreError, StoreLockedError, build_store


class BrokenEvery(ImageSource):
    """Wraps a source and fails to decode the given positions."""

    def __init__(self, inner: ImageSource, broken: set[int]) -> None:
        self.inner, self.broken, self.name = inner, broken, "broken-wrapper"

    @property
    def ids(self) -> list[str]:
        return self.inner.ids

    @property
    def labels(self):
        return self.inner.labels

    def load(self, index: int) -> Image.Image:
        if index in self.broken:
            raise ImageDecodeError(self.ids[index], "truncated file")
        return self.inner.load(index)


def test_store_round_trip_matches_direct_encoding(tmp_path: Path) -> None:
    images, labels = colour_images(23)
    source = ArraySource(images, labels, class_names=["r", "g", "b"], name="colours")
    encoder = ColourEncoder()
    report = build_store(source, encoder, tmp_path / "s", shard_size=5, dtype="float32")
    assert (report.n_items, report.n_embedded, report.shards_written) == (23, 23, 5)
    store = FeatureStore(tmp_path / "s")
    direct = encoder.image_views([source.load(i) for i in range(23)])
    np.testing.assert_allclose(store.load("joint"), direct["joint"], rtol=1e-6)
    np.testing.assert_allclose(store.load("visual"), direct["visual"], rtol=1e-6)
    assert store.ids == source.ids
    np.testing.assert_array_equal(store.labels, labels)
    assert store.class_names == ["r", "g", "b"]
    assert store.complete and store.views == {"joint": 4, "visual": 48}


def test_float16_storage_is_close_and_half_the_size(tmp_path: Path) -> None:
    images, labels = colour_images(10)
    source = ArraySource(images, labels)
    build_store(source, ColourEncoder(), tmp_path / "s16", dtype="float16")
    build_store(source, ColourEncoder(), tmp_path / "s32", dtype="float32")
    a16, a32 = FeatureStore(tmp_path / "s16").load(), FeatureStore(tmp_path / "s32").load()
    np.testing.assert_allclose(a16, a32, atol=1e-3)
    assert a16.dtype == np.float32  # callers always get float32
    size = lambda p: (p / "shards" / "00000.visual.npy").stat().st_size  # noqa: E731
    assert size(tmp_path / "s16") < 0.6 * size(tmp_path / "s32")


def test_broken_items_are_recorded_and_the_rest_embedded(tmp_path: Path) -> None:
    images, labels = colour_images(12)
    source = BrokenEvery(ArraySource(images, labels), {0, 7})
    report = build_store(source, ColourEncoder(), tmp_path / "s", shard_size=4)
    assert report.n_embedded == 10
    assert [(s.item_id, s.reason) for s in report.skipped] == [("0", "truncated file"), ("7", "truncated file")]
    store = FeatureStore(tmp_path / "s")
    assert len(store) == 10 and "0" not in store.ids and "7" not in store.ids
    np.testing.assert_array_equal(store.labels, np.delete(labels, [0, 7]))
    assert store.load().shape == (10, 4)


def test_rerun_reuses_every_shard(tmp_path: Path) -> None:
    images, labels = colour_images(9)
    source = ArraySource(images, labels)
    build_store(source, ColourEncoder(), tmp_path / "s", shard_size=4)
    second = build_store(source, ColourEncoder(), tmp_path / "s", shard_size=4)
    assert (second.shards_written, second.shards_reused) == (0, 3)


def test_other_encoder_settings_are_refused_then_forced(tmp_path: Path) -> None:
    images, labels = colour_images(6)
    build_store(ArraySource(images, labels, name="a"), ColourEncoder(), tmp_path / "s")
    with pytest.raises(StoreError, match="another source"):
        build_store(ArraySource(images, labels, name="b"), ColourEncoder(), tmp_path / "s")
    report = build_store(ArraySource(images, labels, name="b"), ColourEncoder(), tmp_path / "s", force=True)
    assert report.shards_written == 1
    assert json.loads((tmp_path / "s" / "manifest.json").read_text())["source"]["name"] == "b"


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    from filelock import FileLock

    images, labels = colour_images(4)
    (tmp_path / "s").mkdir()
    with FileLock(str(tmp_path / "s" / ".lock")):
        with pytest.raises(StoreLockedError, match="another process"):
            build_store(ArraySource(images, labels), ColourEncoder(), tmp_path / "s")


def test_not_a_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not a feature store"):
        FeatureStore(tmp_path)


KILLABLE_RUN = """
import sys
sys.path.insert(0, {tests!r})
from fakes import ColourEncoder, colour_images
from semclust.data.base import ArraySource
from semclust.store.feature_store import build_store
images, labels = colour_images(40)
build_store(ArraySource(images, labels), ColourEncoder(batch_size=2, delay_s={delay}), {out!r}, shard_size=8)
"""


def test_killed_run_resumes_without_recomputing_finished_shards(tmp_path: Path) -> None:
    out = tmp_path / "store"
    script = KILLABLE_RUN.format(tests=str(Path(__file__).parent), delay=0.15, out=str(out))
    process = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "shards" / "00001.json").exists():
        time.sleep(0.05)
    process.kill()
    process.wait()
    finished = sorted(p.name for p in (out / "shards").glob("*.json"))
    assert "00000.json" in finished and "00004.json" not in finished
    mtimes = {name: (out / "shards" / name).stat().st_mtime_ns for name in finished}

    images, labels = colour_images(40)
    report = build_store(ArraySource(images, labels), ColourEncoder(batch_size=2), out, shard_size=8)
    assert report.shards_reused == len(finished)
    assert report.shards_written == 5 - len(finished)
    assert all((out / "shards" / name).stat().st_mtime_ns == t for name, t in mtimes.items())
    assert not list((out / "shards").glob(".*.tmp"))
    expected = ColourEncoder().image_views([Image.fromarray(im) for im in images])["joint"]
    np.testing.assert_allclose(FeatureStore(out).load(), expected, atol=1e-3)


def test_a_shard_of_the_wrong_shape_is_named(tmp_path: Path) -> None:
    images, labels = colour_images(8)
    build_store(ArraySource(images, labels), ColourEncoder(), tmp_path / "s", shard_size=4, dtype="float32")
    shard = tmp_path / "s" / "shards" / "00001.joint.npy"
    np.save(shard, np.zeros((4, 3), dtype=np.float32))  # one column short
    with pytest.raises(StoreError, match="00001.joint.npy: shape"):
        FeatureStore(tmp_path / "s").load("joint")
    shard.write_bytes(b"not a numpy file")
    with pytest.raises(StoreError, match="00001.joint.npy: unreadable shard"):
        FeatureStore(tmp_path / "s").load("joint")
