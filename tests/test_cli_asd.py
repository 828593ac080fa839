"""``semclust cluster SOURCE --method asd``: tiny runs write the usual files and report the sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from fakes import ColourEncoder, colour_images
from PIL import Image
from typer.testing import CliRunner

from semclust import workflow
from semclust.cli.main import app
from semclust.data.registry import open_source
from semclust.methods.registry import FeatureSet, run_method

runner = CliRunner()
# The paper's backbone (a CNN on the pixels); the frozen default is tested in test_methods_asd_frozen.py.
TINY = ["--param", "instance_steps=2", "--param", "ssl_steps=2", "--param", "batch_size=4", "--param", "mu=1",
        "--param", "backbone=scratch"]  # fmt: skip


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_asd_on_digits_writes_metrics_and_reports_coverage_and_purity(tmp_path: Path, monkeypatch) -> None:
    # The method is under test, not the encoder: a cheap stand-in embeds the 1797 digits.
    monkeypatch.setattr(workflow, "get_encoder", lambda *args, **kwargs: ColourEncoder(batch_size=512))
    out = tmp_path / "run"
    result = invoke("cluster", "dataset:digits", "--method", "asd", "--k", "10", "--no-names", "--out", str(out),
                    *TINY, "--param", "n_labelled=20")  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 1797 and 0.0 <= metrics["acc"] <= 1.0
    options = json.loads((out / "run.json").read_text())["method_options"]
    assert options["n_labelled"] == 20 and options["flip"] is False  # 8x8 digits are never mirrored
    assert 0.0 < options["coverage_probability"] < 1.0
    assert 0.0 <= options["pseudo_label_purity"] <= 1.0
    assert options["image_shape"] == [16, 16]
    assert len((out / "assignments.csv").read_text().strip().splitlines()) == 1797 + 1


def test_asd_can_group_its_sample_by_the_encoder_features(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(workflow, "get_encoder", lambda *args, **kwargs: ColourEncoder(batch_size=512))
    out = tmp_path / "run"
    result = invoke("cluster", "dataset:digits", "--method", "asd", "--k", "10", "--no-names", "--out", str(out),
                    *TINY, "--param", "n_labelled=20", "--param", "similarity=features")  # fmt: skip
    assert result.exit_code == 0, result.output
    options = json.loads((out / "run.json").read_text())["method_options"]
    assert options["similarity"] == "features" and options["similarity_view"] == "visual"
    assert options["transitions_counted"] == 0  # the instance stage was skipped


def test_folder_images_are_aligned_with_the_store_and_resized(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    images, labels = colour_images(12, seed=3)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / ["red", "green", "blue"][label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).resize((40, 24)).save(folder / f"img{i:02d}.png")
    (root / "red" / "broken.jpg").write_text("not an image")
    source = open_source(str(root), labels_from_folders=True)
    store = workflow.embed(source, encoder=ColourEncoder(), out=tmp_path / "store").store
    assert len(store.skipped) == 1
    features = workflow.feature_set_from_store(store, source=source)
    pixels, ids = features.images()
    assert ids == store.ids and pixels.shape == (12, 32, 32, 3) and pixels.dtype == np.uint8
    j = source.ids.index(ids[5])
    expected = np.asarray(source.load(j).convert("RGB").resize((32, 32), Image.BILINEAR))
    np.testing.assert_array_equal(pixels[5], expected)
    result = run_method("asd", features, 3, name_clusters_with_nouns=False, n_labelled=6, instance_steps=2,
                        ssl_steps=2, batch_size=4, mu=1, backbone="scratch")  # fmt: skip
    assert result.labels.shape == (12,) and result.info["image_shape"] == [32, 32, 3]
    assert result.info["flip"] is True and "pseudo_label_purity" in result.info
    assert workflow.feature_set_from_store(store).images is None


def test_asd_without_images_is_a_clear_error() -> None:
    features = FeatureSet(joint=np.zeros((4, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="asd trains on the images themselves"):
        run_method("asd", features, 2)


def test_asd_run_saves_a_model_that_predict_reads(tmp_path: Path, monkeypatch) -> None:
    import csv

    monkeypatch.setattr(workflow, "get_encoder", lambda *args, **kwargs: ColourEncoder())
    train = tmp_path / "train"
    train.mkdir()
    images, _ = colour_images(12, seed=3)
    for i, image in enumerate(images):
        Image.fromarray(image).resize((40, 24)).save(train / f"img{i:02d}.png")
    out = tmp_path / "run"
    result = invoke("cluster", str(train), "--method", "asd", "--k", "3", "--no-names", "--out", str(out),
                    *TINY, "--param", "n_labelled=6")  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "model" / "model.json").read_text())
    assert manifest["method"] == "asd" and manifest["inputs"] == {"X": "pixels"}
    assert manifest["learned"]["input_shape_"] == [32, 32, 3]  # folders are read at 32 px

    def rows(path: Path) -> list[tuple[str, str]]:
        with open(path, newline="", encoding="utf-8") as handle:
            return [(r["id"], r["cluster"]) for r in csv.DictReader(handle)]

    # the training images come back in their run's clusters, read the same way (decode, 32 px)
    pred = tmp_path / "pred"
    result = invoke("predict", str(out), str(train), "--out", str(pred))
    assert result.exit_code == 0, result.output
    assert rows(pred / "assignments.csv") == rows(out / "assignments.csv")
    assert json.loads((pred / "predict.json").read_text())["method"] == "asd"

    new = tmp_path / "new"
    new.mkdir()
    extra, _ = colour_images(3, seed=9)
    for i, image in enumerate(extra):
        Image.fromarray(image).save(new / f"new{i}.png")
    (new / "broken.png").write_text("not an image")
    result = invoke("predict", str(out), str(new), "--out", str(tmp_path / "pred2"))
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable file(s)" in result.output
    assert [r[0] for r in rows(tmp_path / "pred2" / "assignments.csv")] == ["new0.png", "new1.png", "new2.png"]

    import semclust

    model = semclust.load(out)
    ids, labels, _ = model.predict_images(train)
    assert labels.tolist() == [int(c) for _, c in rows(out / "assignments.csv")]


# ----------------------------------------------------------------------------- --resume
RESUME_PARAMS = ["n_labelled=6", "instance_steps=8", "ssl_steps=6", "record_every=1", "transition_window=0.75",
                 "batch_size=4", "mu=1", "checkpoint_every=2", "backbone=scratch"]  # fmt: skip


def _asd_cluster_args(folder: Path, out: Path) -> list[str]:
    args = ["cluster", str(folder), "--method", "asd", "--k", "3", "--seed", "5", "--no-names", "--out", str(out)]
    for p in RESUME_PARAMS:
        args += ["--param", p]
    return args


@pytest.fixture(scope="module")
def asd_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("asd-resume") / "images"
    folder.mkdir()
    images, _ = colour_images(30, seed=4)
    for i, image in enumerate(images):
        Image.fromarray(image).resize((16, 16)).save(folder / f"img{i:02d}.png")
    return folder


@pytest.mark.parametrize("kill", [("round0-instance", 4), ("round0-ssl", 2)])
def test_killed_asd_run_resumes_with_identical_assignments(
    kill: tuple[str, int], asd_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from semclust.ssl import trainer as trainer_module

    monkeypatch.setattr(workflow, "get_encoder", lambda *args, **kwargs: ColourEncoder())
    reference = tmp_path / "uninterrupted"
    result = invoke(*_asd_cluster_args(asd_folder, reference))
    assert result.exit_code == 0, result.output
    assert not (reference / "checkpoint").exists()  # removed once the run is written

    # Ctrl-C right after the stage's trainer wrote its checkpoint at that step
    original = trainer_module.Trainer.save_checkpoint
    saves: list[tuple[str, int]] = []
    armed = [True]

    def save(self: trainer_module.Trainer) -> Path:
        path = original(self)
        saves.append((Path(self.out_dir).name, self.step))
        if armed[0] and saves[-1] == kill:
            armed[0] = False
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(trainer_module.Trainer, "save_checkpoint", save)
    killed = tmp_path / "killed"
    interrupted = runner.invoke(app, _asd_cluster_args(asd_folder, killed))
    assert interrupted.exit_code != 0 and saves[-1] == kill
    assert not (killed / "run.json").exists()
    stage_state = json.loads((killed / "checkpoint" / kill[0] / "checkpoint" / "checkpoint.json").read_text())["values"]
    assert stage_state["step"] == kill[1]

    refused = runner.invoke(app, _asd_cluster_args(asd_folder, killed))  # needs --resume (or --force)
    assert refused.exit_code == 2 and "--resume" in refused.output

    saves.clear()
    resumed = invoke(*_asd_cluster_args(asd_folder, killed), "--resume")
    assert resumed.exit_code == 0, resumed.output
    # continued after the kill: the stage's earlier checkpoints were not written again
    assert [s for s in saves if s[0] == kill[0]][0] == (kill[0], kill[1] + 2)
    assert ("round0-instance", 2) not in saves
    assert (killed / "assignments.csv").read_bytes() == (reference / "assignments.csv").read_bytes()
    reference_options = json.loads((reference / "run.json").read_text())["method_options"]
    resumed_options = json.loads((killed / "run.json").read_text())["method_options"]
    for key in ("sampled_indices", "instance_groups", "transitions_counted", "co_predictions_used"):
        assert resumed_options[key] == reference_options[key], key
    assert not (killed / "checkpoint").exists()

    # --force starts over (no checkpoint read) and writes the same run again
    saves.clear()
    forced = invoke(*_asd_cluster_args(asd_folder, killed), "--force")
    assert forced.exit_code == 0, forced.output
    assert ("round0-instance", 2) in saves
    assert (killed / "assignments.csv").read_bytes() == (reference / "assignments.csv").read_bytes()
