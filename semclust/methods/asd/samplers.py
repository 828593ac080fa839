"""ASD's samplers: which ``n_l`` images become the instance classes of a round.

Each sampler is a small object with ``sample(n, n_labelled, rng, exclude, features, seed)`` ->
``(chosen [n_l], neighbours [n_l, n_neighbours])``; the neighbours are extra views of the
same instance (always none for the uniform sampler).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SAMPLERS = ("uniform", "prototype")


def sample_uniform(
    n: int, n_labelled: int, rng: np.random.Generator, exclude: Sequence[int] | np.ndarray = ()
) -> np.ndarray:
    """``n_labelled`` distinct indices of ``range(n)``, none in ``exclude``."""
    pool = np.setdiff1d(np.arange(n), np.asarray(exclude, dtype=np.int64))
    if len(pool) < n_labelled:
        raise ValueError(f"only {len(pool)} images left to sample, need {n_labelled} (too many rounds?)")
    return np.sort(rng.choice(pool, size=n_labelled, replace=False)).astype(np.int64)


def sample_prototypes(
    features: np.ndarray,
    n_labelled: int,
    random_state: int = 0,
    exclude: Sequence[int] | np.ndarray = (),
    n_neighbours: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """k-means with ``n_labelled`` centers; the image nearest each center (not in ``exclude``,
    not already taken). Returns ``(prototypes [n_l], neighbours [n_l, n_neighbours])``; the
    neighbours are each prototype's nearest other images (excluded ones and prototypes left out)."""
    from sklearn.cluster import KMeans

    x = np.asarray(features, dtype=np.float32)
    if len(x) - len(set(map(int, exclude))) < n_labelled:
        raise ValueError(f"only {len(x) - len(exclude)} images left to sample, need {n_labelled}")
    km = KMeans(n_clusters=n_labelled, n_init=3, random_state=random_state).fit(x)
    d2 = (x**2).sum(1)[None, :] - 2.0 * km.cluster_centers_ @ x.T + (km.cluster_centers_**2).sum(1)[:, None]
    banned = np.zeros(len(x), dtype=bool)
    banned[np.asarray(exclude, dtype=np.int64)] = True
    chosen = np.empty(n_labelled, dtype=np.int64)
    for c in range(n_labelled):
        row = np.where(banned, np.inf, d2[c])
        chosen[c] = int(np.argmin(row))
        banned[chosen[c]] = True
    neighbours = np.zeros((n_labelled, 0), dtype=np.int64)
    if n_neighbours > 0:
        px = x[chosen]
        dn = (x**2).sum(1)[None, :] - 2.0 * px @ x.T
        dn[:, banned] = np.inf
        neighbours = np.argsort(dn, axis=1, kind="stable")[:, :n_neighbours].astype(np.int64)
    return chosen, neighbours


@dataclass(frozen=True)
class UniformSampler:
    """``n_l`` images at random, none sampled before (the paper's sampler)."""

    def exclusion(self, sampled: Sequence[np.ndarray], labelled: Sequence[np.ndarray]) -> np.ndarray:
        """Images a new round may not draw: those sampled in earlier rounds."""
        return np.concatenate(sampled) if sampled else np.zeros(0, dtype=np.int64)

    def sample(
        self,
        n: int,
        n_labelled: int,
        rng: np.random.Generator,
        exclude: np.ndarray,
        features: np.ndarray | None = None,
        seed: int = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        return sample_uniform(n, n_labelled, rng, exclude=exclude), np.zeros((n_labelled, 0), dtype=np.int64)


@dataclass(frozen=True)
class PrototypeSampler:
    """The image nearest each of ``n_l`` k-means centers of ``features``, plus ``n_neighbours``
    nearest neighbours of each as extra views of its instance."""

    n_neighbours: int = 0

    def exclusion(self, sampled: Sequence[np.ndarray], labelled: Sequence[np.ndarray]) -> np.ndarray:
        """Images a new round may not draw: earlier rounds' samples and their neighbour views."""
        used = np.concatenate(sampled) if sampled else np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate([used, *labelled])) if labelled else np.unique(used)

    def sample(
        self,
        n: int,
        n_labelled: int,
        rng: np.random.Generator,
        exclude: np.ndarray,
        features: np.ndarray | None = None,
        seed: int = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        if features is None:
            raise ValueError("the prototype sampler needs features, one row per image")
        return sample_prototypes(
            features, n_labelled, random_state=seed, exclude=exclude, n_neighbours=self.n_neighbours
        )


def make_sampler(name: str, n_neighbours: int = 0) -> UniformSampler | PrototypeSampler:
    """The sampler called ``name`` (one of :data:`SAMPLERS`)."""
    if name == "uniform":
        return UniformSampler()
    if name == "prototype":
        return PrototypeSampler(int(n_neighbours))
    raise ValueError(f"unknown sampler {name!r}; expected one of {', '.join(SAMPLERS)}")
