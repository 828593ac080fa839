"""TAC without training, and the text side both TAC variants share.

Li et al., "Image Clustering with External Guidance", ICML 2024 (RESEARCH.md section 2).
Nouns are kept near k' image k-means centers (:mod:`semclust.ops.tac_text`) and every image
``u_i`` gets a text counterpart ``t_i``, a sharp softmax blend of the kept nouns;
:class:`TACNoTrain` clusters the concatenation ``[u_i ; t_i]`` with spherical k-means. The
trained variant is :class:`semclust.methods.tac.TAC`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from semclust.deprecated import renamed_keywords
from semclust.methods.base import BaseClusterer, check_n_clusters
from semclust.methods.naming import name_clusters, text_space_centroids
from semclust.methods.spec import FeatureSet, MethodResult, MethodSpec
from semclust.ops.features import as_feature_matrix, l2_normalize
from semclust.ops.kmeans import assign_to_centers, spherical_kmeans
from semclust.ops.tac_text import (
    CONCAT_KMEANS_RESTARTS,
    DEFAULT_TEMPERATURE,
    FAISS_MAX_POINTS_PER_CENTROID,
    KMEANS_ITER,
    NOUN_KMEANS_RESTARTS,
    default_n_centers,
    select_nouns,
    text_counterparts,
)


def check_noun_embeddings(x: np.ndarray, noun_embeddings: ArrayLike | None) -> np.ndarray:
    if noun_embeddings is None:
        raise ValueError("TAC needs noun_embeddings (float[m, d] text embeddings of nouns)")
    s = as_feature_matrix(noun_embeddings, name="noun_embeddings")
    if s.shape[1] != x.shape[1]:
        raise ValueError(f"noun_embeddings have dimension {s.shape[1]} but X has {x.shape[1]}")
    return s


def check_noun_names(noun_names: Sequence[str] | None, m: int) -> list[str] | None:
    if noun_names is None:
        return None
    names = [str(name) for name in noun_names]
    if len(names) != m:
        raise ValueError(f"noun_names has {len(names)} entries for {m} noun embeddings")
    return names


def image_side(x: np.ndarray, image_features: ArrayLike | None, expected_dim: int | None = None) -> np.ndarray:
    """The image modality: ``x`` itself, or a separate view of the same rows.

    An encoder reached through a bridge (the offline one) keeps much more class information
    in its raw visual features than in the joint space (RESEARCH.md section 8), so TAC's
    image half and image head may use them while the text side stays in the joint space.
    """
    image = x if image_features is None else as_feature_matrix(image_features, name="image_features")
    if image.shape[0] != x.shape[0]:
        raise ValueError(f"image_features has {image.shape[0]} rows for {x.shape[0]} joint embeddings")
    if expected_dim is not None and image.shape[1] != expected_dim:
        raise ValueError(
            f"image features have {image.shape[1]} dims but the model was fitted on {expected_dim}; "
            "pass the same image_features view used in fit"
        )
    return l2_normalize(image)


class TACTextSide:
    """Shared noun selection / counterpart logic of both TAC variants."""

    n_clusters: int
    n_centers: int | None
    nouns_per_center: int
    temperature: float
    random_state: int
    dedupe_nouns: bool
    kmeans_max_points_per_centroid: int | None

    def _noun_restarts(self) -> int:
        raise NotImplementedError

    def _fit_text_side(self, x: np.ndarray, s: np.ndarray) -> np.ndarray:
        if self.n_centers is not None:
            n_centers = self.n_centers
        else:
            n_centers = default_n_centers(len(x), int(self.n_clusters))
        selected = select_nouns(
            x,
            s,
            n_centers,
            per_center=self.nouns_per_center,
            random_state=self.random_state,
            n_init=self._noun_restarts(),
            dedupe=bool(self.dedupe_nouns),
            max_points_per_centroid=self.kmeans_max_points_per_centroid,
        )
        self.n_centers_ = int(n_centers)
        self.selected_nouns_ = selected
        self.selected_noun_embeddings_ = l2_normalize(s[selected])
        t = text_counterparts(x, self.selected_noun_embeddings_, temperature=self.temperature)
        self.text_counterparts_ = t
        return t

    def text_counterparts_for(self, X: ArrayLike) -> np.ndarray:
        """float32[n, d] text counterparts of new images, from the nouns kept by ``fit``."""
        x = self._validate_predict_input(X)  # type: ignore[attr-defined]
        return text_counterparts(x, self.selected_noun_embeddings_, temperature=self.temperature)

    def _set_names(self, t: np.ndarray, labels: np.ndarray, k: int, names: list[str] | None) -> None:
        """Name clusters from the mean text counterpart, using the kept nouns.

        *Interpretation*: names are ranked among the selected nouns only (those the text
        counterparts are built from), against the normalised mean ``t_i`` of each cluster.
        """
        self.text_centers_ = text_space_centroids(t, labels, k)
        if names is None:
            self.cluster_nouns_ = None
            self.cluster_names_ = None
            return
        kept = [names[j] for j in self.selected_nouns_]
        self.cluster_nouns_ = name_clusters(self.text_centers_, self.selected_noun_embeddings_, kept, top=5)
        self.cluster_names_ = [nouns[0] if nouns else "" for nouns in self.cluster_nouns_]


class TACNoTrain(TACTextSide, BaseClusterer):
    """TAC without training: spherical k-means on ``[u_i ; t_i]``.

    ``fit(X, noun_embeddings, noun_names=None)``: ``X`` float[n, d] image embeddings,
    ``noun_embeddings`` float[m, d] noun text embeddings in the same joint space. Each half
    of the concatenation is L2-normalised, as TAC does. ``n_centers`` is k' for noun
    selection (``None``: :func:`default_n_centers`, about n / 300, 3K when that is below K);
    ``nouns_per_center`` nouns are kept per center; ``temperature`` is the retrieval softmax
    temperature. ``n_init`` restarts the final k-means (TAC: 20), ``noun_n_init`` the noun
    centers' (TAC: 10); both run 300 iterations. ``dedupe_nouns=False`` (TAC's code) lets every
    noun compete for a center's places; ``True`` (our addition, the earlier default) first drops
    nouns whose embedding repeats an earlier one (:func:`semclust.ops.tac_text.select_nouns`).
    ``kmeans_max_points_per_centroid=256`` (faiss's default, which TAC's scripts keep) trains
    both k-means on a random subsample of 256 points per center when there are more; ``None``
    (ours) trains them on every point.

    Learned: ``labels_``, ``centers_`` (float32[K, 2d], unit-norm, in the concatenated
    space), ``selected_nouns_`` (indices into ``noun_embeddings``),
    ``selected_noun_embeddings_``, ``text_counterparts_`` (float32[n, d]), ``text_centers_``
    (normalised mean ``t_i`` per cluster), ``n_centers_``, ``n_features_in_``; with
    ``noun_names``, ``cluster_nouns_`` (top 5 distinct kept nouns per cluster) and
    ``cluster_names_`` (the first of them, ``""`` for an empty cluster).

    ``predict`` retrieves counterparts for new images from the same kept nouns and assigns
    ``[u ; t]`` to the most cosine-similar center.
    """

    _state_arrays = ("labels_", "centers_", "selected_nouns_", "selected_noun_embeddings_", "text_centers_")
    _state_values = ("n_features_in_", "cluster_names_", "cluster_nouns_", "n_centers_", "image_dim_")

    def __init__(
        self,
        n_clusters: int = 10,
        n_centers: int | None = None,
        nouns_per_center: int = 5,
        temperature: float = DEFAULT_TEMPERATURE,
        n_init: int = CONCAT_KMEANS_RESTARTS,
        noun_n_init: int = NOUN_KMEANS_RESTARTS,
        dedupe_nouns: bool = False,
        kmeans_max_points_per_centroid: int | None = FAISS_MAX_POINTS_PER_CENTROID,
        random_state: int = 0,
    ) -> None:
        self.n_clusters = n_clusters
        self.n_centers = n_centers
        self.nouns_per_center = nouns_per_center
        self.temperature = temperature
        self.n_init = n_init
        self.noun_n_init = noun_n_init
        self.dedupe_nouns = dedupe_nouns
        self.kmeans_max_points_per_centroid = kmeans_max_points_per_centroid
        self.random_state = random_state

    def _noun_restarts(self) -> int:
        return int(self.noun_n_init)

    @renamed_keywords({"image_feats": "image_features"})
    def fit(
        self,
        X: ArrayLike,
        noun_embeddings: ArrayLike | None = None,
        y: ArrayLike | None = None,
        *,
        noun_names: Sequence[str] | None = None,
        image_features: ArrayLike | None = None,
    ) -> TACNoTrain:
        x = self._validate_fit_input(X)
        k = check_n_clusters(self.n_clusters, x.shape[0])
        s = check_noun_embeddings(x, noun_embeddings)
        names = check_noun_names(noun_names, s.shape[0])
        t = self._fit_text_side(x, s)
        image = image_side(x, image_features)
        self.image_dim_ = image.shape[1]
        joint = np.concatenate([image, l2_normalize(t)], axis=1)
        result = spherical_kmeans(
            joint,
            k,
            n_init=self.n_init,
            max_iter=KMEANS_ITER,
            random_state=self.random_state,
            max_points_per_centroid=self.kmeans_max_points_per_centroid,
        )
        self.labels_ = result.labels
        self.centers_ = result.centers
        self.n_features_in_ = x.shape[1]
        self._set_names(t, result.labels, k, names)
        return self

    @renamed_keywords({"image_feats": "image_features"})
    def predict(self, X: ArrayLike, image_features: ArrayLike | None = None) -> np.ndarray:
        """``image_features`` must be given when ``fit`` had them (the same view, new rows)."""
        x = self._validate_predict_input(X)
        t = text_counterparts(x, self.selected_noun_embeddings_, temperature=self.temperature)
        joint = np.concatenate([image_side(x, image_features, self.image_dim_), t], axis=1)
        labels, _ = assign_to_centers(joint, self.centers_, spherical=True)
        return labels


def image_input(features: FeatureSet, image_view: str | None) -> tuple[str, np.ndarray | None]:
    """TAC's image modality: the visual view when the encoder has one (it keeps more class
    information than a bridged joint space), else the joint embeddings themselves (None)."""
    view, rows = features.image_view(image_view)
    return view, (None if view == "joint" else rows)


def tac_inputs(info: Mapping[str, Any]) -> dict[str, str]:
    """``predict(X, image_features)``: the joint view, plus the image view when it was not joint."""
    image_view = info.get("image_view", "joint")
    return {"X": "joint"} if image_view == "joint" else {"X": "joint", "image_features": str(image_view)}


def fit_tac_notrain(
    features: FeatureSet, n_clusters: int, random_state: int, image_view: str | None = None, **options: Any
) -> MethodResult:
    names, nouns = features.noun_vocabulary()
    view, image = image_input(features, image_view)
    estimator = TACNoTrain(n_clusters=n_clusters, random_state=random_state, **options)
    estimator.fit(features.joint, nouns, noun_names=names, image_features=image)
    info = {"n_centers": estimator.n_centers_, "image_view": view}
    return MethodResult(estimator, estimator.labels_, n_clusters, info=info)


SPEC = MethodSpec(
    name="tac-notrain",
    estimator=TACNoTrain,
    fit=fit_tac_notrain,
    summary="TAC without training: k-means on images joined with their WordNet text counterparts",
    predict_args=("X", "image_features"),
    predict_inputs=tac_inputs,
    needs=frozenset({"nouns"}),
    noun_templates="tac",
)
METHOD_SPECS = (SPEC,)
