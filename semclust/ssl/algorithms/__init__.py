"""Semi-supervised algorithms behind a registry: a new algorithm is one file with ``@register``."""

from __future__ import annotations

from collections.abc import Callable

ALGORITHMS: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator: make an :class:`SSLAlgorithm` subclass available as ``name``."""

    def decorate(cls: type) -> type:
        if name in ALGORITHMS and ALGORITHMS[name] is not cls:
            raise ValueError(f"SSL algorithm {name!r} is already registered")
        ALGORITHMS[name] = cls
        cls.name = name
        return cls

    return decorate


def get_algorithm(name: str) -> type:
    """The algorithm class registered as ``name``; ValueError naming the valid ones otherwise."""
    cls = ALGORITHMS.get(name.strip().lower())
    if cls is None:
        raise ValueError(f"unknown SSL algorithm {name!r}; valid names: {', '.join(sorted(ALGORITHMS))}")
    return cls


# Built-in algorithms register themselves on import (after register() exists).
from semclust.ssl.algorithms import cpe, fixmatch, fixmatch_la, metaexpert  # noqa: E402,F401
