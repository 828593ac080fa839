"""Clustering methods by name: the :class:`~semclust.methods.spec.MethodSpec` each method
module declares, collected here, and :func:`run_method`, the one way every caller fits one.

Adding a method: a module with its estimator and its spec(s) in ``METHOD_SPECS``, listed in
:data:`METHOD_MODULES` (docs/architecture.md, "How to add a method").
"""

from __future__ import annotations

import os
from importlib import import_module
from typing import Any

import numpy as np

from semclust.methods.spec import FeatureSet, MethodResult, MethodSpec
from semclust.naming import ClusterNaming, name_clusters

__all__ = ["FeatureSet", "MethodResult", "MethodSpec", "METHODS", "get_spec", "run_method", "name_result"]

METHOD_MODULES = (
    "semclust.methods.kmeans",
    "semclust.methods.zeroshot",
    "semclust.methods.tac_notrain",
    "semclust.methods.tac",
    "semclust.methods.laic_notrain",
    "semclust.methods.laic",
    "semclust.methods.scan",
    "semclust.methods.asd.run",
)


def _collect() -> dict[str, MethodSpec]:
    specs: dict[str, MethodSpec] = {}
    for module in METHOD_MODULES:
        for spec in import_module(module).METHOD_SPECS:
            if spec.name in specs:
                raise RuntimeError(f"two methods are called {spec.name!r} ({module})")
            specs[spec.name] = spec
    return specs


METHODS: dict[str, MethodSpec] = _collect()
# Methods that checkpoint their training and can resume from it (tac, laic, scan, asd).
RESUMABLE_METHODS = frozenset(name for name, spec in METHODS.items() if spec.resumable)


def get_spec(name: str) -> MethodSpec:
    """The spec of method ``name``, or a ValueError listing the methods there are."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def spec_for_estimator(class_name: str) -> MethodSpec:
    """The spec whose estimator (or a former name of it) is ``class_name``."""
    for spec in METHODS.values():
        if class_name in spec.estimator_names():
            return spec
    raise ValueError(f"no method has an estimator called {class_name!r}")


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

    ``options`` are the method's parameters (:meth:`MethodSpec.parameters`), already typed;
    an unknown one is a ValueError listing the valid ones. ``checkpoint_dir``/``resume``:
    resumable methods save their training state there and, with ``resume``, continue from
    it; the other methods ignore both.
    """
    spec = get_spec(name)
    if spec.needs_k and n_clusters is None:
        raise ValueError(f"method {name} needs the number of clusters (--k)")
    spec.check_params(options)
    checkpointing: dict[str, Any] = {}
    if spec.resumable:
        checkpointing = {"checkpoint_dir": checkpoint_dir, "resume": resume}
    result = spec.fit(features, n_clusters, random_state, **checkpointing, **options)
    if not spec.names_clusters and name_clusters_with_nouns and features.nouns is not None:
        result.naming = name_result(features, result, centers=spec.names_from_centers)
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
