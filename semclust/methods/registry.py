"""Clustering methods by name, each built from the same :class:`FeatureSet`.

A method is a function ``(features, n_clusters, random_state, **options) -> MethodResult``;
adding one means adding a file with its estimator and one entry here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from semclust.methods.kmeans import KMeansClusterer
from semclust.methods.laic import LAIC, LAICNoTrain
from semclust.methods.scan import SCANClusterer
from semclust.methods.tac import TAC, TACNoTrain
from semclust.methods.zeroshot import ZeroShotClusterer, build_class_embeddings
from semclust.naming import ClusterNaming, name_clusters

DEFAULT_TEMPLATES = ("a photo of a {}.",)
# Methods that checkpoint their training (tac, laic, scan after every epoch; asd every
# ``checkpoint_every`` steps of each stage) and can resume from it.
RESUMABLE_METHODS = frozenset({"tac", "laic", "scan", "asd"})


@dataclass
class FeatureSet:
    """Everything a method may read: embeddings per view, and the text tower of their space."""

    joint: np.ndarray
    visual: np.ndarray | None = None
    labels: np.ndarray | None = None
    class_names: Sequence[str] | None = None
    encode_texts: Callable[[Sequence[str]], np.ndarray] | None = None
    nouns: Callable[[], tuple[list[str], np.ndarray]] | None = None
    encoder: Callable[[], Any] | None = None
    progress: Callable[[str, int], Callable[..., None]] | None = None
    # uint8 images [n,H,W] or [n,H,W,3] aligned with the rows above, and their ids (methods that
    # train on pixels, e.g. asd); None when the source is not at hand (a feature-store directory).
    images: Callable[[], tuple[np.ndarray, list[str]]] | None = None
    # The vocabulary's WordNet synset ids ("" for a user's nouns) and, for an encoder with an
    # ImageNet classifier (offline), its class probabilities per row: what naming reads.
    noun_synset_ids: Callable[[], list[str]] | None = None
    class_probabilities: Callable[[], np.ndarray] | None = None

    def text_tower(self) -> Any:
        """The frozen text model that prompt learning runs through."""
        if self.encoder is None:
            raise ValueError("prompt-learned centers need the encoder's text tower")
        encoder = self.encoder()
        return getattr(encoder, "text_tower", encoder)

    def epoch_callback(self, description: str, epochs: int) -> Callable[[int, float], None] | None:
        if self.progress is None:
            return None
        advance = self.progress(description, epochs)
        return lambda epoch, loss: advance(1, f"loss {loss:.4f}")

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
    naming: ClusterNaming | None = None  # the names' scores, weak flags and (laic) center nouns


def _kmeans(
    features: FeatureSet, n_clusters: int, random_state: int, view: str | None = None, n_init: int = 5
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
) -> MethodResult:
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
    estimator = ZeroShotClusterer(class_embeddings=class_embeddings)
    labels = estimator.fit_predict(features.joint)
    return MethodResult(
        estimator,
        labels,
        len(names),
        cluster_names=[[n] for n in names],
        info={"templates": list(templates), "class_names": names},
    )


def _joint_and_nouns(features: FeatureSet) -> tuple[np.ndarray, list[str], np.ndarray]:
    names, embeddings = features.noun_vocabulary()
    return features.joint, names, embeddings


def _image_view(features: FeatureSet, image_view: str | None) -> tuple[str, np.ndarray | None]:
    """TAC's image modality: the visual view when the encoder has one (it keeps more class
    information than a bridged joint space), else the joint embeddings themselves."""
    view = image_view or ("visual" if features.visual is not None else "joint")
    return view, (None if view == "joint" else features.view(view))


def _tac_notrain(
    features: FeatureSet, n_clusters: int, random_state: int, image_view: str | None = None, **options: Any
) -> MethodResult:
    joint, names, nouns = _joint_and_nouns(features)
    view, image = _image_view(features, image_view)
    estimator = TACNoTrain(n_clusters=n_clusters, random_state=random_state, **options)
    estimator.fit(joint, nouns, noun_names=names, image_feats=image)
    info = {"n_centers": estimator.n_centers_, "image_view": view}
    return MethodResult(estimator, estimator.labels_, n_clusters, info=info)


def _tac(
    features: FeatureSet,
    n_clusters: int,
    random_state: int,
    image_view: str | None = None,
    *,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    **options: Any,
) -> MethodResult:
    joint, names, nouns = _joint_and_nouns(features)
    view, image = _image_view(features, image_view)
    estimator = TAC(n_clusters=n_clusters, random_state=random_state, **options)
    on_epoch = features.epoch_callback("training tac", estimator.epochs)
    estimator.fit(
        joint,
        nouns,
        noun_names=names,
        on_epoch=on_epoch,
        image_feats=image,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
    )
    info = {"n_centers": estimator.n_centers_, "image_view": view, "final_loss": estimator.loss_history_[-1]}
    return MethodResult(estimator, estimator.labels_, n_clusters, info=info)


def _laic_notrain(features: FeatureSet, n_clusters: int, random_state: int, **options: Any) -> MethodResult:
    joint, names, nouns = _joint_and_nouns(features)
    estimator = LAICNoTrain(n_clusters=n_clusters, random_state=random_state, **options)
    estimator.fit(joint, nouns, noun_names=names)
    return MethodResult(estimator, estimator.labels_, n_clusters, info={"n_centers": estimator.n_centers_})


def _laic(
    features: FeatureSet,
    n_clusters: int,
    random_state: int,
    *,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    **options: Any,
) -> MethodResult:
    joint, names, nouns = _joint_and_nouns(features)
    estimator = LAIC(n_clusters=n_clusters, random_state=random_state, **options)
    tower = features.text_tower() if estimator.centers == "prompt" else None
    on_epoch = features.epoch_callback(f"training laic ({estimator.centers} centers)", estimator.epochs)
    # Labels only measure neighbour purity for the report; training never reads them.
    estimator.fit(
        joint,
        nouns,
        noun_names=names,
        visual_feats=features.visual,
        text_tower=tower,
        y=features.labels,
        on_epoch=on_epoch,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
    )
    info: dict[str, Any] = {"final_loss": estimator.loss_history_[-1], "initial_names": estimator.initial_names_}
    if estimator.neighbour_purity_ is not None:
        info["neighbour_purity"] = estimator.neighbour_purity_
    return MethodResult(estimator, estimator.labels_, n_clusters, cluster_names=estimator.cluster_nouns_, info=info)


def _scan(
    features: FeatureSet,
    n_clusters: int,
    random_state: int,
    view: str | None = None,
    *,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    **options: Any,
) -> MethodResult:
    # Image-only, like k-means: neighbours are mined where the image features keep most class information.
    view = view or ("visual" if features.visual is not None else "joint")
    estimator = SCANClusterer(n_clusters=n_clusters, random_state=random_state, **options)
    on_epoch = features.epoch_callback(
        "training scan heads", estimator.epochs + (estimator.self_label_epochs if estimator.self_label else 0)
    )
    estimator.fit(features.view(view), on_epoch=on_epoch, checkpoint_dir=checkpoint_dir, resume=resume)
    info = {
        "view": view,
        "best_head": int(estimator.best_head_),
        "head_losses": list(map(float, estimator.head_losses_)),
    }
    return MethodResult(estimator, estimator.labels_, n_clusters, info=info)


def _asd(
    features: FeatureSet,
    n_clusters: int,
    random_state: int,
    view: str | None = None,
    flip: bool | None = None,
    *,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    **options: Any,
) -> MethodResult:
    from semclust.methods.asd import ASD

    if features.images is None:
        raise ValueError(
            "asd trains on the images themselves: cluster an image folder or dataset:NAME, not a feature store"
        )
    images, _ = features.images()
    if flip is None:
        flip = min(images.shape[1], images.shape[2]) >= 16  # tiny symbols (8x8 digits): a mirror is another symbol
    sample_features = None
    if options.get("sampler") == "prototype" or options.get("similarity", "transitions") != "transitions":
        view = view or ("visual" if features.visual is not None else "joint")
        sample_features = features.view(view)
    estimator = ASD(n_clusters=n_clusters, random_state=random_state, flip=flip, **options)
    # Labels only measure the purity of the sampled images' cluster labels; training never reads them.
    estimator.fit(
        images,
        y=features.labels,
        features=sample_features,
        progress=features.progress,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
    )
    info: dict[str, Any] = {
        "n_labelled": estimator.n_labelled_,
        "coverage_probability": estimator.coverage_probability_,
        "sampler": estimator.sampler,
        "sampler_view": view if sample_features is not None else None,
        "grouping": estimator.grouping,
        "similarity": estimator.similarity,
        "keep_confident": estimator.keep_confident,
        "similarity_view": view if estimator.similarity != "transitions" else None,
        "flip": bool(flip),
        "image_shape": list(estimator.image_shape_),
        "mu_used": dict(estimator.mu_),  # FixMatch's mu per stage (sized to n unless --param mu=...)
        "transitions_counted": int(estimator.transitions_.sum()),
        "co_predictions_used": estimator.co_predictions_used_,
        "sampled_indices": [int(i) for i in estimator.sampled_indices_],
        "instance_groups": [int(g) for g in estimator.instance_groups_],
    }
    if estimator.pseudo_label_purity_ is not None:
        info["pseudo_label_purity"] = estimator.pseudo_label_purity_
        info["labelled_purity"] = estimator.labelled_purity_
        info["classes_covered"] = estimator.classes_covered_
    return MethodResult(estimator, estimator.labels_, n_clusters, info=info)


METHODS: dict[str, Callable[..., MethodResult]] = {
    "kmeans": _kmeans,
    "zeroshot": _zeroshot,
    "tac-notrain": _tac_notrain,
    "tac": _tac,
    "laic-notrain": _laic_notrain,
    "laic": _laic,
    "scan": _scan,
    "asd": _asd,
}


def run_method(
    name: str,
    features: FeatureSet,
    n_clusters: int | None,
    random_state: int = 0,
    *,
    name_clusters_with_nouns: bool = True,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    **options: Any,
) -> MethodResult:
    """Fit method ``name``; clusters a method does not name itself get their nearest nouns.

    ``checkpoint_dir``/``resume``: methods in :data:`RESUMABLE_METHODS` save their training
    state there (after every epoch; asd every ``checkpoint_every`` steps of each stage) and,
    with ``resume``, continue from it; the other methods ignore both.
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
    if name != "zeroshot" and n_clusters is None:
        raise ValueError(f"method {name} needs the number of clusters (--k)")
    reserved = sorted({"checkpoint_dir", "resume"} & set(options))
    if reserved:
        raise ValueError(f"method {name} has no parameter {reserved[0]} (the run directory holds the checkpoint)")
    checkpointing: dict[str, Any] = {}
    if name in RESUMABLE_METHODS:
        checkpointing = {"checkpoint_dir": checkpoint_dir, "resume": resume}
    try:
        result = METHODS[name](features, n_clusters, random_state, **checkpointing, **options)
    except TypeError as err:
        if "unexpected keyword argument" not in str(err):
            raise
        bad = str(err).split("argument")[-1].strip()
        raise ValueError(f"method {name} has no parameter {bad}") from None
    # zeroshot's clusters are the class names it was given; every other method is named here
    if name != "zeroshot" and name_clusters_with_nouns and features.nouns is not None:
        result.naming = name_result(features, result, centers=name == "laic")
        result.cluster_names = result.naming.as_lists()
    return result


def name_result(features: FeatureSet, result: MethodResult, top: int = 5, centers: bool = False) -> ClusterNaming:
    """Scored names for ``result``'s clusters (:func:`semclust.naming.name_clusters`); with
    ``centers``, the estimator's text-space ``centers_`` get their nouns and hub flags too."""
    text_centers = getattr(result.estimator, "centers_", None) if centers else None
    return name_clusters(
        result.labels,
        result.n_clusters,
        joint=features.joint,
        class_probabilities=features.class_probabilities,
        vocabulary_ids=features.noun_synset_ids() if features.noun_synset_ids is not None else None,
        nouns=features.noun_vocabulary,
        centers=None if text_centers is None else np.asarray(text_centers),
        top=top,
    )
