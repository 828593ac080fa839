from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from fakes import ColourEncoder

from semclust.encoders.text_cache import embed_texts_cached, embed_with_templates, text_cache_key


class CountingEncoder(ColourEncoder):
    def __init__(self, versions: str = "1") -> None:
        super().__init__()
        self.calls = 0
        self.texts: list[str] = []
        self.versions = versions

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.texts.extend(texts)
        return super().encode_texts(texts) * 3.0  # not unit-norm: the cache must normalise

    def config(self) -> dict:
        return {**super().config(), "versions": {"torch": self.versions}}


TEMPLATES = ("a {}.", "the {} here.")


def reference(texts: list[str]) -> np.ndarray:
    enc = ColourEncoder()
    rows = []
    for text in texts:
        vecs = enc.encode_texts([t.format(text) for t in TEMPLATES]).astype(np.float64)
        mean = vecs.mean(axis=0)
        rows.append(mean / np.linalg.norm(mean))
    return np.array(rows)


def test_template_mean_matches_a_loop() -> None:
    texts = ["cat", "dog", "cat", "fish", "bird"]
    enc = CountingEncoder()
    out = embed_with_templates(enc, texts, TEMPLATES, chunk_size=2)
    assert out.dtype == np.float32 and out.shape == (5, 4)
    np.testing.assert_allclose(out, reference(texts), atol=1e-6)
    assert sorted(enc.texts) == sorted(t.format(x) for t in TEMPLATES for x in ["cat", "dog", "fish", "bird"])
    assert enc.calls == 2 * 2  # two chunks of unique texts x two templates


def test_second_call_reads_the_cache(tmp_path: Path) -> None:
    texts = ["cat", "dog", "fish"]
    first = CountingEncoder()
    a = embed_texts_cached(first, texts, TEMPLATES, tmp_path, chunk_size=2)
    assert first.calls > 0
    assert len(list(tmp_path.glob("*.npy"))) == 1 and len(list(tmp_path.glob("*.json"))) == 1

    # A library version bump is not a reason to recompute.
    second = CountingEncoder(versions="2")
    b = embed_texts_cached(second, texts, TEMPLATES, tmp_path)
    assert second.calls == 0
    np.testing.assert_array_equal(a, b)

    third = CountingEncoder()
    embed_texts_cached(third, texts, ("{}",), tmp_path)
    embed_texts_cached(third, texts[:2], TEMPLATES, tmp_path)
    assert third.calls == 1 + 2 and len(list(tmp_path.glob("*.npy"))) == 3


def test_incomplete_entry_is_recomputed(tmp_path: Path) -> None:
    enc = CountingEncoder()
    embed_texts_cached(enc, ["cat"], TEMPLATES, tmp_path)
    for sidecar in tmp_path.glob("*.json"):
        sidecar.unlink()
    again = CountingEncoder()
    embed_texts_cached(again, ["cat"], TEMPLATES, tmp_path)
    assert again.calls == 2


def test_cache_key_ignores_versions_only() -> None:
    base = {"name": "x", "dim": 4}
    key = text_cache_key({**base, "versions": {"torch": "1"}}, TEMPLATES, ["a"])
    assert key == text_cache_key({**base, "versions": {"torch": "2"}}, TEMPLATES, ["a"])
    assert key != text_cache_key({**base, "dim": 5}, TEMPLATES, ["a"])
    assert key != text_cache_key(base, TEMPLATES, ["b"])
