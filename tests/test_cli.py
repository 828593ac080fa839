"""The command line as a user drives it: real files in, run directories out, clean errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fakes import colour_images
from PIL import Image
from typer.testing import CliRunner

from semclust.cli.main import app

runner = CliRunner()

# The real offline encoder at a small size keeps these end-to-end tests quick.
SMALL = "offline:image_size=64"


# Naming with the 82k WordNet nouns costs minutes on first use; the tests name with a small list.
VOCABULARY = ["red apple", "green leaf", "blue sky", "cat", "car"]


def invoke(*args: str):
    if args[0] == "cluster" and "--vocabulary" not in args:
        args = (*args, "--vocabulary", str(VOCABULARY_FILE))
    return runner.invoke(app, list(args), catch_exceptions=False)


VOCABULARY_FILE = Path(__import__("tempfile").mkdtemp(prefix="semclust-vocab-")) / "nouns.txt"
VOCABULARY_FILE.write_text("\n".join(VOCABULARY) + "\n")


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three colour classes in sub-folders, plus broken files the run must survive."""
    root = tmp_path_factory.mktemp("photos")
    images, labels = colour_images(18, seed=3)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / ["red", "green", "blue"][label]
        folder.mkdir(exist_ok=True)
        Image.fromarray(image).resize((32, 32)).save(folder / f"img{i:02d}.png")
    (root / "red" / "empty.jpg").write_bytes(b"")
    (root / "green" / "notes.jpg").write_text("this is not an image")
    return root


def test_cluster_folder_with_broken_files(photo_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = invoke(
        "cluster", str(photo_folder), "--k", "3", "--encoder", SMALL, "--out", str(out), "--labels-from-folders"
    )
    assert result.exit_code == 0, result.output
    assert "skipped 2 unreadable file(s)" in result.output
    assert "red/empty.jpg" in result.output and "green/notes.jpg" in result.output
    rows = (out / "assignments.csv").read_text().splitlines()
    assert rows[0] == "id,cluster" and len(rows) == 19
    assert {r.split(",")[0] for r in rows[1:]} == {
        f"{c}/img{i:02d}.png" for i, c in enumerate(["red", "green", "blue"] * 6)
    }
    run = json.loads((out / "run.json").read_text())
    assert run["n_skipped"] == 2 and run["seed"] == 0 and run["method"] == "kmeans"
    assert {s["id"] for s in run["skipped"]} == {"red/empty.jpg", "green/notes.jpg"}
    assert set(run["timings_s"]) >= {"features", "fit"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 18 and metrics["k"] == 3
    clusters = json.loads((out / "clusters.json").read_text())
    assert sum(c["size"] for c in clusters) == 18 and [c["id"] for c in clusters] == [0, 1, 2]
    # every cluster is named with distinct nouns from the vocabulary given
    assert all(len(c["names"]) == 5 and set(c["names"]) == set(VOCABULARY) for c in clusters)


def test_zeroshot_with_given_class_names(photo_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "zs"
    result = invoke(
        "cluster",
        str(photo_folder),
        "--method",
        "zeroshot",
        "--class-names",
        "cat, car",
        "--encoder",
        SMALL,
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    clusters = json.loads((out / "clusters.json").read_text())
    assert [c["names"] for c in clusters] == [["cat"], ["car"]]
    assert not (out / "metrics.json").exists()  # no labels without --labels-from-folders


def test_existing_output_needs_force(photo_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert invoke("cluster", str(photo_folder), "--k", "2", "--encoder", SMALL, "--out", str(out)).exit_code == 0
    again = invoke("cluster", str(photo_folder), "--k", "2", "--encoder", SMALL, "--out", str(out))
    assert again.exit_code == 2 and "--force" in again.output
    forced = invoke("cluster", str(photo_folder), "--k", "3", "--encoder", SMALL, "--out", str(out), "--force")
    assert forced.exit_code == 0
    assert json.loads((out / "run.json").read_text())["n_clusters"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--k", "1"], "--k must be 'auto' or an integer of at least 2"),
        (["--k", "3", "--method", "nosuch"], "unknown method 'nosuch'"),
        (["--k", "50"], "n_clusters=50"),
        (["--method", "zeroshot"], "class names"),
        (["--k", "3", "--encoder", "nosuch"], "unknown encoder 'nosuch'"),
    ],
)
def test_bad_parameters_are_one_line_errors(photo_folder: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = invoke("cluster", str(photo_folder), "--out", str(tmp_path / "x"), *(["--encoder", SMALL] + args))
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_unknown_source_is_a_one_line_error(tmp_path: Path) -> None:
    result = invoke("cluster", "dataset:nosuch", "--k", "3", "--out", str(tmp_path / "x"))
    assert result.exit_code == 2 and "nosuch" in result.output
    missing = invoke("cluster", str(tmp_path / "does-not-exist"), "--k", "3", "--out", str(tmp_path / "y"))
    assert missing.exit_code == 2 and "does-not-exist" in missing.output


def test_embed_then_cluster_the_store_and_reuse_the_cache(photo_folder: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = invoke("embed", str(photo_folder), "--encoder", SMALL, "--out", str(store), "--shard-size", "8")
    assert first.exit_code == 0 and "3 shards written, 0 reused" in first.output
    second = invoke("embed", str(photo_folder), "--encoder", SMALL, "--out", str(store), "--shard-size", "8")
    assert "0 shards written, 3 reused" in second.output
    result = invoke("cluster", str(store), "--k", "3", "--out", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["features"] == {"store": str(store), "reused": True}


def test_second_cluster_run_reuses_cached_features(photo_folder: Path, tmp_path: Path) -> None:
    invoke("cluster", str(photo_folder), "--k", "3", "--encoder", SMALL, "--out", str(tmp_path / "a"))
    invoke("cluster", str(photo_folder), "--k", "3", "--encoder", SMALL, "--out", str(tmp_path / "b"))
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["features"]["shards_written"] == 0 and run["features"]["shards_reused"] >= 1


def test_same_seed_same_assignments(photo_folder: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        invoke(
            "cluster", str(photo_folder), "--k", "3", "--seed", "7", "--encoder", SMALL, "--out", str(tmp_path / name)
        )
    assert (tmp_path / "a" / "assignments.csv").read_text() == (tmp_path / "b" / "assignments.csv").read_text()


def test_datasets_lists_fashion_mnist() -> None:
    result = invoke("datasets")
    assert result.exit_code == 0
    line = next(line for line in result.output.splitlines() if "fashion-mnist" in line)
    assert "available" in line and "missing" not in line


def test_console_script_runs() -> None:
    script = Path(sys.executable).parent / "semclust"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "cluster" in result.stdout


def test_python_api_matches_cli(photo_folder: Path, tmp_path: Path) -> None:
    import semclust

    run = semclust.cluster(
        str(photo_folder),
        method="kmeans",
        n_clusters=3,
        random_state=7,
        encoder=SMALL,
        labels_from_folders=True,
        vocabulary=str(VOCABULARY_FILE),
    )
    invoke("cluster", str(photo_folder), "--k", "3", "--seed", "7", "--encoder", SMALL, "--out", str(tmp_path / "c"))
    cli_labels = [int(r.split(",")[1]) for r in (tmp_path / "c" / "assignments.csv").read_text().splitlines()[1:]]
    np.testing.assert_array_equal(run.result.labels, cli_labels)
    assert run.metrics["acc"] == 1.0  # three pure colours are trivially separable


@pytest.mark.parametrize("method", ["tac-notrain", "tac", "laic-notrain", "laic", "scan"])
def test_language_methods_run_end_to_end(photo_folder: Path, tmp_path: Path, method: str) -> None:
    """Real offline encoder, real MiniLM prompt learning for laic; tiny data so it is quick."""
    params = {"tac": ["epochs=2", "n_neighbours=5"], "laic": ["epochs=2", "n_neighbours=5"], "scan": ["epochs=5"]}
    extra = [arg for p in params.get(method, []) for arg in ("--param", p)]
    out = tmp_path / method
    result = invoke(
        "cluster",
        str(photo_folder),
        "--k",
        "3",
        "--method",
        method,
        "--encoder",
        SMALL,
        "--out",
        str(out),
        "--labels-from-folders",
        *extra,
    )
    assert result.exit_code == 0, result.output
    clusters = json.loads((out / "clusters.json").read_text())
    assert sum(c["size"] for c in clusters) == 18
    assert all(c["names"] and set(c["names"]) <= set(VOCABULARY) for c in clusters if c["size"])
    run = json.loads((out / "run.json").read_text())
    assert run["method"] == method and run["n_items"] == 18


def test_bad_method_parameter_is_a_one_line_error(photo_folder: Path, tmp_path: Path) -> None:
    result = invoke(
        "cluster",
        str(photo_folder),
        "--k",
        "3",
        "--method",
        "laic",
        "--param",
        "epochs",
        "--encoder",
        SMALL,
        "--out",
        str(tmp_path / "x"),
    )
    assert result.exit_code == 2 and "KEY=VALUE" in result.output


def test_k_auto_finds_the_three_colour_groups(photo_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "auto"
    result = invoke("cluster", str(photo_folder), "--k", "auto", "--encoder", SMALL, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "chose K=3" in result.output
    run = json.loads((out / "run.json").read_text())
    assert run["n_clusters"] == 3 and run["k_auto"]["k"] == 3
    assert len(json.loads((out / "clusters.json").read_text())) == 3
