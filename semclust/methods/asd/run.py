"""ASD as a cluster run: from a :class:`~semclust.methods.registry.FeatureSet` to a
:class:`~semclust.methods.registry.MethodResult` (what ``semclust cluster --method asd`` runs).

``backbone`` (``--param backbone=...``): ``"auto"`` (default) is ``"frozen"`` when the run's
encoder has a visual view and ``"scratch"`` otherwise. Frozen: the images' ``n_weak`` weak and
``n_strong`` strong augmentations are embedded once by the run's encoder into view stores under
``$SEMCLUST_CACHE/views/`` (reused by later runs on the same images, resumed after a kill), and
ASD trains heads over the visual view; the saved model embeds new images with that encoder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from semclust.methods.spec import PIXELS, FeatureSet, MethodResult, MethodSpec
from semclust.ssl.views import CachedViews

VIEWS_DIR = "views"
# Cached views per kind: each is one more encoder pass over every image (at ~30-70 images/s on
# 2 shared cores, 10k images x 2 x 2 views take 10-20 minutes); more are a --param away.
DEFAULT_VIEWS = 2


def frozen_inputs(
    features: FeatureSet,
    images: np.ndarray,
    *,
    n_weak: int = DEFAULT_VIEWS,
    n_strong: int = DEFAULT_VIEWS,
    seed: int = 0,
    flip: bool = True,
    view: str = "visual",
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[np.ndarray, CachedViews, Any]:
    """``(features of view, cached views, encoder)`` for a frozen-backbone fit on ``images``."""
    from semclust.cache import default_cache_dir
    from semclust.data.base import ArraySource
    from semclust.ssl.views import build_views, views_directory

    if features.encoder is None:
        raise ValueError("backbone='frozen' needs the run's encoder to embed the augmented views")
    encoder = features.encoder()
    pixels = np.ascontiguousarray(images)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir() / VIEWS_DIR
    directory = views_directory(root, pixels, encoder, seed, flip)
    total = len(pixels) * (int(n_weak) + int(n_strong))
    advance = features.progress(f"embedding {total} augmented views", total) if features.progress else None
    views = build_views(
        ArraySource(pixels, name="asd-images"),
        encoder,
        directory,
        n_weak=n_weak,
        n_strong=n_strong,
        seed=seed,
        flip=flip,
        view=view,
        on_progress=advance,
    )
    return features.view(view), views, encoder


def run_asd(
    features: FeatureSet,
    n_clusters: int,
    random_state: int,
    view: str | None = None,
    flip: bool | None = None,
    *,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    n_weak: int = DEFAULT_VIEWS,
    n_strong: int = DEFAULT_VIEWS,
    **options: Any,
) -> MethodResult:
    """The registry's ``asd``: fit :class:`ASD` on the run's images (scratch) or on its visual
    features and their cached views (frozen); the record's ``info`` names what it did."""
    from semclust.methods.asd.estimator import ASD

    if features.images is None:
        raise ValueError(
            "asd trains on the images themselves: cluster an image folder or dataset:NAME, not a feature store"
        )
    images, _ = features.images()
    if flip is None:
        flip = min(images.shape[1], images.shape[2]) >= 16  # tiny symbols (8x8 digits): a mirror is another symbol
    backbone = options.pop("backbone", "auto")
    if backbone == "auto":
        backbone = "frozen" if features.visual is not None else "scratch"
    estimator = ASD(n_clusters=n_clusters, random_state=random_state, flip=flip, backbone=backbone, **options)
    fit_args: dict[str, Any] = {}
    sample_features = None
    if backbone == "frozen":
        if features.visual is None:
            raise ValueError("backbone='frozen' needs an encoder with a visual view")
        view = "visual"
        sample_features, views, encoder = frozen_inputs(
            features, images, n_weak=n_weak, n_strong=n_strong, seed=random_state, flip=flip
        )
        fit_args = {"views": views, "encoder": encoder}
    elif options.get("sampler") == "prototype" or options.get("similarity", "transitions") != "transitions":
        view = view or ("visual" if features.visual is not None else "joint")
        sample_features = features.view(view)
    # Labels only measure the purity of the sampled images' cluster labels; training never reads them.
    estimator.fit(
        images,
        y=features.labels,
        features=sample_features,
        progress=features.progress,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        **fit_args,
    )
    return MethodResult(
        estimator,
        estimator.labels_,
        n_clusters,
        info=run_info(estimator, view if sample_features is not None else None, bool(flip)),
    )


def run_info(estimator: Any, view: str | None, flip: bool) -> dict[str, Any]:
    """What a run record says about an ASD fit; ``view``: the features it read, if any."""
    frozen = estimator.backbone_ == "frozen"
    info: dict[str, Any] = {
        "backbone": estimator.backbone_,
        "n_labelled": estimator.n_labelled_,
        "coverage_probability": estimator.coverage_probability_,
        "sampler": estimator.sampler,
        "sampler_view": view,
        "grouping": estimator.grouping,
        "similarity": estimator.similarity,
        "keep_confident": estimator.keep_confident,
        "similarity_view": view if estimator.similarity != "transitions" else None,
        "flip": flip,
        "image_shape": None if frozen else list(estimator.image_shape_),
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
    return info


def asd_summary(info: Mapping[str, Any]) -> list[str]:
    """The line the CLI prints after an asd run."""
    purity = info.get("pseudo_label_purity")
    return [
        f"asd ({info.get('backbone', 'scratch')} backbone): {info['n_labelled']} sampled images, coverage probability "
        f"{info['coverage_probability']:.4f}" + (f", pseudo-label purity {purity:.3f}" if purity is not None else "")
    ]


def _asd_spec() -> MethodSpec:
    from semclust.methods.asd.estimator import ASD

    return MethodSpec(
        name="asd",
        estimator=ASD,
        fit=run_asd,
        summary="ASD: cold-starts FixMatch with no labels (instance pseudo-labels, transitions, grouping)",
        predict_inputs=lambda info: {"X": PIXELS},  # the images themselves (a frozen model embeds them)
        needs=frozenset({"images"}),
        resumable=True,
        run_summary=asd_summary,
    )


METHOD_SPECS = (_asd_spec(),)
