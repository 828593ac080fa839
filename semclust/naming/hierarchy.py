"""Naming clusters from a classifier whose classes are WordNet synsets (ImageNet's are).

A cluster's evidence is the mean of its members' class probabilities. Each synset of the
hypernym tree above the classes is credited with the mass of every class below it (each class
once, however many hypernym paths lead up), so "garment" collects jersey + sweatshirt +
trench coat. A synset names cluster ``k`` by its *margin*: the mass it gets from ``k`` minus the
mean mass the other clusters give it (one-vs-rest; or, with ``against="rival"``, the most any
other cluster gives it), so a name every cluster shares ("entity", or a class the classifier
sees everywhere) scores about 0. Among the synsets whose margin
is within ``rho`` of the best, the most specific one (fewest classes below it) is chosen: it
says more while still covering most of what the best name covers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

DEFAULT_RHO = 0.5  # chosen with the temperature on Fashion-MNIST train (benchmarks/naming.py)


@dataclass(frozen=True)
class SynsetTree:
    """The synsets at or above a classifier's classes, and which classes each one covers.

    ``nodes``: node keys (WordNet offsets, or any hashable in a hand-built tree);
    ``cover``: bool ``[n_classes, n_nodes]``, ``cover[c, s]`` when node ``s`` is class ``c``
    or one of its ancestors. The number of classes below a node (``n_below``) measures how
    specific it is.
    """

    nodes: tuple
    cover: np.ndarray

    @property
    def n_below(self) -> np.ndarray:
        return self.cover.sum(axis=0)

    @classmethod
    def from_parents(cls, classes: Sequence, parents: Mapping) -> SynsetTree:
        """Build from class keys and a ``node -> iterable of parent nodes`` map (a DAG)."""
        index: dict = {}
        rows: list[set[int]] = []
        for leaf in classes:
            # breadth-first, in list order: node columns (and so ties) never depend on set order,
            # and every class gets its column before its ancestors
            order = [leaf]
            seen = {leaf}
            for node in order:
                for parent in parents.get(node, ()):
                    if parent not in seen:
                        seen.add(parent)
                        order.append(parent)
            rows.append({index.setdefault(node, len(index)) for node in order})
        cover = np.zeros((len(rows), len(index)), dtype=bool)
        for c, columns in enumerate(rows):
            cover[c, sorted(columns)] = True
        return cls(nodes=tuple(index), cover=cover)


def propagate(class_mass: ArrayLike, tree: SynsetTree) -> np.ndarray:
    """float64 ``[K, n_nodes]``: each node's summed class mass per cluster."""
    mass = np.asarray(class_mass, dtype=np.float64)
    if mass.ndim != 2 or mass.shape[1] != tree.cover.shape[0]:
        raise ValueError(f"class_mass must be [K, {tree.cover.shape[0]}], got shape {mass.shape}")
    return mass @ tree.cover.astype(np.float64)


def margins(coverage: np.ndarray, against: str = "rest") -> np.ndarray:
    """Per node, ``coverage[k]`` minus the other clusters' coverage: their mean (``rest``,
    one-vs-rest) or their maximum (``rival``); a single cluster keeps its coverage."""
    cov = np.asarray(coverage, dtype=np.float64)
    if against not in ("rest", "rival"):
        raise ValueError(f"against must be 'rest' or 'rival', got {against!r}")
    k = cov.shape[0]
    if k == 1:
        return cov.copy()
    if against == "rest":
        return cov - (cov.sum(axis=0, keepdims=True) - cov) / (k - 1)
    order = np.sort(cov, axis=0)
    best, second = order[-1], order[-2]
    # the strongest rival of the cluster holding the maximum is the runner-up; of any other, the maximum
    rival = np.where(cov >= best[None, :], second[None, :], best[None, :])
    return cov - rival


@dataclass(frozen=True)
class Choice:
    node: int  # column of the tree
    margin: float
    coverage: float

    @property
    def relative(self) -> float:
        """``margin / coverage``: 1 when no other cluster supports the name, 0 when the others
        support it as much on average (a score that does not depend on the softmax temperature)."""
        return self.margin / self.coverage if self.coverage > 0 else 0.0


def choose_names(
    coverage: np.ndarray,
    tree: SynsetTree,
    allowed: np.ndarray | None = None,
    top: int = 5,
    rho: float = DEFAULT_RHO,
    against: str = "rest",
) -> list[list[Choice]]:
    """Per cluster, up to ``top`` nodes: first the most specific of those with margin >= ``rho`` x
    the best margin, then the other nodes by decreasing margin. ``allowed`` (bool per node)
    restricts the names (e.g. to a vocabulary of concrete nouns)."""
    if not 0.0 < rho <= 1.0:
        raise ValueError(f"rho must be in (0, 1], got {rho}")
    cov = np.asarray(coverage, dtype=np.float64)
    marg = margins(cov, against)
    ok = np.ones(cov.shape[1], dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
    n_below = tree.n_below
    result: list[list[Choice]] = []
    for k in range(cov.shape[0]):
        columns = np.flatnonzero(ok & (cov[k] > 0))
        if len(columns) == 0:
            result.append([])
            continue
        best = marg[k, columns].max()
        near = columns[marg[k, columns] >= (rho * best if best > 0 else best)]
        # most specific first, then the larger margin, then the tree's order (deterministic)
        first = min(near, key=lambda s: (n_below[s], -marg[k, s], s))
        rest = sorted((s for s in columns if s != first), key=lambda s: (-marg[k, s], n_below[s], s))
        picked = [first, *rest[: max(0, top - 1)]]
        result.append([Choice(int(s), float(marg[k, s]), float(cov[k, s])) for s in picked])
    return result
