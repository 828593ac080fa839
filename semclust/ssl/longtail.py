"""Long-tailed semi-supervised protocols: class counts, seeded splits, head/medium/tail groups.

Labelled counts follow ``N_c = floor(N1 * gamma^(-r/(C-1)))`` for the class at tail rank ``r``
(``r = 0`` is the most frequent class). The unlabelled counts use ``M1`` and ``gamma_u`` the
same way: ``gamma_u = gamma_l`` is the consistent setting, ``gamma_u = 1`` uniform, and a
negative ``gamma_u`` (or ``reverse=True``) reverses the order (the labelled head becomes the
unlabelled tail). Which class sits at which rank is ``class_order``: a seeded random permutation
by default, so the tail is not simply the last class indices.

Head/medium/tail groups are computed from (estimated) class frequencies, never from class
indices (our improvement: the reference code cuts at class indices, which coincide with the
frequency ranks only when the tail is the last indices). The default split is the reference's:
Meta-Expert/CPE cut at 2 and 4 for ten classes (2/2/6), here the first ``round(C / 5)`` ranks
head, the next ``round(C / 5)`` medium, the rest tail. ``split="thirds"`` (our earlier choice)
gives ``C // 3`` / ``C // 3`` / rest (3/3/4 for ten).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

GROUP_NAMES = ("head", "medium", "tail")
SPLIT_FORMAT = 1


def longtail_counts(n1: int, gamma: float, n_classes: int, reverse: bool = False) -> list[int]:
    """``[N_0, ..., N_{C-1}]`` by tail rank: ``floor(n1 * |gamma|^(-r/(C-1)))``.

    ``gamma = 1`` gives ``n1`` for every rank; ``gamma < 0`` or ``reverse=True`` returns the
    list reversed (rank 0 gets the smallest count). The last rank gets exactly
    ``floor(n1 / |gamma|)`` (no floating-point loss at the end point).
    """
    n_classes, n1 = int(n_classes), int(n1)
    if n_classes < 1:
        raise ValueError(f"n_classes must be at least 1, got {n_classes}")
    if n1 < 0:
        raise ValueError(f"n1 must be non-negative, got {n1}")
    g = abs(float(gamma))
    if not math.isfinite(g) or g < 1.0:
        raise ValueError(f"imbalance ratio |gamma| must be >= 1, got {gamma}")
    counts = []
    for r in range(n_classes):
        if n_classes == 1 or r == 0:
            counts.append(n1)
            continue
        exact = n1 * g ** (-r / (n_classes - 1))
        counts.append(int(math.floor(exact + 1e-9)))
    if gamma < 0 or reverse:
        counts = counts[::-1]
    return counts


GROUP_SPLITS = ("reference", "thirds")


def group_sizes(n_classes: int, split: str = "reference") -> tuple[int, int, int]:
    """``(head, medium, tail)`` class counts of a head/medium/tail split of ``n_classes`` classes.

    ``"reference"`` (default): Meta-Expert's and CPE's cut points 2 and 4 of ten classes
    (``--cut1 2 --cut2 4``), i.e. ``round(C / 5)`` head and ``round(C / 5)`` medium classes
    (2/2/6). ``"thirds"``: ``C // 3`` head, ``C // 3`` medium (3/3/4). Head is never empty.
    """
    c = int(n_classes)
    if c < 2:
        raise ValueError("need at least two classes for head/medium/tail groups")
    if split == "reference":
        n_head, n_med = max(1, int(round(c / 5))), int(round(c / 5))
    elif split == "thirds":
        n_head, n_med = max(1, c // 3), (c // 3 if c >= 3 else 0)
    else:
        raise ValueError(f"unknown group split {split!r}; choose one of {', '.join(GROUP_SPLITS)}")
    n_med = min(n_med, c - n_head)
    return n_head, n_med, c - n_head - n_med


def class_groups(counts: Sequence[float] | np.ndarray, split: str = "reference") -> np.ndarray:
    """Group id per class (0 head, 1 medium, 2 tail) from class frequencies (not indices).

    Classes are ranked by frequency (ties by class index); the group sizes are
    :func:`group_sizes` (``"reference"``: 2/2/6 for ten classes; ``"thirds"``: 3/3/4).
    """
    counts = np.asarray(counts, dtype=np.float64)
    c = len(counts)
    n_head, n_med, _ = group_sizes(c, split)
    rank = np.argsort(-counts, kind="stable")
    groups = np.full(c, 2, dtype=np.int64)
    groups[rank[:n_head]] = 0
    groups[rank[n_head : n_head + n_med]] = 1
    return groups


def estimate_class_counts(y: Any, num_classes: int) -> np.ndarray:
    """Labelled class counts (int64, length ``num_classes``; negative labels ignored)."""
    y = np.asarray(y, dtype=np.int64)
    return np.bincount(y[y >= 0], minlength=int(num_classes)).astype(np.int64)[: int(num_classes)]


def log_prior(counts: Sequence[float] | np.ndarray) -> np.ndarray:
    """``log`` of the class frequencies; a class with no labelled example counts as one."""
    counts = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    return np.log(counts / counts.sum())


def group_accuracies(
    y: Any, pred: Any, groups: Sequence[int] | np.ndarray, prefix: str = ""
) -> dict[str, float | None]:
    """``{prefix}head_acc``, ``medium_acc``, ``tail_acc``: top-1 accuracy on the test items of each group."""
    y, pred, groups = np.asarray(y), np.asarray(pred), np.asarray(groups)
    known = y >= 0
    out: dict[str, float | None] = {}
    for g, name in enumerate(GROUP_NAMES):
        sel = known.copy()
        sel[known] = groups[y[known]] == g
        out[f"{prefix}{name}_acc"] = float((pred[sel] == y[sel]).mean()) if sel.any() else None
    return out


@dataclass
class LongTailSplit:
    """A long-tailed labelled/unlabelled split; :meth:`to_dict` is JSON-ready and reproduces it."""

    labelled: np.ndarray
    unlabelled: np.ndarray
    class_order: list[int]
    labelled_counts: list[int]
    unlabelled_counts: list[int]
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def groups(self) -> np.ndarray:
        """Head/medium/tail per class from the labelled counts of this split."""
        return class_groups(self.labelled_counts)

    def to_dict(self, with_indices: bool = True) -> dict[str, Any]:
        d = {
            "format": SPLIT_FORMAT,
            **self.params,
            "class_order": [int(c) for c in self.class_order],
            "labelled_counts": [int(c) for c in self.labelled_counts],
            "unlabelled_counts": [int(c) for c in self.unlabelled_counts],
            "groups": [int(g) for g in self.groups],
        }
        if with_indices:
            d["labelled_indices"] = [int(i) for i in self.labelled]
            d["unlabelled_indices"] = [int(i) for i in self.unlabelled]
        return d


def _resolve_order(class_order: Any, n_classes: int, rng: np.random.Generator) -> list[int]:
    # Always drawn, so the per-class sampling that follows is the same whichever order is used
    # (a split saved with its drawn order rebuilds exactly from that explicit order).
    drawn = [int(c) for c in rng.permutation(n_classes)]
    if class_order is None or (isinstance(class_order, str) and class_order == "random"):
        return drawn
    if isinstance(class_order, str):
        if class_order == "index":
            return list(range(n_classes))
        class_order = [int(t) for t in class_order.replace(",", " ").split()]
    order = [int(c) for c in class_order]
    if sorted(order) != list(range(n_classes)):
        raise ValueError(f"class_order must be a permutation of 0..{n_classes - 1}, got {order}")
    return order


def make_longtail_split(
    labels: Any,
    n1: int,
    m1: int,
    gamma_l: float,
    gamma_u: float,
    seed: int,
    class_order: Any = None,
    num_classes: int | None = None,
) -> LongTailSplit:
    """Seeded long-tailed split of ``labels`` (the training pool) into labelled and unlabelled indices.

    The class at tail rank ``r`` is ``class_order[r]`` (``None``/``"random"``: a permutation
    drawn from ``seed``; ``"index"``: 0..C-1; or an explicit list). It gets
    ``longtail_counts(n1, gamma_l)[r]`` labelled and ``longtail_counts(m1, gamma_u)[r]``
    unlabelled items, disjoint, drawn without replacement. Both index arrays are sorted.
    """
    labels = np.asarray(labels, dtype=np.int64)
    c = int(num_classes) if num_classes is not None else int(labels.max()) + 1
    rng = np.random.default_rng(int(seed))
    order = _resolve_order(class_order, c, rng)
    n_rank = longtail_counts(n1, gamma_l, c)
    m_rank = longtail_counts(m1, gamma_u, c)
    n_cls, m_cls = [0] * c, [0] * c
    for r, cls in enumerate(order):
        n_cls[cls], m_cls[cls] = n_rank[r], m_rank[r]
    lab, unl = [], []
    for cls in range(c):
        idx = np.flatnonzero(labels == cls)
        need = n_cls[cls] + m_cls[cls]
        if len(idx) < need:
            raise ValueError(
                f"class {cls} has {len(idx)} items, fewer than the {n_cls[cls]} labelled + {m_cls[cls]} unlabelled "
                "the long-tailed split asks for"
            )
        perm = rng.permutation(idx)
        lab.append(perm[: n_cls[cls]])
        unl.append(perm[n_cls[cls] : need])
    params = {"n1": int(n1), "m1": int(m1), "gamma_l": float(gamma_l), "gamma_u": float(gamma_u),
              "seed": int(seed), "num_classes": c, "n_pool": int(len(labels))}  # fmt: skip
    return LongTailSplit(
        labelled=np.sort(np.concatenate(lab)),
        unlabelled=np.sort(np.concatenate(unl)),
        class_order=order,
        labelled_counts=n_cls,
        unlabelled_counts=m_cls,
        params=params,
    )


def split_from_dict(d: dict[str, Any], labels: Any) -> LongTailSplit:
    """Rebuild a split from :meth:`LongTailSplit.to_dict`; checks the indices when they were saved."""
    labels = np.asarray(labels, dtype=np.int64)
    if int(d.get("n_pool", len(labels))) != len(labels):
        raise ValueError(f"split was made on {d['n_pool']} items, these labels have {len(labels)}")
    split = make_longtail_split(
        labels, d["n1"], d["m1"], d["gamma_l"], d["gamma_u"], d["seed"],
        class_order=d["class_order"], num_classes=d["num_classes"],
    )  # fmt: skip
    for key, arr in (("labelled_indices", split.labelled), ("unlabelled_indices", split.unlabelled)):
        if key in d and list(map(int, d[key])) != arr.tolist():
            raise ValueError(f"saved {key} differ from the split the parameters produce (other data?)")
    return split
