"""semclust: cluster unlabelled images and name the clusters.

The public API in the scikit-learn style::

    import semclust
    labels = semclust.KMeans(n_clusters=10, random_state=0).fit_predict(features)
    run = semclust.cluster("dataset:fashion-mnist:test", method="kmeans", n_clusters=10, out="out1")
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# Heavy modules (torch, transformers) load on first use, so `semclust --help` stays quick.
_EXPORTS = {
    "KMeans": "semclust.methods.kmeans",
    "ZeroShot": "semclust.methods.zeroshot",
    "TAC": "semclust.methods.tac",
    "TACNoTrain": "semclust.methods.tac_notrain",
    "LAIC": "semclust.methods.laic",
    "LAICNoTrain": "semclust.methods.laic_notrain",
    "SCAN": "semclust.methods.scan",
    # deprecated spellings (one release): each warns and answers with the class of the new name
    "KMeansClusterer": "semclust.methods.kmeans",
    "SCANClusterer": "semclust.methods.scan",
    "ZeroShotClusterer": "semclust.methods.zeroshot",
    "ASD": "semclust.methods.asd",
    "FixMatch": "semclust.ssl.estimators",
    "FixMatchLA": "semclust.ssl.estimators",
    "CPE": "semclust.ssl.estimators",
    "MetaExpert": "semclust.ssl.estimators",
    "run_longtail": "semclust.ssl.experiment",
    "run_ssl": "semclust.ssl.experiment",
    "folder_data": "semclust.ssl.experiment",
    "balanced_data": "semclust.ssl.experiment",
    "longtail_data": "semclust.ssl.experiment",
    "evaluate": "semclust.metrics",
    "load": "semclust.outputs.model",
    "get_encoder": "semclust.encoders.registry",
    "open_source": "semclust.data.registry",
    "FeatureStore": "semclust.store.feature_store",
    "embed": "semclust.workflow",
    "cluster": "semclust.workflow",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'semclust' has no attribute {name!r}")
