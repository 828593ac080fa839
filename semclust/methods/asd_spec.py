"""ASD's method spec: how the registry fits it from a feature set (the estimator is in asd)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from semclust.methods.spec import PIXELS, FeatureSet, MethodResult, MethodSpec


def fit_asd(
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
        view, sample_features = features.image_view(view)
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


def asd_summary(info: Mapping[str, Any]) -> list[str]:
    purity = info.get("pseudo_label_purity")
    return [
        f"asd: {info['n_labelled']} sampled images, coverage probability {info['coverage_probability']:.4f}"
        + (f", pseudo-label purity {purity:.3f}" if purity is not None else "")
    ]


def _asd_spec() -> MethodSpec:
    from semclust.methods.asd import ASD

    return MethodSpec(
        name="asd",
        estimator=ASD,
        fit=fit_asd,
        summary="ASD: cold-starts FixMatch with no labels (instance pseudo-labels, transitions, grouping)",
        predict_args=("images",),
        predict_inputs=lambda info: {"images": PIXELS},
        needs=frozenset({"images"}),
        resumable=True,
        run_summary=asd_summary,
    )


METHOD_SPECS = (_asd_spec(),)
