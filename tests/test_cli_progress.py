"""Progress that does not lie: the noun-vocabulary bar says "cached" on a cache hit, and its
counts say how many names there are and how many distinct ones it embeds."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from fakes import ColourEncoder, colour_images
from PIL import Image
from typer.testing import CliRunner

from semclust.cli.main import app
from semclust.encoders.text_cache import embed_texts_cached

SMALL = "offline:image_size=64"


def test_text_cache_reports_chunks_then_one_cached_step(tmp_path: Path) -> None:
    texts = ["cat", "dog", "cat", "fish", "bird", "dog"]  # 6 names, 4 distinct
    calls: list[tuple[int, str]] = []
    first = embed_texts_cached(
        ColourEncoder(), texts, ("a {}.",), tmp_path, chunk_size=3, progress=lambda n, i: calls.append((n, i))
    )
    assert calls == [(3, "(6 names, 4 distinct)"), (1, "(6 names, 4 distinct)")]
    calls.clear()
    again = embed_texts_cached(
        ColourEncoder(), texts, ("a {}.",), tmp_path, chunk_size=3, progress=lambda n, i: calls.append((n, i))
    )
    assert calls == [(4, "cached (6 names, 4 distinct)")]
    np.testing.assert_array_equal(first, again)


def _bar(output: str) -> str:
    lines = [line for line in output.splitlines() if "embedding noun vocabulary" in line]
    assert len(lines) == 1, output
    return lines[0]


def test_cluster_shows_the_vocabulary_bar_cached_on_the_second_run(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    images, _ = colour_images(9, seed=1)
    for i, image in enumerate(images):
        Image.fromarray(image).resize((32, 32)).save(photos / f"{i}.png")
    vocabulary = tmp_path / "nouns.txt"
    # names no other test embeds, so the first run here is a cache miss whatever ran before
    vocabulary.write_text("red apple\ngreen leaf\nblue sky\ncat\n" + f"car {tmp_path.name}\n")
    runner = CliRunner()
    args = ["cluster", str(photos), "--k", "3", "--encoder", SMALL, "--vocabulary", str(vocabulary)]
    first = runner.invoke(app, [*args, "--out", str(tmp_path / "a")], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    bar = _bar(first.output)
    assert "(5 names, 5 distinct)" in bar and "cached" not in bar and re.search(r"\b5/5\b", bar)
    second = runner.invoke(app, [*args, "--out", str(tmp_path / "b")], catch_exceptions=False)
    assert second.exit_code == 0, second.output
    bar = _bar(second.output)
    # finished at once, not 0/5 with a clock that runs until the end of the run
    assert "cached (5 names, 5 distinct)" in bar and re.search(r"\b5/5\b", bar) and "0/5" not in bar, bar
