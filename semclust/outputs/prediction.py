"""What :meth:`semclust.outputs.model.LoadedModel.predict_images` returns, and its scores.

A prediction's score says how firmly an image belongs to its cluster, in the method's own
terms: the cluster's probability for methods with ``predict_proba`` (laic, tac, scan), else
the cosine similarity to the assigned cluster's center (kmeans, zeroshot, laic-notrain).
Methods with neither (tac-notrain, asd) give NaN scores and say so in ``score_meaning``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from semclust.data.base import SkippedItem

PROBABILITY = "the cluster's probability under the model"
CENTER_COSINE = "cosine similarity to the cluster's center"
NO_SCORE = "not available for this method"


def count(n: int, noun: str) -> str:
    """``"1 image"``, ``"3 images"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@dataclass
class Prediction:
    """New images assigned to a run's clusters.

    ``paths`` are the images' ids (relative paths for a folder, as given for files),
    ``clusters[i]`` / ``names[i]`` / ``scores[i]`` belong to ``paths[i]``; unreadable files are
    in ``skipped``. It still unpacks as the older ``(ids, clusters, skipped)`` tuple.
    """

    paths: list[str]
    clusters: np.ndarray
    names: list[str]
    scores: np.ndarray
    score_meaning: str
    skipped: list[SkippedItem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.paths, self.clusters, self.skipped))

    def rows(self) -> list[dict[str, Any]]:
        """One ``{"path", "cluster", "name", "score"}`` dict per image (score None when NaN)."""
        return [
            {"path": p, "cluster": int(c), "name": n, "score": None if np.isnan(s) else float(s)}
            for p, c, n, s in zip(self.paths, self.clusters.tolist(), self.names, self.scores.tolist())
        ]


def build_prediction(
    model: Any,
    paths: list[str],
    clusters: np.ndarray,
    skipped: list[SkippedItem],
    inputs: dict[str, np.ndarray] | None = None,
) -> Prediction:
    """A :class:`Prediction` for ``model`` (a ``LoadedModel``); ``inputs`` are the keyword
    arguments its estimator's ``predict`` was called with (None for pixel models)."""
    clusters = np.asarray(clusters, dtype=np.int64)
    names = [model.cluster_name(int(k)) for k in clusters.tolist()]
    scores, meaning = assignment_scores(model.estimator, inputs, clusters)
    return Prediction(list(paths), clusters, names, scores, meaning, list(skipped))


def assignment_scores(
    estimator: Any, inputs: dict[str, np.ndarray] | None, clusters: np.ndarray
) -> tuple[np.ndarray, str]:
    """``(float32[n] scores, what they mean)`` of ``clusters`` predicted from ``inputs``."""
    n = len(clusters)
    if n == 0 or inputs is None:
        return np.full(n, np.nan, dtype=np.float32), NO_SCORE
    rows = np.arange(n)
    if hasattr(estimator, "predict_proba"):
        probabilities = np.asarray(estimator.predict_proba(**inputs), dtype=np.float32)
        return probabilities[rows, clusters], PROBABILITY
    centers = getattr(estimator, "centers_", None)
    if centers is not None and len(inputs) == 1:
        (x,) = inputs.values()
        if hasattr(estimator, "transform"):
            x = estimator.transform(x)  # laic-notrain: centers live in the relation-row space
        x = np.asarray(x, dtype=np.float64)
        c = np.asarray(centers, dtype=np.float64)
        if x.ndim == 2 and c.ndim == 2 and x.shape[1] == c.shape[1]:
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
            return np.einsum("ij,ij->i", x, c[clusters]).astype(np.float32), CENTER_COSINE
    return np.full(n, np.nan, dtype=np.float32), NO_SCORE


class SSLRunModel:
    """A ``semclust ssl`` run's classifier with a cluster model's ``predict_images``: it
    returns a :class:`~semclust.outputs.prediction.Prediction` whose names are the classes'
    (the labelled folders' names); every other attribute is the classifier's own."""

    def __init__(self, classifier: Any) -> None:
        self.classifier = classifier

    def __getattr__(self, name: str) -> Any:
        if name == "classifier":  # not set yet (copy/pickle): avoid recursing
            raise AttributeError(name)
        return getattr(self.classifier, name)

    def predict_images(self, images: Any, device: str = "cpu", progress: Any = None,
                       *, encoder: Any = None, batch_size: int | None = None) -> Prediction:  # fmt: skip
        ids, classes, skipped = self.classifier.predict_images(images, device=device, progress=progress)
        classes = np.asarray(classes, dtype=np.int64)
        names = [self.classifier.cluster_name(int(k)) for k in classes.tolist()]
        return Prediction(list(ids), classes, names, np.full(len(ids), np.nan, dtype=np.float32), NO_SCORE, skipped)
