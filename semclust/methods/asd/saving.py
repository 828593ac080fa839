"""Checks on the learned values of a saved ASD model before its network is rebuilt."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


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
