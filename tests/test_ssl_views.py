"""Cached augmented views: deterministic per seed (whatever the shard layout), resumable after a
kill, and embedded exactly like the augmentations they stand for."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import ColourEncoder, colour_images

from semclust.data.base import ArraySource
from semclust.ssl.views import AugmentedViewSource, augment_image, build_views, view_generator_seed


class CountingEncoder(ColourEncoder):
    def __init__(self) -> None:
        super().__init__(batch_size=4)
        self.embedded = 0

    def image_views(self, images):
        self.embedded += len(images)
        return super().image_views(images)


def _source(n: int = 10) -> ArraySource:
    images, labels = colour_images(n, seed=1)
    return ArraySource(images, labels, name="colours")


def test_views_are_deterministic_per_seed_and_independent_of_shards(tmp_path):
    source = _source()
    a = build_views(source, ColourEncoder(), tmp_path / "a", n_weak=2, n_strong=3, seed=7, shard_size=4)
    b = build_views(source, ColourEncoder(), tmp_path / "b", n_weak=2, n_strong=3, seed=7, shard_size=7)
    c = build_views(source, ColourEncoder(), tmp_path / "c", n_weak=2, n_strong=3, seed=8, shard_size=4)
    assert a.weak.shape == (2, 10, 48) and a.strong.shape == (3, 10, 48)
    np.testing.assert_array_equal(a.weak, b.weak)
    np.testing.assert_array_equal(a.strong, b.strong)
    assert not np.array_equal(a.strong, c.strong) and not np.array_equal(a.weak, c.weak)
    # row v of image i is the encoder's features of that image's v-th seeded augmentation
    encoder = ColourEncoder()
    for kind, bank in (("weak", a.weak), ("strong", a.strong)):
        for v, i in ((0, 0), (1, 9)):
            image = augment_image(source.load(i), kind, view_generator_seed(7, kind, v, i))
            expected = encoder.image_views([image])["visual"][0]
            np.testing.assert_allclose(bank[v, i], expected.astype(np.float16), atol=1e-3)
    # the views differ from each other and from the image itself
    assert not np.array_equal(a.strong[0], a.strong[1])
    plain = encoder.image_views([source.load(i) for i in range(10)])["visual"]
    assert np.abs(a.strong[0] - plain).max() > 1e-2


def test_a_killed_build_resumes_and_ends_like_an_uninterrupted_one(tmp_path):
    source = _source(12)
    reference = build_views(source, ColourEncoder(), tmp_path / "ref", n_weak=2, n_strong=2, seed=3, shard_size=5)

    def kill_after_first_shard(index: int) -> None:
        raise KeyboardInterrupt(f"killed after shard {index}")

    with pytest.raises(KeyboardInterrupt):
        build_views(source, ColourEncoder(), tmp_path / "run", n_weak=2, n_strong=2, seed=3, shard_size=5,
                    on_shard_done=kill_after_first_shard)  # fmt: skip
    encoder = CountingEncoder()
    resumed = build_views(source, encoder, tmp_path / "run", n_weak=2, n_strong=2, seed=3, shard_size=5)
    # the first weak view's first shard (5 of 48 views) was kept; everything else was embedded now
    assert encoder.embedded == 2 * 24 - 5
    np.testing.assert_array_equal(resumed.weak, reference.weak)
    np.testing.assert_array_equal(resumed.strong, reference.strong)
    again = CountingEncoder()
    build_views(source, again, tmp_path / "run", n_weak=2, n_strong=2, seed=3, shard_size=5)
    assert again.embedded == 0
    more = CountingEncoder()  # a third weak view later: only the new one is embedded
    three = build_views(source, more, tmp_path / "run", n_weak=3, n_strong=2, seed=3, shard_size=5)
    assert more.embedded == 12
    np.testing.assert_array_equal(three.weak[:2], reference.weak)


def test_view_source_names_its_views_and_refuses_bad_settings():
    source = _source(3)
    views = AugmentedViewSource(source, "strong", 1, seed=1)
    assert len(views) == 3 and views.ids[1] == "1#strong1"
    np.testing.assert_array_equal(views.labels, source.labels)
    assert views.describe()["pixels_sha256"] != AugmentedViewSource(_source(4), "strong", 1).describe()["pixels_sha256"]
    with pytest.raises(ValueError, match="view kind"):
        AugmentedViewSource(source, "medium", 0)
    with pytest.raises(ValueError, match="view must be"):
        AugmentedViewSource(source, "weak", -1)
