"""Checks on ASD's parameters (before a fit) and on a saved model's learned values (before its
network is rebuilt)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from semclust.methods.asd.frozen import BACKBONES
from semclust.methods.asd.samplers import SAMPLERS
from semclust.methods.asd.similarity import GROUPINGS, SIMILARITIES


def check_saved_values(params: dict[str, Any], values: dict[str, Any], names: Sequence[str]) -> None:
    """ValueError naming the first learned value of a saved ASD that is missing or malformed."""
    required = [n for n in names if n not in ("n_features_in_", "cluster_names_", "backbone_", "encoder_config_")]
    missing = [name for name in required if name not in values]
    if missing:
        raise ValueError(f"ASD: missing learned values {missing}")
    in_channels = values["in_channels_"]
    input_shape, image_shape = values["input_shape_"], values["image_shape_"]
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"ASD: in_channels_ must be a positive integer, got {in_channels!r}")
    for name, shape in (("input_shape_", input_shape), ("image_shape_", image_shape)):
        if (
            not isinstance(shape, list)
            or len(shape) not in (2, 3)
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)
        ):
            raise ValueError(f"ASD: {name} must be [H, W] or [H, W, C] of positive integers, got {shape!r}")
    if (1 if len(image_shape) == 2 else image_shape[2]) != in_channels:
        raise ValueError(f"ASD: image_shape_ {image_shape} does not have {in_channels} channel(s)")
    for name in ("mean_", "std_"):
        stats = values[name]
        if (
            not isinstance(stats, list)
            or len(stats) != in_channels
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in stats)
        ):
            raise ValueError(f"ASD: {name} must be {in_channels} finite number(s), got {stats!r}")
    if not isinstance(params.get("network"), str):
        raise ValueError(f"ASD: network must be a name, got {params.get('network')!r}")


def check_params(est: Any) -> None:
    """ValueError naming the first parameter of ``est`` (an :class:`ASD`) that is out of range."""
    if est.sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {est.sampler!r}; expected one of {', '.join(SAMPLERS)}")
    if est.grouping not in GROUPINGS:
        raise ValueError(f"unknown grouping {est.grouping!r}; expected one of {', '.join(GROUPINGS)}")
    if not isinstance(est.keep_confident, (int, float)) or not 0.0 < float(est.keep_confident) <= 1.0:
        raise ValueError(f"keep_confident must be in (0, 1], got {est.keep_confident!r}")
    if est.similarity not in SIMILARITIES:
        raise ValueError(f"unknown similarity {est.similarity!r}; expected one of {', '.join(SIMILARITIES)}")
    if not isinstance(est.n_clusters, (int, np.integer)) or est.n_clusters < 2:
        raise ValueError(f"n_clusters must be an integer of at least 2, got {est.n_clusters!r}")
    if est.transition_window is not None and not 0.0 < float(est.transition_window) <= 1.0:
        raise ValueError(f"transition_window must be in (0, 1], got {est.transition_window}")
    positive = ("instance_steps", "ssl_steps", "record_every", "rounds", "batch_size", "mu", "max_tracked")
    for name in (*positive, "checkpoint_every"):
        if name in ("mu", "max_tracked") and getattr(est, name) is None:
            continue
        if int(getattr(est, name)) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(est, name)}")
    if est.n_neighbours < 0:
        raise ValueError(f"n_neighbours must be >= 0, got {est.n_neighbours}")
    if est.backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {est.backbone!r}; expected one of {', '.join(BACKBONES)}")
    if isinstance(est.hidden, bool) or not isinstance(est.hidden, (int, np.integer)) or est.hidden < 0:
        raise ValueError(f"hidden must be an integer >= 0, got {est.hidden!r}")
    if est.co_prediction not in (True, False, "auto"):
        raise ValueError(f"co_prediction must be true, false or 'auto', got {est.co_prediction!r}")
