"""predict_images returns a Prediction (paths, clusters, names, scores); `semclust predict`
writes its score column and counts images in the singular when there is one."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from fakes import ColourEncoder, colour_images
from PIL import Image
from test_cli_predict import invoke, trained  # noqa: F401 - the module-scoped run fixture

from semclust.data.base import ArraySource
from semclust.outputs.prediction import CENTER_COSINE, NO_SCORE, PROBABILITY, Prediction, assignment_scores


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _kmeans_model(tmp_path: Path):
    from semclust.methods.kmeans import KMeans
    from semclust.outputs.model import load, save_model

    encoder = ColourEncoder()
    images, _ = colour_images(30, seed=0)
    views = encoder.image_views([ArraySource(images).load(i) for i in range(len(images))])
    estimator = KMeans(n_clusters=3, n_init=2).fit(views["visual"])
    save_model(
        tmp_path / "model",
        method="kmeans",
        estimator=estimator,
        inputs={"X": "visual"},
        encoder_config=encoder.config(),
        n_clusters=3,
        cluster_names=[["one"], ["two"], ["three"]],
    )
    return load(tmp_path), encoder


def test_prediction_holds_paths_clusters_names_and_cosine_scores(tmp_path: Path) -> None:
    model, encoder = _kmeans_model(tmp_path)
    folder = tmp_path / "new"
    folder.mkdir()
    new, _ = colour_images(5, seed=4)
    for i, image in enumerate(new):
        Image.fromarray(image).save(folder / f"{i}.png")
    (folder / "zz.png").write_bytes(b"broken")
    prediction = model.predict_images(folder, encoder=encoder)
    assert isinstance(prediction, Prediction) and len(prediction) == 5
    assert prediction.paths == [f"{i}.png" for i in range(5)]
    assert [s.item_id for s in prediction.skipped] == ["zz.png"]
    assert prediction.names == [["one", "two", "three"][k] for k in prediction.clusters.tolist()]
    # reference: cosine of each image's visual feature to its cluster's center, one at a time
    visual = encoder.image_views([Image.open(folder / p) for p in prediction.paths])["visual"]
    centers = model.estimator.centers_
    for i, k in enumerate(prediction.clusters.tolist()):
        v, c = visual[i].astype(np.float64), centers[k].astype(np.float64)
        assert prediction.scores[i] == pytest.approx(v @ c / np.linalg.norm(v) / np.linalg.norm(c), abs=1e-5)
        assert k == int(np.argmax(visual[i] @ centers.T))
    assert prediction.score_meaning == CENTER_COSINE
    rows = prediction.rows()
    assert rows[0] == {
        "path": "0.png",
        "cluster": int(prediction.clusters[0]),
        "name": prediction.names[0],
        "score": pytest.approx(float(prediction.scores[0])),
    }
    ids, labels, skipped = prediction  # the older tuple form still unpacks
    assert ids == prediction.paths and labels is prediction.clusters and skipped == prediction.skipped


class _Probabilistic:
    def predict_proba(self, X):
        return np.array([[0.1, 0.9], [0.7, 0.3], [0.5, 0.5]])[: len(X)]


def test_scores_are_the_probability_of_the_assigned_cluster_or_nan() -> None:
    x = np.zeros((3, 2), dtype=np.float32)
    scores, meaning = assignment_scores(_Probabilistic(), {"X": x}, np.array([1, 0, 1]))
    assert meaning == PROBABILITY and scores.tolist() == pytest.approx([0.9, 0.7, 0.5])
    scores, meaning = assignment_scores(object(), {"X": x}, np.array([1, 0, 1]))
    assert meaning == NO_SCORE and np.isnan(scores).all()
    scores, meaning = assignment_scores(_Probabilistic(), None, np.array([1, 0]))  # a pixel model
    assert meaning == NO_SCORE and np.isnan(scores).all()


def test_cli_predict_writes_scores_and_says_1_image(trained, tmp_path: Path) -> None:  # noqa: F811
    run, _ = trained
    image = tmp_path / "one.png"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(image)
    out = tmp_path / "pred"
    result = invoke("predict", str(run), str(image), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "assigned 1 image to 3 clusters" in result.output and "1 images" not in result.output
    rows = _rows(out / "assignments.csv")
    assert list(rows[0]) == ["id", "cluster", "name", "score"] and len(rows) == 1
    from semclust.outputs.model import load

    expected = load(run).predict_images([str(image)])
    assert float(rows[0]["score"]) == pytest.approx(float(expected.scores[0]), abs=1e-4)
    assert -1.0 <= float(rows[0]["score"]) <= 1.0
    assert json.loads((out / "predict.json").read_text())["score"] == CENTER_COSINE
    folder = tmp_path / "two"
    folder.mkdir()
    for i in range(2):
        Image.new("RGB", (32, 32), (10, 10, 200 - i)).save(folder / f"{i}.png")
    result = invoke("predict", str(run), str(folder), "--out", str(tmp_path / "pred2"))
    assert result.exit_code == 0 and "assigned 2 images to 3 clusters" in result.output
