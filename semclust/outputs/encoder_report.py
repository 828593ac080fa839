"""How much class information an encoder's views keep: the bridge report.

For labelled images: kNN-10 purity in the visual and joint views, zero-shot accuracy with
the dataset's class names, spherical k-means ACC/NMI/ARI in each view, and images/s.

Every offline bridge variant is a function of the visual tower's (features, logits), so
:func:`evaluate_bridge` embeds once and scores any number of variants from that one pass.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from PIL import Image

from semclust.encoders.base import Encoder, l2_normalize
from semclust.methods.zeroshot import build_class_embeddings
from semclust.metrics import evaluate
from semclust.ops.kmeans import spherical_kmeans
from semclust.ops.knn import knn, neighbour_purity

if TYPE_CHECKING:
    from semclust.encoders.offline import OfflineEncoder

ZEROSHOT_TEMPLATES = ["a photo of a {}."]


def view_metrics(
    view: np.ndarray,
    labels: np.ndarray,
    *,
    k: int = 10,
    n_clusters: int | None = None,
    seed: int = 0,
    n_init: int = 3,
) -> dict[str, float]:
    """kNN-k purity and spherical k-means ACC/NMI/ARI (k-means with the true number of classes)."""
    labels = np.asarray(labels)
    n_clusters = n_clusters or len(np.unique(labels[labels >= 0]))
    k = min(k, len(labels) - 1)
    km = evaluate(labels, spherical_kmeans(view, n_clusters, n_init=n_init, random_state=seed).labels)
    return {
        f"knn{k}_purity": neighbour_purity(knn(view, k)[0], labels),
        "kmeans_acc": km["acc"],
        "kmeans_nmi": km["nmi"],
        "kmeans_ari": km["ari"],
    }


def zeroshot_accuracy(joint: np.ndarray, labels: np.ndarray, class_embeddings: np.ndarray) -> float:
    labels = np.asarray(labels)
    known = labels >= 0
    predicted = (l2_normalize(joint) @ l2_normalize(class_embeddings).T).argmax(axis=1)
    return float((predicted[known] == labels[known]).mean())


def score_views(
    visual: np.ndarray,
    joint: np.ndarray,
    labels: np.ndarray,
    class_embeddings: np.ndarray | None,
    *,
    k: int = 10,
    seed: int = 0,
    n_init: int = 3,
    visual_scores: dict[str, float] | None = None,
) -> dict[str, float]:
    """One flat record: ``<metric>_visual``, ``<metric>_joint``, ``zeroshot_acc`` and, for
    convenience, ``acc``/``nmi``/``ari`` = k-means in the joint view."""
    record: dict[str, float] = {}
    visual_scores = visual_scores or view_metrics(visual, labels, k=k, seed=seed, n_init=n_init)
    joint_scores = view_metrics(joint, labels, k=k, seed=seed, n_init=n_init)
    record.update({f"{key}_visual": value for key, value in visual_scores.items()})
    record.update({f"{key}_joint": value for key, value in joint_scores.items()})
    record["acc"], record["nmi"], record["ari"] = (
        joint_scores["kmeans_acc"],
        joint_scores["kmeans_nmi"],
        joint_scores["kmeans_ari"],
    )
    if class_embeddings is not None:
        record["zeroshot_acc"] = zeroshot_accuracy(joint, labels, class_embeddings)
    return record


def embed_once(encoder: Encoder, images: Sequence[Image.Image]) -> dict[str, Any]:
    """One forward pass: ``features``/``logits`` for offline encoders (any bridge can be applied
    afterwards), else the encoder's ``views``; plus ``images_per_s``."""
    start = time.perf_counter()
    if hasattr(encoder, "visual_and_logits"):
        features, logits = encoder.visual_and_logits(images)
        out: dict[str, Any] = {"features": features, "logits": logits}
    else:
        out = {"views": encoder.image_views(images)}
    elapsed = time.perf_counter() - start
    out["images_per_s"] = len(images) / elapsed if elapsed > 0 else float("nan")
    out["embed_s"] = elapsed
    return out


def evaluate_bridge(
    encoder: Encoder,
    labels: Sequence[int] | np.ndarray,
    class_names: Sequence[str] | None,
    *,
    images: Sequence[Image.Image] | None = None,
    features: np.ndarray | None = None,
    logits: torch.Tensor | np.ndarray | None = None,
    variants: Sequence[dict[str, Any]] | None = None,
    k: int = 10,
    seed: int = 0,
    n_init: int = 3,
    templates: Sequence[str] = tuple(ZEROSHOT_TEMPLATES),
) -> list[dict[str, Any]]:
    """Score ``encoder`` (and, for the offline encoder, bridge ``variants`` of it) on labelled data.

    Give ``images`` (embedded once here, timed) or the offline visual tower's raw ``features``
    and ``logits`` from an earlier pass. ``variants`` are option dicts for
    ``OfflineEncoder.with_bridge`` (e.g. ``{"bridge": "linear", "bridge_lambda": 1.0}``);
    ``None`` scores the encoder as configured. Returns one record per variant with the
    encoder's bridge description, ``images_per_s`` (when it embedded) and the metrics of
    :func:`score_views`. Zero-shot uses ``class_names`` in ``templates``.
    """
    labels = np.asarray(labels)
    extra: dict[str, Any] = {}
    views: dict[str, np.ndarray] | None = None
    if images is not None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        embedded = embed_once(encoder, images)
        features, logits, views = embedded.get("features"), embedded.get("logits"), embedded.get("views")
        extra = {"images_per_s": embedded["images_per_s"], "embed_s": embedded["embed_s"]}
    elif features is None or logits is None:
        raise ValueError("evaluate_bridge needs images, or both features and logits")
    # Set whenever ``views`` is None (an offline encoder embedded, or given by the caller).
    features = cast(np.ndarray, features)
    if views is None and len(features) != len(labels):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
    if views is not None and variants:
        raise ValueError(f"bridge variants need the offline encoder, got {type(encoder).__name__}")

    class_embeddings = (
        build_class_embeddings(encoder.encode_texts, list(class_names), list(templates)) if class_names else None
    )
    if views is not None:
        visual = views.get("visual", views["joint"])
        record = score_views(visual, views["joint"], labels, class_embeddings, k=k, seed=seed, n_init=n_init)
        return [{"encoder": encoder.config().get("spec", encoder.name), **extra, **record}]

    visual = l2_normalize(features)
    visual_scores = view_metrics(visual, labels, k=k, seed=seed, n_init=n_init)
    logits_t = torch.as_tensor(logits)
    records = []
    offline = cast("OfflineEncoder", encoder)  # only the offline encoder yields features/logits
    for options in variants or [{}]:
        variant = offline.with_bridge(**options) if options else offline
        start = time.perf_counter()
        joint = variant.joint_from(features, logits_t)
        bridge_s = time.perf_counter() - start
        record = score_views(
            visual, joint, labels, class_embeddings, k=k, seed=seed, n_init=n_init, visual_scores=visual_scores
        )
        records.append(
            {
                "options": variant.config()["options"],
                "bridge": variant.bridge_description(),
                "n": int(len(labels)),
                **extra,
                "bridge_s": bridge_s,
                **record,
            }
        )
    return records
