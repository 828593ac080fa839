"""``semclust predict``: a run's saved model assigns new photos as the run assigned old ones."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from fakes import colour_images
from PIL import Image
from typer.testing import CliRunner

from semclust.cli.main import app
from semclust.cli.predict_cmd import register

register(app)  # no-op once semclust.cli.main registers it itself

runner = CliRunner()
SMALL = "offline:image_size=64"
COLOURS = ("red", "green", "blue")


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def _write_images(folder: Path, n: int, seed: int) -> dict[str, str]:
    """n colour images named by colour; returns file name -> colour."""
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = colour_images(n, seed=seed)
    names = {}
    for i, (image, label) in enumerate(zip(images, labels)):
        name = f"{COLOURS[label]}{i:02d}.png"
        Image.fromarray(image).resize((32, 32)).save(folder / name)
        names[name] = COLOURS[label]
    return names


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("predict")
    train = root / "train"
    colours = _write_images(train, 18, seed=3)
    vocabulary = root / "nouns.txt"
    vocabulary.write_text("red apple\ngreen leaf\nblue sky\ncat\n")
    run = root / "run"
    result = invoke(
        "cluster", str(train), "--k", "3", "--encoder", SMALL, "--vocabulary", str(vocabulary), "--out", str(run)
    )
    assert result.exit_code == 0, result.output
    assert (run / "model" / "model.json").is_file() and (run / "model" / "model.safetensors").is_file()
    cluster_of = {}
    for row in _rows(run / "assignments.csv"):
        cluster_of.setdefault(colours[row["id"]], set()).add(row["cluster"])
    assert all(len(c) == 1 for c in cluster_of.values()) and len(cluster_of) == 3, cluster_of
    return run, {colour: clusters.pop() for colour, clusters in cluster_of.items()}


def test_predict_new_images_and_a_broken_file(trained, tmp_path: Path) -> None:
    run, cluster_of = trained
    new = tmp_path / "new"
    colours = _write_images(new, 6, seed=11)
    (new / "broken.png").write_text("this is not an image")
    out = tmp_path / "pred"
    result = invoke("predict", str(run), str(new), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable file(s)" in result.output and "broken.png" in result.output
    rows = _rows(out / "assignments.csv")
    assert [r["id"] for r in rows] == sorted(colours)
    assert all(r["cluster"] == cluster_of[colours[r["id"]]] for r in rows), (rows, cluster_of)
    names = {c["id"]: c["names"] for c in json.loads((run / "clusters.json").read_text())}
    assert all(r["name"] == (names[int(r["cluster"])] or [""])[0] for r in rows)
    record = json.loads((out / "predict.json").read_text())
    assert record["n_items"] == 6 and [s["id"] for s in record["skipped"]] == ["broken.png"]
    # explicit files; the output exists, so --force is needed
    files = [str(new / name) for name in sorted(colours)[:2]]
    assert invoke("predict", str(run), *files, "--out", str(out)).exit_code == 2
    result = invoke("predict", str(run), *files, "--out", str(out), "--force")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in _rows(out / "assignments.csv")] == files


def test_tampered_model_is_a_user_error(trained, tmp_path: Path) -> None:
    run, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    weights = copy / "model" / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-4:] = b"\x00\x01\x02\x03"
    weights.write_bytes(bytes(blob))
    image = tmp_path / "one.png"
    Image.new("RGB", (32, 32), (200, 0, 0)).save(image)
    result = invoke("predict", str(copy), str(image), "--out", str(tmp_path / "pred"))
    assert result.exit_code == 2
    assert "model.safetensors" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "pred" / "assignments.csv").exists()
    result = invoke("predict", str(tmp_path), str(image), "--out", str(tmp_path / "pred"))
    assert result.exit_code == 2 and "no saved model" in result.output
