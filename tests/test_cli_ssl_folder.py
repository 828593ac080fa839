"""``semclust ssl fixmatch --labelled DIR``: train on the user's own folder of coloured squares, then
``semclust predict`` the run on images and get the labelled folder's class names back."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from semclust.cli.main import app

runner = CliRunner()
COLOURS = {"red": (200, 30, 30), "green": (30, 190, 40), "blue": (30, 40, 210)}
# enough steps for three colours; --ema-warmup: a constant 0.999 EMA would barely move in 40 steps
TRAIN = ["--steps", "40", "--batch-size", "6", "--mu", "2", "--image-size", "8", "--ema-warmup", "--eval-every", "20"]


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _square(colour: tuple[int, int, int], rng: np.random.Generator, size: int = 12) -> Image.Image:
    pixels = np.clip(np.array(colour, np.float32) + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """labelled/<colour>/ (4 each), test/<colour>/ (2 each), unlabelled/ (12 loose), new/ (one per colour)."""
    root = tmp_path_factory.mktemp("folders")
    rng = np.random.default_rng(0)
    for part, n in (("labelled", 4), ("test", 2)):
        for name, colour in COLOURS.items():
            (root / part / name).mkdir(parents=True)
            for i in range(n):
                _square(colour, rng).save(root / part / name / f"{i}.png")
    (root / "unlabelled").mkdir()
    (root / "new").mkdir()
    for i, colour in enumerate(list(COLOURS.values()) * 4):
        _square(colour, rng, size=10 + i % 5).save(root / "unlabelled" / f"u{i:02d}.png")
    for name, colour in COLOURS.items():
        _square(colour, rng, size=20).save(root / "new" / f"a_{name}.jpg")  # another size and format
    return root


@pytest.fixture(scope="module")
def trained(folders: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("ssl") / "run"
    args = ["ssl", "fixmatch", "--labelled", str(folders / "labelled"), "--unlabelled", str(folders / "unlabelled"),
            "--test", str(folders / "test"), *TRAIN, "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out, result.output


def _predicted(run: Path, images: Path, out: Path) -> dict[str, str]:
    result = runner.invoke(app, ["predict", str(run), str(images), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with open(out / "assignments.csv", newline="") as handle:
        return {row["id"]: row["name"] for row in csv.DictReader(handle)}


def test_folder_run_writes_metrics_run_and_a_safetensors_model(trained: tuple[Path, str]) -> None:
    out, output = trained
    assert "12 labelled in 3 classes (blue, green, red), 24 unlabelled, 6 test, 8x8 RGB" in output
    run = json.loads((out / "run.json").read_text())
    config = run["config"]
    assert config["class_names"] == ["blue", "green", "red"] and config["labelled_counts"] == [4, 4, 4]
    assert config["channels"] == 3 and config["image_size"] == [8, 8] and config["n_unlabelled"] == 12 + 12
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "folder" and metrics["n"] == 6 and metrics["acc"] == 1.0
    manifest = json.loads((out / "model" / "model.json").read_text())
    assert manifest["format"] == "semclust-ssl-model" and manifest["class_names"] == ["blue", "green", "red"]
    assert manifest["input_shape"] == [8, 8, 3]
    assert sorted(p.name for p in (out / "model").iterdir()) == ["model.json", "model.safetensors"]


def test_predict_names_training_and_new_images_by_their_class_folders(
    trained: tuple[Path, str], folders: Path, tmp_path: Path
) -> None:
    out, _ = trained
    names = _predicted(out, folders / "labelled", tmp_path / "lab")
    assert names == {f"{c}/{i}.png": c for c in COLOURS for i in range(4)}
    names = _predicted(out, folders / "new", tmp_path / "new")
    assert names == {f"a_{c}.jpg": c for c in COLOURS}
    report = json.loads((tmp_path / "new" / "predict.json").read_text())
    assert report["method"] == "fixmatch" and report["n_items"] == 3


def test_predict_agrees_with_the_trained_network_on_the_same_pixels(trained: tuple[Path, str], folders: Path) -> None:
    """The saved model reloaded = the EMA network that was evaluated: same classes for the pixels
    the run trained on (the reference: the run's own pixel reader, then the network by hand)."""
    from semclust.outputs.model import load
    from semclust.ssl.folders import read_folders

    out, _ = trained
    model = load(out)
    images = read_folders(folders / "labelled", size=8)
    x = torch.from_numpy(images.x_lb).float().div(255).permute(0, 3, 1, 2)
    mean = torch.tensor(model.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.std).view(1, 3, 1, 1)
    with torch.no_grad():
        by_hand = model.network((x - mean) / std).argmax(dim=1).numpy()
    assert model.predict_pixels(images.x_lb).tolist() == by_hand.tolist() == images.y_lb.tolist()


def test_grey_images_train_a_one_channel_network(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for name, level in (("dark", 40), ("light", 210)):
        (tmp_path / "lab" / name).mkdir(parents=True)
        for i in range(3):
            pixels = np.clip(level + rng.normal(0, 10, (9, 9)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(tmp_path / "lab" / name / f"{i}.png")
    out = tmp_path / "run"
    args = ["ssl", "fixmatch", "--labelled", str(tmp_path / "lab"), "--steps", "2", "--batch-size", "2", "--mu", "1",
            "--image-size", "8", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "8x8 grey" in result.output and "no test images" in result.output
    assert not (out / "metrics.json").exists()  # nothing to score without --test
    assert json.loads((out / "model" / "model.json").read_text())["input_shape"] == [8, 8]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dataset", "digits"], "leave out --dataset"),
        (["--n1", "3", "--m1", "3"], "leave out --dataset, --labels-per-class and --n1"),
        (["--m1", "3"], "--m1 belongs to a long-tailed split"),
        (["--image-size", "4"], "--image-size must be at least 8"),
    ],
)
def test_bad_folder_arguments_exit_2_with_one_line(folders: Path, tmp_path: Path, extra, message) -> None:
    args = ["ssl", "fixmatch", "--labelled", str(folders / "labelled"), *extra, "--out", str(tmp_path / "x")]
    result = runner.invoke(app, args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.output
    assert not (tmp_path / "x").exists()  # a failed first run leaves no directory behind


def test_a_single_class_folder_or_an_unknown_test_class_is_refused(folders: Path, tmp_path: Path) -> None:
    one = runner.invoke(app, ["ssl", "cpe", "--labelled", str(folders / "labelled" / "red"), "--out",
                              str(tmp_path / "a")])  # fmt: skip
    assert one.exit_code == 2 and "belong to no class folder" in one.output
    (tmp_path / "t" / "purple").mkdir(parents=True)
    _square((120, 0, 120), np.random.default_rng(0)).save(tmp_path / "t" / "purple" / "p.png")
    unknown = runner.invoke(app, ["ssl", "fixmatch", "--labelled", str(folders / "labelled"), "--test",
                                  str(tmp_path / "t"), "--out", str(tmp_path / "b")])  # fmt: skip
    assert unknown.exit_code == 2 and "purple are not among the labelled classes" in unknown.output
    folder_as_dataset = runner.invoke(app, ["ssl", "fixmatch", "--dataset", str(folders / "labelled"),
                                            "--labels-per-class", "2", "--out", str(tmp_path / "d")])  # fmt: skip
    assert folder_as_dataset.exit_code == 2 and "is a folder: train on your own images with --labelled" in (
        folder_as_dataset.output
    )
    assert "--unlabelled goes with --labelled" in runner.invoke(
        app, ["ssl", "fixmatch", "--dataset", "digits", "--labels-per-class", "2", "--unlabelled", "x", "--out",
              str(tmp_path / "c")]  # fmt: skip
    ).output


def test_a_long_tailed_method_trains_on_folders_and_its_model_predicts(folders: Path, tmp_path: Path) -> None:
    out = tmp_path / "cpe"
    args = ["ssl", "cpe", "--labelled", str(folders / "labelled"), "--steps", "2", "--batch-size", "3", "--mu", "1",
            "--image-size", "8", "--out", str(out)]  # fmt: skip
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    names = _predicted(out, folders / "new", tmp_path / "pred")
    assert set(names) == {f"a_{c}.jpg" for c in COLOURS} and set(names.values()) <= set(COLOURS)


def test_predict_on_a_run_without_a_model_gives_the_command_to_rerun(tmp_path: Path) -> None:
    run = tmp_path / "old"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"command": "ssl fixmatch"}))
    result = runner.invoke(app, ["predict", str(run), str(tmp_path), "--out", str(tmp_path / "p")])
    assert result.exit_code == 2 and "re-run 'semclust ssl fixmatch" in result.output
    assert "semclust cluster" not in result.output


@pytest.mark.parametrize("method", ["fixmatch-la", "cpe", "metaexpert"])
def test_saved_model_predicts_as_the_trainer_for_every_method(method: str, folders: Path, tmp_path: Path) -> None:
    """The reloaded model (network rebuilt from its name and the algorithm's recorded
    hyperparameters, weights from safetensors) gives the trainer's own EMA predictions."""
    from semclust.outputs.model import load
    from semclust.ssl.experiment import folder_data, run_ssl

    data = folder_data(folders / "labelled", str(folders / "unlabelled"), folders / "test", image_size=8)
    run = run_ssl(method, data, steps=3, batch_size=3, mu=1, out=tmp_path / method)
    x = np.concatenate([data.x_lb, data.x_ulb, data.x_test])
    assert load(tmp_path / method).predict_pixels(x).tolist() == run.trainer.predict(x).tolist()
