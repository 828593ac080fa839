"""The same command with the same seed gives byte-identical assignments, for every method (CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes import colour_images
from PIL import Image
from test_reliability_bad_input import reuse_loaded_models  # noqa: F401 - autouse fixture
from typer.testing import CliRunner

from semclust.cli.main import app
from semclust.methods.registry import METHODS

runner = CliRunner()
SMALL = "offline:image_size=32"

# Tiny training budgets: determinism does not need converged models.
METHOD_ARGS = {
    "kmeans": [],
    "zeroshot": ["--class-names", "red thing,green thing,blue thing"],
    "tac-notrain": [],
    "tac": ["--param", "epochs=2", "--param", "n_neighbours=5"],
    "laic-notrain": [],
    "laic": ["--param", "epochs=2", "--param", "n_neighbours=5"],
    "scan": ["--param", "epochs=3"],
}
# asd trains a network on the images themselves and has its own tests (tests/test_cli_asd.py).
SKIPPED_METHODS = {"asd"}


def test_every_method_is_covered() -> None:
    assert set(METHOD_ARGS) | SKIPPED_METHODS == set(METHODS)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One feature store of 18 colour photos, embedded once and used as SOURCE by every run."""
    root = tmp_path_factory.mktemp("determinism")
    photos = root / "photos"
    photos.mkdir()
    images, _ = colour_images(18, seed=5)
    for i, image in enumerate(images):
        Image.fromarray(image).resize((32, 32)).save(photos / f"{i:02d}.png")
    (root / "nouns.txt").write_text("red apple\ngreen leaf\nblue sky\ncat\ncar\n")
    result = runner.invoke(app, ["embed", str(photos), "--encoder", SMALL, "--out", str(root / "store")])
    assert result.exit_code == 0, result.output
    return root / "store"


@pytest.mark.parametrize("method", sorted(METHOD_ARGS))
def test_same_seed_gives_identical_assignments(store: Path, tmp_path: Path, method: str) -> None:
    k = [] if method == "zeroshot" else ["--k", "3"]
    vocabulary = ["--vocabulary", str(store.parent / "nouns.txt")]
    outputs = []
    for name in ("first", "second"):
        out = tmp_path / name
        args = ["cluster", str(store), "--method", method, "--seed", "11", "--out", str(out), *k, *vocabulary]
        result = runner.invoke(app, [*args, *METHOD_ARGS[method]], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        outputs.append(((out / "assignments.csv").read_bytes(), (out / "clusters.json").read_bytes()))
    (first_csv, first_clusters), (second_csv, second_clusters) = outputs
    assert first_csv.count(b"\n") == 19  # header + every image
    assert first_csv == second_csv
    assert first_clusters == second_clusters  # names included
