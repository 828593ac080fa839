"""Semi-supervised algorithms behind a registry: a new algorithm is one file with ``@register``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from semclust.ssl.algorithms.base import SSLAlgorithm

ALGORITHMS: dict[str, type[SSLAlgorithm]] = {}


def register(name: str) -> Callable[[type[SSLAlgorithm]], type[SSLAlgorithm]]:
    """Class decorator: make an :class:`SSLAlgorithm` subclass available as ``name``."""

    def decorate(cls: type[SSLAlgorithm]) -> type[SSLAlgorithm]:
        if name in ALGORITHMS and ALGORITHMS[name] is not cls:
            raise ValueError(f"SSL algorithm {name!r} is already registered")
        ALGORITHMS[name] = cls
        cls.name = name
        return cls

    return decorate


def get_algorithm(name: str) -> type[SSLAlgorithm]:
    """The algorithm class registered as ``name``; ValueError naming the valid ones otherwise."""
    cls = ALGORITHMS.get(name.strip().lower())
    if cls is None:
        raise ValueError(f"unknown SSL algorithm {name!r}; valid names: {', '.join(sorted(ALGORITHMS))}")
    return cls


# Built-in algorithms register themselves on import (after register() exists).
from semclust.ssl.algorithms import cpe, fixmatch, fixmatch_la, metaexpert  # noqa: E402,F401
