"""Zero-shot clustering: each image joins the class whose text embedding it is closest to."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike

from semclust.deprecated import renamed
from semclust.methods.base import BaseClusterer
from semclust.methods.spec import FeatureSet, MethodResult, MethodSpec
from semclust.ops.features import as_feature_matrix, l2_normalize
from semclust.ops.kmeans import assign_to_centers


def build_class_embeddings(
    encode_texts: Callable[[list[str]], np.ndarray],
    class_names: list[str],
    templates: list[str],
) -> np.ndarray:
    """float32[C, d] prompt-ensembled class embeddings.

    Each class name is put into every template (``"{}"`` marks the spot), the texts are
    encoded in a single call, each embedding is L2-normalised, averaged over templates and
    normalised again. Normalising before the mean keeps one template with a large norm from
    dominating the ensemble.
    """
    if len(class_names) == 0:
        raise ValueError("class_names must not be empty")
    if len(templates) == 0:
        raise ValueError("templates must not be empty")
    for template in templates:
        if "{}" not in template:
            raise ValueError(f"every template must contain '{{}}', got {template!r}")
    # str.replace rather than str.format: templates may contain other literal braces
    texts = [template.replace("{}", name) for name in class_names for template in templates]
    encoded = as_feature_matrix(encode_texts(texts), name="encode_texts output")
    if encoded.shape[0] != len(texts):
        raise ValueError(f"encode_texts returned {encoded.shape[0]} embeddings for {len(texts)} texts")
    per_template = l2_normalize(encoded).reshape(len(class_names), len(templates), -1)
    return l2_normalize(per_template.mean(axis=1))


class ZeroShot(BaseClusterer):
    """Assign L2-normalised image embeddings to the most cosine-similar class embedding.

    ``class_embeddings`` (float[C, d], in the same joint space as the images) may be given
    here or to ``fit``; the one passed to ``fit`` wins. ``class_names``, if given, must have
    one name per class and becomes ``cluster_names_``. Nothing is learned from the images:
    ``centers_`` is the normalised class embeddings and the number of clusters is the number
    of classes, so any number of images (even fewer than the classes) is accepted.
    ``scores_`` holds each training row's cosine similarity to its chosen class.
    """

    _state_arrays = ("labels_", "centers_", "scores_")
    _state_values = ("n_features_in_", "cluster_names_", "n_clusters_")

    def __init__(
        self,
        class_embeddings: ArrayLike | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        self.class_embeddings = class_embeddings
        self.class_names = class_names

    def fit(
        self,
        X: ArrayLike,
        class_embeddings: ArrayLike | None = None,
        y: ArrayLike | None = None,
    ) -> ZeroShot:
        x = self._validate_fit_input(X)
        source = class_embeddings if class_embeddings is not None else self.class_embeddings
        if source is None:
            raise ValueError("ZeroShot needs class_embeddings, passed to the constructor or to fit")
        centers = l2_normalize(as_feature_matrix(source, name="class_embeddings"))
        if centers.shape[1] != x.shape[1]:
            raise ValueError(f"class_embeddings have dimension {centers.shape[1]} but X has {x.shape[1]}")
        names = None
        if self.class_names is not None:
            names = [str(name) for name in self.class_names]
            if len(names) != centers.shape[0]:
                raise ValueError(f"class_names has {len(names)} entries for {centers.shape[0]} class embeddings")
        self.centers_ = centers
        self.n_clusters_ = centers.shape[0]
        self.n_features_in_ = x.shape[1]
        self.cluster_names_ = names
        self.labels_, self.scores_ = assign_to_centers(x, centers, spherical=True)
        return self

    def predict(self, X: ArrayLike) -> np.ndarray:
        x = self._validate_predict_input(X)
        labels, _ = assign_to_centers(x, self.centers_, spherical=True)
        return labels


DEFAULT_TEMPLATES = ("a photo of a {}.",)


def fit_zeroshot(
    features: FeatureSet,
    n_clusters: int | None,
    random_state: int,
    class_names: Sequence[str] | None = None,
    templates: Sequence[str] = DEFAULT_TEMPLATES,
) -> MethodResult:
    """Assign to ``class_names`` (default: the dataset's), embedded with ``templates``."""
    names = list(class_names or features.class_names or [])
    if not names:
        raise ValueError("zeroshot needs class names: the dataset has none, pass --class-names a,b,c")
    if len(names) < 2:
        raise ValueError(f"zeroshot needs at least 2 class names, got {names}")
    if n_clusters is not None and n_clusters != len(names):
        raise ValueError(f"zeroshot assigns to the {len(names)} class names given, but --k is {n_clusters}")
    if features.encode_texts is None:
        raise ValueError("zeroshot needs the encoder's text tower")
    bad = [t for t in templates if "{}" not in t]
    if bad:
        raise ValueError(f"prompt templates must contain '{{}}': {bad}")
    class_embeddings = build_class_embeddings(features.encode_texts, names, list(templates))
    estimator = ZeroShot(class_embeddings=class_embeddings)
    labels = estimator.fit_predict(features.joint)
    return MethodResult(
        estimator,
        labels,
        len(names),
        cluster_names=[[n] for n in names],
        info={"templates": list(templates), "class_names": names},
    )


SPEC = MethodSpec(
    name="zeroshot",
    estimator=ZeroShot,
    fit=fit_zeroshot,
    former_estimators=("ZeroShotClusterer",),
    summary="each image joins the nearest class-name text (needs class names; K = their number)",
    needs=frozenset({"text", "class_names"}),
    needs_k=False,
    names_clusters=True,
)
METHOD_SPECS = (SPEC,)
__getattr__ = renamed(__name__, {"ZeroShotClusterer": "ZeroShot"}, globals())
