"""Clustering methods by name, each built from the same :class:`FeatureSet`.

A method is a function ``(features, n_clusters, random_state, **options) -> MethodResult``;
adding one means adding a file with its estimator and one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from semclust.methods.kmeans import KMeansClusterer
from semclust.methods.naming import name_clusters, text_space_centroids
from semclust.methods.zeroshot import ZeroShotClusterer, build_class_embeddings

DEFAULT_TEMPLATES = ("a photo of a {}.",)


@dataclass
class FeatureSet:
    """Everything a method may read: embeddings per view, and the text tower of their space."""

    joint: np.ndarray
    visual: np.ndarray | None = None
    labels: np.ndarray | None = None
    class_names: Sequence[str] | None = None
    encode_texts: Callable[[Sequence[str]], np.ndarray] | None = None
    nouns: Callable[[], tuple[list[str], np.ndarray]] | None = None

    def noun_vocabulary(self) -> tuple[list[str], np.ndarray]:
        """(names, L2-normalised text embeddings in the joint space), loaded on first use."""
        if self.nouns is None:
            raise ValueError("this method needs a noun vocabulary in the encoder's text space")
        return self.nouns()

    def view(self, name: str) -> np.ndarray:
        if name == "joint":
            return self.joint
        if name == "visual":
            if self.visual is None:
                raise ValueError("this encoder has no separate visual view; use --view joint")
            return self.visual
        raise ValueError(f"unknown view {name!r}; expected 'joint' or 'visual'")


@dataclass
class MethodResult:
    estimator: Any
    labels: np.ndarray
    n_clusters: int
    cluster_names: list[list[str]] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def _kmeans(
    features: FeatureSet, n_clusters: int, random_state: int, view: str | None = None, n_init: int = 5, **_: Any
) -> MethodResult:
    # Image-only step: the visual view keeps more class information than a bridged joint view.
    view = view or ("visual" if features.visual is not None else "joint")
    estimator = KMeansClusterer(n_clusters=n_clusters, n_init=n_init, random_state=random_state)
    labels = estimator.fit_predict(features.view(view))
    return MethodResult(estimator, labels, n_clusters, info={"view": view, "n_init": n_init})


def _zeroshot(
    features: FeatureSet,
    n_clusters: int | None,
    random_state: int,
    class_names: Sequence[str] | None = None,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    **_: Any,
) -> MethodResult:
    names = list(class_names or features.class_names or [])
    if not names:
        raise ValueError("zeroshot needs class names: the dataset has none, pass --class-names a,b,c")
    if n_clusters is not None and n_clusters != len(names):
        raise ValueError(f"zeroshot assigns to the {len(names)} class names given, but --k is {n_clusters}")
    if features.encode_texts is None:
        raise ValueError("zeroshot needs the encoder's text tower")
    bad = [t for t in templates if "{}" not in t]
    if bad:
        raise ValueError(f"prompt templates must contain '{{}}': {bad}")
    class_embeddings = build_class_embeddings(features.encode_texts, names, list(templates))
    estimator = ZeroShotClusterer(class_embeddings=class_embeddings)
    labels = estimator.fit_predict(features.joint)
    return MethodResult(
        estimator,
        labels,
        len(names),
        cluster_names=[[n] for n in names],
        info={"templates": list(templates), "class_names": names},
    )


METHODS: dict[str, Callable[..., MethodResult]] = {
    "kmeans": _kmeans,
    "zeroshot": _zeroshot,
}


def run_method(
    name: str,
    features: FeatureSet,
    n_clusters: int | None,
    random_state: int = 0,
    *,
    name_clusters_with_nouns: bool = True,
    **options: Any,
) -> MethodResult:
    """Fit method ``name``; clusters a method does not name itself get their nearest nouns."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
    if name != "zeroshot" and n_clusters is None:
        raise ValueError(f"method {name} needs the number of clusters (--k)")
    result = METHODS[name](features, n_clusters, random_state, **options)
    if result.cluster_names is None and name_clusters_with_nouns and features.nouns is not None:
        result.cluster_names = name_by_centroids(features, result.labels, result.n_clusters)
    return result


def name_by_centroids(features: FeatureSet, labels: np.ndarray, n_clusters: int, top: int = 5) -> list[list[str]]:
    """Each cluster's ``top`` nouns nearest to the mean of its members' joint embeddings."""
    noun_names, noun_embeddings = features.noun_vocabulary()
    centroids = text_space_centroids(features.joint, labels, n_clusters)
    return name_clusters(centroids, noun_embeddings, noun_names, top=top)
