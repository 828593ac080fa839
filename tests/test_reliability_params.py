"""Bad parameters and bad stores: one line naming the value, exit code 2, no traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_reliability_bad_input import reuse_loaded_models  # noqa: F401 - autouse fixture
from typer.testing import CliRunner

from semclust.cli.main import app

runner = CliRunner()
SMALL = "offline:image_size=32"
COLOURS = [(220, 20, 20), (200, 40, 30), (240, 10, 40), (20, 20, 220), (30, 40, 200), (10, 60, 240)]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six photos, a small vocabulary and a feature store of them (two shards)."""
    root = tmp_path_factory.mktemp("params")
    photos = root / "photos"
    photos.mkdir()
    for i, rgb in enumerate(COLOURS):
        Image.new("RGB", (24, 24), rgb).save(photos / f"{i}.png")
    (root / "nouns.txt").write_text("cat\ncar\nsky\n")
    result = runner.invoke(
        app, ["embed", str(photos), "--encoder", SMALL, "--out", str(root / "store"), "--shard-size", "4"]
    )
    assert result.exit_code == 0, result.output
    return root


def run(*args: str):
    return runner.invoke(app, list(args))


def assert_user_error(result, *fragments: str) -> str:
    """Exit 2, exactly one 'error:' line holding every fragment, and no traceback anywhere."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def cluster(workspace: Path, tmp_path: Path, *args: str, source: str | None = None):
    return run(
        "cluster",
        source or str(workspace / "photos"),
        "--encoder",
        SMALL,
        "--vocabulary",
        str(workspace / "nouns.txt"),
        "--out",
        str(tmp_path / "run"),
        *args,
    )


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--k", "1"], ["--k", "got 1"]),
        (["--k", "0"], ["got 0"]),
        (["--k", "-3"], ["got -3"]),
        (["--k", "2.5"], ["got 2.5"]),
        (["--k", "three"], ["got three"]),
        (["--k", "7"], ["n_clusters=7", "n=6"]),  # K > n
        (["--k", "2", "--method", "nosuch"], ["unknown method 'nosuch'"]),
        (["--k", "2", "--encoder", "nosuch"], ["unknown encoder 'nosuch'"]),
        (["--k", "2", "--encoder", "offline:image_size=8"], ["image_size", "8"]),
        (["--k", "2", "--view", "nosuch"], ["'nosuch'"]),
        (["--k", "2", "--method", "laic", "--param", "bogus=3"], ["laic", "'bogus'"]),
        (["--k", "2", "--method", "tac-notrain", "--param", "k_prime=3"], ["'k_prime'"]),
        (["--k", "2", "--method", "tac", "--param", "n_neighbours=0"], ["n_neighbours", "0"]),
        (["--k", "2", "--method", "scan", "--param", "lr=nan"], ["lr", "nan"]),
        (["--k", "2", "--param", "n_init=0"], ["n_init", "0"]),
        (["--k", "2", "--param", "epochs"], ["'epochs'", "KEY=VALUE"]),
        (["--method", "zeroshot"], ["class names"]),
        (["--method", "zeroshot", "--class-names", "a,b", "--templates", "no braces"], ["no braces"]),
    ],
)
def test_bad_cluster_parameters(workspace: Path, tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    # the store as SOURCE skips embedding; folder-only checks (encoder) use the photos
    source = str(workspace / "photos") if "--encoder" in args else str(workspace / "store")
    assert_user_error(cluster(workspace, tmp_path, *args, source=source), *fragments)
    assert not (tmp_path / "run" / "assignments.csv").exists()


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--param", "n_init=abc"], ["n_init", "abc"]),
        (["--method", "scan", "--param", "epochs=abc"], ["epochs", "abc"]),
        (["--method", "tac", "--param", "n_neighbours=abc"], ["n_neighbours", "abc"]),
    ],
)
def test_param_value_of_the_wrong_type(workspace: Path, tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    result = cluster(workspace, tmp_path, "--k", "2", *args, source=str(workspace / "store"))
    assert_user_error(result, *fragments)


@pytest.mark.parametrize("method", ["kmeans", "zeroshot"])
def test_unknown_param_of_kmeans_and_zeroshot(workspace: Path, tmp_path: Path, method: str) -> None:
    result = cluster(
        workspace, tmp_path, "--method", method, "--k", "2", "--class-names", "cat,car", "--param", "n_iint=3",
        source=str(workspace / "store"),
    )  # fmt: skip
    assert_user_error(result, "'n_iint'")


@pytest.mark.parametrize(
    ("spec", "fragments"),
    [
        ("dataset:nosuch", ["unknown dataset 'nosuch'"]),
        ("dataset:fashion-mnist:nosplit", ["'nosplit'"]),
    ],
)
def test_unknown_dataset(tmp_path: Path, spec: str, fragments: list[str]) -> None:
    assert_user_error(run("cluster", spec, "--k", "2", "--out", str(tmp_path / "run")), *fragments)


def _corrupt(store: Path, copy: Path, edit) -> Path:
    shutil.copytree(store, copy)
    for shard in sorted((copy / "shards").glob("*.npy")):
        array = np.load(shard)
        np.save(shard, edit(array))
    return copy


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("method", ["kmeans", "laic-notrain"])
def test_non_finite_features_in_a_store(workspace: Path, tmp_path: Path, bad: float, method: str) -> None:
    def poison(array: np.ndarray) -> np.ndarray:
        array = array.copy()
        array[1, 2] = bad
        return array

    store = _corrupt(workspace / "store", tmp_path / "store", poison)
    result = cluster(workspace, tmp_path, "--k", "2", "--method", method, source=str(store))
    assert_user_error(result, "finite", str(np.float32(bad)))


def test_wrong_dimension_features(workspace: Path, tmp_path: Path) -> None:
    """Store shards one column short: LAIC's image/noun dimensions disagree, named in the message."""
    store = _corrupt(workspace / "store", tmp_path / "store", lambda a: a[:, :-1])
    result = cluster(workspace, tmp_path, "--k", "2", "--method", "laic-notrain", source=str(store))
    assert_user_error(result, "383", "384")


def test_wrong_dimension_features_for_a_loaded_model(workspace: Path, tmp_path: Path) -> None:
    import semclust

    result = cluster(workspace, tmp_path, "--k", "2", "--no-names", source=str(workspace / "store"))
    assert result.exit_code == 0, result.output
    model = semclust.load(tmp_path / "run")
    with pytest.raises(ValueError, match="1280"):
        model.predict_features({"visual": np.ones((3, 100), np.float32), "joint": np.ones((3, 384), np.float32)})


def test_store_of_another_encoder_is_refused_unless_forced(workspace: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(workspace / "store", store)
    args = ["embed", str(workspace / "photos"), "--out", str(store), "--shard-size", "4"]
    assert_user_error(run(*args, "--encoder", "offline:image_size=64"), str(store), "--force")
    # the refused run left the store as it was: the same encoder still reuses every shard
    again = run(*args, "--encoder", SMALL)
    assert again.exit_code == 0 and "0 shards written, 2 reused" in again.output


@pytest.mark.parametrize("command", ["predict", "report", "export"])
def test_commands_on_a_directory_that_is_not_a_run(workspace: Path, tmp_path: Path, command: str) -> None:
    not_a_run = workspace / "store"
    args = {
        "predict": ["predict", str(not_a_run), str(workspace / "photos"), "--out", str(tmp_path / "p")],
        "report": ["report", str(not_a_run)],
        "export": ["export", str(not_a_run), "--to", str(tmp_path / "sorted")],
    }[command]
    assert_user_error(run(*args), str(not_a_run))
