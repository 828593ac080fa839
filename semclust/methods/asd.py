"""ASD: cluster images by cold-starting a semi-supervised learner with no labels.

After Duan, Qi, Shi, Gao (TIP 2025, arXiv 2509.20976), which has no public code; the unknowns
(RESEARCH.md section 4) are settled here as follows.

1. **Sample** ``n_l`` images: ``"uniform"`` at random, or ``"prototype"``: k-means with ``n_l``
   centers on image features, the image nearest each center (plus, with ``n_neighbours``, its
   nearest neighbours as extra views of the same instance). ``n_l`` defaults to
   ``max(10 K, smallest n_l whose coverage probability is >= 0.99)``.
2. **Instance stage**: FixMatch (:class:`semclust.ssl.trainer.Trainer`) with ``n_l`` classes, each
   sampled image its own class (its augmented views share the label), trained alongside all
   images as unlabelled data.
3. **Class transitions**: every ``record_every`` steps the argmax prediction of the (live)
   model on up to ``max_tracked`` unlabelled images is recorded. Within the window (the last
   ``transition_window`` fraction of the instance steps) an image predicted ``a`` at one record
   and ``b != a`` at the next adds one to ``T[a, b]``. Interpretation: an image that drifts
   between two instance classes sits between them, so frequent drifts mean the two instances
   are semantically close. ``S = T + T^T``, row-normalised.
   When transitions are sparse (fewer than ``n_l`` in the window, or always with
   ``co_prediction=True``) co-predictions are added: for every tracked image at every record in
   the window, its two most probable instance classes ``(a, b)`` add one to ``C[a, b]`` and
   ``C[b, a]``; then ``S = T + T^T + C`` before row normalisation.
4. **Grouping**: the symmetrised row-normalised similarity ``(S_rn + S_rn^T) / 2`` (plus
   ``1e-6`` so that the graph is connected) is clustered into K groups by spectral clustering
   (``affinity="precomputed"``) or average-linkage agglomerative clustering on ``1 - S / max S``.
   Group index = cluster label of each sampled image (and of its neighbour views).
   ``keep_confident < 1`` (an addition, not the paper's) gives FixMatch only the ``ceil(keep *
   size)`` members of each group whose similarity rows put the largest share of their mass
   inside their own group: fewer pseudo-labels, but purer ones.
   ``similarity="features"`` replaces the transition similarity by ``exp(cos(f_a, f_b) / 0.1)``
   between the sampled images' encoder features (no instance stage: an encoder-assisted
   variant, not the paper's); ``"combined"`` averages the two row-normalised matrices. Both need
   ``features``. Measured on Fashion-MNIST (benchmarks/RESULTS.md): transitions from a small CNN
   trained on CPU for a few hundred steps group the sampled images at a purity of 0.54-0.58,
   the offline encoder's features at about 0.7.
5. **SSL stage**: FixMatch with the sampled images and their cluster labels as the labelled
   set and every image unlabelled; ``labels_`` is the EMA model's argmax on every image.

Rounds (``rounds > 1``): each further round samples ``n_l`` new images, never one sampled
before, runs stages 2-4 on them, aligns its groups to the previous round's clusters by
Hungarian matching of the groups against the previous SSL model's predictions on the new
images, adds them to the labelled set and retrains stage 5 on the union.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from semclust.store.checkpoint import EpochCheckpoint

SAMPLERS = ("uniform", "prototype")
SIMILARITIES = ("transitions", "features", "combined")
FEATURE_TEMPERATURE = 0.1  # cosine / T inside exp(): sharp enough that same-class pairs dominate a row
_EVAL_BATCH = 512  # images per forward pass in predict (the trainer's evaluation batch)
GROUPINGS = ("spectral", "agglomerative")


# ----------------------------------------------------------------------------- coverage
def _log_comb(n: float, k: int) -> float:
    return math.lgamma(n + 1.0) - math.lgamma(k + 1.0) - math.lgamma(n - k + 1.0)


def coverage_probability(n: int, n_clusters: int, n_labelled: int) -> float:
    """Chance that ``n_labelled`` uniform draws without replacement from ``n`` images in
    ``n_clusters`` balanced classes include every class (inclusion-exclusion):
    ``P = 1 - sum_{i=1..K} (-1)^(i-1) C(K,i) C(n - i n/K, n_l) / C(n, n_l)``."""
    n, k, m = int(n), int(n_clusters), int(n_labelled)
    if k < 1 or n < 1 or m < 0:
        raise ValueError(f"need n >= 1, K >= 1, n_l >= 0; got n={n}, K={k}, n_l={m}")
    if m > n:
        raise ValueError(f"cannot draw n_l={m} images from n={n}")
    log_total = _log_comb(n, m)
    miss = 0.0
    for i in range(1, k + 1):
        rest = n - i * n / k
        if rest < m:
            continue
        term = math.exp(_log_comb(k, i) + _log_comb(rest, m) - log_total)
        miss += term if i % 2 == 1 else -term
    return float(min(1.0, max(0.0, 1.0 - miss)))


def default_n_labelled(n: int, n_clusters: int, target: float = 0.99) -> int:
    """``max(10 K, smallest n_l with coverage >= target)``, at most ``n``."""
    m = int(n_clusters)
    while m < n and coverage_probability(n, n_clusters, m) < target:
        m += 1
    return int(min(n, max(m, 10 * n_clusters)))


# ----------------------------------------------------------------------------- batch size
MAX_MU = 7  # FixMatch's mu
UNLABELLED_PASSES = 10.0


def default_mu(n: int, batch_size: int, steps: int) -> int:
    """FixMatch's ``mu`` (unlabelled images per labelled one in a batch) for a stage of ``steps``
    steps on ``n`` images: ``clip(ceil(10 n / (batch_size * steps)), 1, 7)``.

    The rule: a stage draws ``batch_size * mu * steps`` unlabelled images, and more than about
    ten passes over a small set only repeats the same images at a cost that grows with ``mu``
    (every unlabelled image is augmented twice and goes through the network twice). So a
    small set gets the smallest ``mu`` that still gives ten passes; from
    ``n > 0.6 * batch_size * steps`` (5,760 images at the defaults) ``mu`` is FixMatch's 7.
    On ``dataset:digits`` (1,797 images, batch 32, 300 steps) that is ``mu = 2``: a third of
    the CPU time of ``mu = 7`` at the same accuracy (ACC 0.820 / 0.804 / 0.866 on seeds 0-2 vs
    0.814 / 0.793 with ``mu = 7`` on seeds 0-1); ``mu = 1`` lost (0.727), and so did halving
    the steps (0.656) or training at the digits' own 8 px (0.706).
    """
    if n < 1 or batch_size < 1 or steps < 1:
        raise ValueError(f"need n, batch_size and steps >= 1; got {n}, {batch_size}, {steps}")
    return int(min(MAX_MU, max(1, math.ceil(UNLABELLED_PASSES * n / (batch_size * steps)))))


# ----------------------------------------------------------------------------- samplers
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


# ----------------------------------------------------------------------------- transitions
def count_transitions(records: Sequence[np.ndarray], n_classes: int) -> np.ndarray:
    """``T[a, b]`` = number of (image, consecutive record pair) predicted ``a`` then ``b != a``."""
    t = np.zeros((n_classes, n_classes), dtype=np.int64)
    for prev, cur in zip(records[:-1], records[1:]):
        prev, cur = np.asarray(prev, dtype=np.int64), np.asarray(cur, dtype=np.int64)
        moved = prev != cur
        np.add.at(t, (prev[moved], cur[moved]), 1)
    return t


def count_co_predictions(top2: Sequence[np.ndarray], n_classes: int) -> np.ndarray:
    """Symmetric ``C[a, b]``: how often ``a`` and ``b`` were an image's two most probable classes."""
    c = np.zeros((n_classes, n_classes), dtype=np.int64)
    for pairs in top2:
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        np.add.at(c, (pairs[:, 0], pairs[:, 1]), 1)
        np.add.at(c, (pairs[:, 1], pairs[:, 0]), 1)
    return c


def _row_normalised_off_diagonal(s: np.ndarray) -> np.ndarray:
    """``s`` with a zero diagonal, each row divided by its sum (rows summing to 0 stay zero)."""
    np.fill_diagonal(s, 0.0)
    sums = s.sum(axis=1, keepdims=True)
    return np.divide(s, sums, out=np.zeros_like(s), where=sums > 0)


def transition_similarity(transitions: np.ndarray, co_predictions: np.ndarray | None = None) -> np.ndarray:
    """``S = T + T^T (+ C)``, each row divided by its sum (rows with no counts stay zero)."""
    t = np.asarray(transitions, dtype=np.float64)
    s = t + t.T
    if co_predictions is not None:
        s = s + np.asarray(co_predictions, dtype=np.float64)
    return _row_normalised_off_diagonal(s)


def feature_similarity(features: np.ndarray, temperature: float = FEATURE_TEMPERATURE) -> np.ndarray:
    """``exp(cos(f_a, f_b) / T)`` off the diagonal, each row divided by its sum."""
    f = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    f = f / np.where(norms > 0, norms, 1.0)
    s = np.exp((f @ f.T - 1.0) / float(temperature))  # shifted by the largest cosine: no overflow
    return _row_normalised_off_diagonal(s)


def confident_members(similarity: np.ndarray, groups: np.ndarray, keep: float) -> np.ndarray:
    """Boolean mask of the ``ceil(keep * size)`` members of every group whose similarity rows put
    the largest share of their mass inside their own group (at least one per group)."""
    s = np.asarray(similarity, dtype=np.float64)
    groups = np.asarray(groups, dtype=np.int64)
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep_confident must be in (0, 1], got {keep}")
    same = groups[:, None] == groups[None, :]
    np.fill_diagonal(same, False)
    totals = s.sum(axis=1)
    own_share = np.divide((s * same).sum(axis=1), totals, out=np.zeros(len(s)), where=totals > 0)
    mask = np.zeros(len(s), dtype=bool)
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        ranked = members[np.argsort(-own_share[members], kind="stable")]
        mask[ranked[: max(1, math.ceil(keep * len(members)))]] = True
    return mask


def group_instances(
    similarity: np.ndarray, n_clusters: int, method: str = "spectral", random_state: int = 0
) -> np.ndarray:
    """K groups of the instance classes from a (row-normalised) similarity; int64 [n_l]."""
    s = np.asarray(similarity, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise ValueError(f"similarity must be square, got {s.shape}")
    if not 2 <= n_clusters <= len(s):
        raise ValueError(f"cannot group {len(s)} instance classes into {n_clusters} clusters")
    a = (s + s.T) / 2.0
    np.fill_diagonal(a, 0.0)
    a = a + 1e-6
    if method == "spectral":
        import warnings

        from sklearn.cluster import SpectralClustering

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "graph is not fully connected"
            model = SpectralClustering(
                n_clusters=n_clusters, affinity="precomputed", assign_labels="cluster_qr", random_state=random_state
            )
            labels = model.fit_predict(a)
    elif method == "agglomerative":
        from sklearn.cluster import AgglomerativeClustering

        dist = 1.0 - a / a.max()
        np.fill_diagonal(dist, 0.0)
        labels = AgglomerativeClustering(n_clusters=n_clusters, metric="precomputed", linkage="average").fit_predict(
            dist
        )
    else:
        raise ValueError(f"unknown grouping {method!r}; expected one of {', '.join(GROUPINGS)}")
    # Number groups by their smallest member so the result does not depend on solver numbering.
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)
    remap = np.empty(labels.max() + 1, dtype=np.int64)
    remap[np.unique(labels)[order]] = np.arange(len(order))
    return remap[labels].astype(np.int64)


def _align(groups: np.ndarray, predicted: np.ndarray, n_clusters: int) -> np.ndarray:
    """Rename ``groups`` so that they agree best with ``predicted`` (Hungarian matching)."""
    from scipy.optimize import linear_sum_assignment

    overlap = np.zeros((n_clusters, n_clusters), dtype=np.int64)
    np.add.at(overlap, (groups, predicted), 1)
    rows, cols = linear_sum_assignment(-overlap)
    mapping = np.arange(n_clusters)
    mapping[rows] = cols
    return mapping[groups]


class _StageTicks:
    """Advances one stage's progress bar by a step per trainer step. A resumed trainer reports
    only the steps it trains, so the steps done before the kill are added first (at its first
    report, or at the end when it had finished), and the bar still ends full."""

    def __init__(self, tick: Callable[..., None] | None, total: int) -> None:
        self.tick, self.total, self.done = tick, int(total), 0

    def step(self, step: int, info: str) -> None:
        if self.tick is None:
            return
        if step - 1 > self.done:
            self.tick(step - 1 - self.done, "(resumed)")
        self.tick(1, info)
        self.done = step

    def fixmatch_step(self, step: int, logs: dict[str, float]) -> None:
        self.step(step, f"loss {logs['loss']:.3f} mask {logs['mask_ratio']:.2f}")

    def finish(self) -> None:
        if self.tick is not None and self.done < self.total:
            self.tick(self.total - self.done, "(resumed)")
            self.done = self.total


# ----------------------------------------------------------------------------- checkpoints
ASD_STATE_FORMAT = "asd-state/1"
_STAGE_DIR = re.compile(r"round\d+-(instance|ssl)")


@dataclass
class _Grouping:
    """What one round's instance stage and grouping produced: enough to skip both on resume."""

    chosen: np.ndarray  # sampled images, int64 [n_l]
    neighbours: np.ndarray  # extra views of each sampled image, int64 [n_l, n_neighbours]
    groups: np.ndarray  # cluster of each sampled image (aligned to the previous round), int64 [n_l]
    transitions: np.ndarray  # T, int64 [n_l, n_l]
    similarity: np.ndarray  # S, float64 [n_l, n_l]
    co_predictions_used: bool
    n_records: int


@dataclass
class _Records:
    """Predictions recorded during an instance stage, each with the trainer step it was taken at."""

    steps: list[int] = field(default_factory=list)
    predictions: list[np.ndarray] = field(default_factory=list)  # argmax per tracked image
    top2: list[np.ndarray] = field(default_factory=list)  # two most probable classes per tracked image
    saved_at: int = 0  # the trainer step at which they were last persisted

    def drop_after(self, step: int) -> None:
        keep = sum(1 for s in self.steps if s <= step)
        del self.steps[keep:], self.predictions[keep:], self.top2[keep:]


class _RunCheckpoint:
    """ASD's checkpoint directory: one trainer directory per stage (``round<r>-instance/``,
    ``round<r>-ssl/``, each checkpointing every ``checkpoint_every`` steps and resumed exactly by
    :class:`semclust.ssl.trainer.Trainer`) beside an :class:`EpochCheckpoint` of ASD's own state
    (``checkpoint.json`` + ``tensors-<n>.safetensors``): each finished round's sample, grouping,
    transitions and similarity, the sampler's RNG state after that round, and the running
    instance stage's recorded predictions. That state carries the run's fingerprint (parameters
    and a digest of the images and features) and is written before any trainer directory, so
    a resume checks it first: a directory written for another run is refused, never mixed in.
    """

    def __init__(self, directory: str | os.PathLike[str], fingerprint: dict[str, Any], resume: bool) -> None:
        from semclust.store.checkpoint import EpochCheckpoint, TrainingState

        self.directory = Path(directory)
        self._store: EpochCheckpoint = EpochCheckpoint(self.directory, fingerprint)
        saved = self._store.load() if resume else None  # CheckpointError: damaged, or another run's
        if saved is not None and saved.values.get("format") != ASD_STATE_FORMAT:
            from semclust.store.checkpoint import CheckpointError

            raise CheckpointError(f"checkpoint in {self.directory} holds no ASD state; start over without resuming")
        if saved is None:
            # A fresh run (as LAIC, TAC and SCAN): whatever an earlier run left here is discarded.
            self.clear()
            saved = TrainingState(epoch=0, values={"format": ASD_STATE_FORMAT, "rounds": []})
            self._store.save(saved)
        self._state = saved

    def clear(self) -> None:
        """Remove what ASD writes (stage directories and its state), nothing else."""
        if self.directory.is_dir():
            for path in self.directory.iterdir():
                if path.is_dir() and _STAGE_DIR.fullmatch(path.name):
                    shutil.rmtree(path)
        self._store.clear()

    def stage_dir(self, round_index: int, stage: str) -> Path:
        return self.directory / f"round{round_index}-{stage}"

    # -------------------------------------------------------------- rounds
    @property
    def n_rounds(self) -> int:
        """How many rounds are grouped (their instance stages are done)."""
        return len(self._state.values["rounds"])

    def grouping(self, round_index: int) -> tuple[_Grouping, dict[str, Any]] | None:
        """Round ``round_index``'s grouping and the sampler RNG state after it, if it is saved."""
        if round_index >= self.n_rounds:
            return None
        values = self._state.values["rounds"][round_index]
        arrays = {
            name: self._array(f"round{round_index}.{name}")
            for name in ("chosen", "neighbours", "groups", "transitions", "similarity")
        }
        grouping = _Grouping(
            **arrays, co_predictions_used=bool(values["co_predictions_used"]), n_records=int(values["n_records"])
        )
        return grouping, values["sampler_rng"]

    def save_grouping(self, round_index: int, grouping: _Grouping, sampler_rng: np.random.Generator) -> None:
        """Save round ``round_index``'s grouping (its recorded predictions are no longer needed),
        then remove the trainer directories nothing reads any more: this round's instance stage,
        and the previous round's SSL stage (only its predictions aligned this round's groups)."""
        import torch

        assert round_index == self.n_rounds, "rounds are saved in order"
        prefix = f"round{round_index}."
        for name in ("chosen", "neighbours", "groups", "transitions", "similarity"):
            self._state.tensors[prefix + name] = torch.from_numpy(np.ascontiguousarray(getattr(grouping, name)))
        self._state.values["rounds"].append(
            {
                "co_predictions_used": bool(grouping.co_predictions_used),
                "n_records": int(grouping.n_records),
                "sampler_rng": sampler_rng.bit_generator.state,
            }
        )
        self._drop_records()
        self._save()
        shutil.rmtree(self.stage_dir(round_index, "instance"), ignore_errors=True)
        if round_index > 0:
            shutil.rmtree(self.stage_dir(round_index - 1, "ssl"), ignore_errors=True)

    # -------------------------------------------------------------- records
    def records(self, round_index: int) -> _Records:
        """The running instance stage's saved records (none yet: empty, saved at step 0)."""
        saved = self._state.values.get("records")
        if not saved or saved["round"] != round_index:
            return _Records()
        steps = self._array("records.steps")
        predictions, top2 = self._array("records.predictions"), self._array("records.top2")
        return _Records(
            steps=[int(s) for s in steps],
            predictions=list(predictions),
            top2=list(top2),
            saved_at=int(saved["saved_at"]),
        )

    def save_records(self, round_index: int, records: _Records, step: int, n_tracked: int) -> None:
        import torch

        records.saved_at = int(step)
        stacked = {
            "records.steps": np.asarray(records.steps, dtype=np.int64),
            "records.predictions": np.stack(records.predictions).astype(np.int64)
            if records.predictions
            else np.zeros((0, n_tracked), dtype=np.int64),
            "records.top2": np.stack(records.top2).astype(np.int64)
            if records.top2
            else np.zeros((0, n_tracked, 2), dtype=np.int64),
        }
        for name, array in stacked.items():
            self._state.tensors[name] = torch.from_numpy(np.ascontiguousarray(array))
        self._state.values["records"] = {"round": int(round_index), "saved_at": int(step)}
        self._save()

    def _drop_records(self) -> None:
        self._state.values.pop("records", None)
        for name in ("records.steps", "records.predictions", "records.top2"):
            self._state.tensors.pop(name, None)

    # -------------------------------------------------------------- storage
    def _array(self, name: str) -> np.ndarray:
        from semclust.store.checkpoint import CheckpointError

        if name not in self._state.tensors:
            raise CheckpointError(f"checkpoint in {self.directory} holds no {name!r}")
        return self._state.tensors[name].numpy().copy()

    def _save(self) -> None:
        # A new number every time: the tensor file is named by it, and the JSON (written last)
        # must never name a file that a later save is overwriting.
        self._state.epoch += 1
        self._store.save(self._state)


# ----------------------------------------------------------------------------- estimator
class ASD:
    """Cluster uint8 images with ASD (see the module docstring).

    ``fit(images, y=None, features=None)``: ``images`` uint8 ``[n,H,W]`` or ``[n,H,W,3]``;
    ``features`` (``[n, d]``) feed the prototype sampler; ``y`` only measures the purity of the
    sampled images' cluster labels (never used for training). Learned: ``labels_``,
    ``sampled_indices_`` (all rounds, in order), ``instance_groups_`` (cluster of each sampled
    image), ``similarity_`` (last round, ``[n_l, n_l]``), ``transitions_``,
    ``coverage_probability_``, ``pseudo_label_purity_`` (None without ``y``), ``labelled_purity_``
    (the same over the images FixMatch is given: fewer with ``keep_confident < 1``; None without ``y``),
    ``classes_covered_`` (None without ``y``), ``mu_`` (``{"instance": .., "ssl": ..}``, the
    ``mu`` each stage used), ``model_`` (the EMA network), ``mean_`` / ``std_`` (its input
    normalisation), ``input_shape_`` (one image as given to ``fit``) and ``image_shape_`` (as
    the network saw it).

    ``mu=None`` (default) sizes FixMatch's ``mu`` to the data set (:func:`default_mu`: 7 above
    5,760 images at the default batch and steps, less on smaller sets such as digits).

    Checkpoints: ``fit(..., checkpoint_dir=DIR)`` makes every FixMatch stage checkpoint in its
    own directory (``DIR/round<r>-instance/``, ``DIR/round<r>-ssl/``) every
    ``checkpoint_every`` steps and at its end (weights, EMA, optimiser, samplers, RNG states:
    :class:`semclust.ssl.trainer.Trainer`). ASD's own state is saved beside them
    (``DIR/checkpoint.json`` + safetensors, :mod:`semclust.store.checkpoint`): the instance
    stage's recorded predictions with the step of each, whenever its trainer checkpoints, and
    each round's result once it is grouped (sampled images, neighbours, groups, transitions,
    similarity, whether co-predictions were used, the sampler's RNG state), after which that
    round's instance-stage directory is removed. ``resume=True`` continues from there: finished
    rounds are not redone, a stage continues after its trainer's last checkpoint (records taken
    after that step are dropped and taken again), and the fit ends with the labels, groups,
    sampled indices and weights of an uninterrupted fit (on CPU). The state carries a
    fingerprint of the parameters (all but ``checkpoint_every``, which changes nothing) and of
    the images and features: a checkpoint of another run raises
    :class:`~semclust.store.checkpoint.CheckpointError`. Without ``resume`` whatever ASD left
    in ``DIR`` is removed first (nothing else there is touched).
    """

    def __init__(
        self,
        n_clusters: int,
        n_labelled: int | None = None,
        sampler: str = "uniform",
        n_neighbours: int = 0,
        instance_steps: int = 300,
        record_every: int = 5,
        transition_window: float = 0.5,
        max_tracked: int = 5000,
        co_prediction: bool | str = "auto",
        grouping: str = "spectral",
        similarity: str = "transitions",
        keep_confident: float = 1.0,
        ssl_steps: int = 300,
        network: str = "cnn",
        batch_size: int = 32,
        mu: int | None = None,
        lr: float = 0.03,
        threshold: float = 0.95,
        image_size: int | None = None,
        flip: bool = True,
        rounds: int = 1,
        checkpoint_every: int = 50,
        device: str = "cpu",
        random_state: int = 0,
    ) -> None:
        self.n_clusters = n_clusters
        self.n_labelled = n_labelled
        self.sampler = sampler
        self.n_neighbours = n_neighbours
        self.instance_steps = instance_steps
        self.record_every = record_every
        self.transition_window = transition_window
        self.max_tracked = max_tracked
        self.co_prediction = co_prediction
        self.grouping = grouping
        self.similarity = similarity
        self.keep_confident = keep_confident
        self.ssl_steps = ssl_steps
        self.network = network
        self.batch_size = batch_size
        self.mu = mu
        self.lr = lr
        self.threshold = threshold
        self.image_size = image_size
        self.flip = flip
        self.rounds = rounds
        self.checkpoint_every = checkpoint_every
        self.device = device
        self.random_state = random_state

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        import inspect

        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    # -------------------------------------------------------------- helpers
    def _check(self, n: int) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; expected one of {', '.join(SAMPLERS)}")
        if self.grouping not in GROUPINGS:
            raise ValueError(f"unknown grouping {self.grouping!r}; expected one of {', '.join(GROUPINGS)}")
        if not isinstance(self.keep_confident, (int, float)) or not 0.0 < float(self.keep_confident) <= 1.0:
            raise ValueError(f"keep_confident must be in (0, 1], got {self.keep_confident!r}")
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"unknown similarity {self.similarity!r}; expected one of {', '.join(SIMILARITIES)}")
        if not isinstance(self.n_clusters, (int, np.integer)) or self.n_clusters < 2:
            raise ValueError(f"n_clusters must be an integer of at least 2, got {self.n_clusters!r}")
        if not 0.0 < float(self.transition_window) <= 1.0:
            raise ValueError(f"transition_window must be in (0, 1], got {self.transition_window}")
        positive = ("instance_steps", "ssl_steps", "record_every", "rounds", "batch_size", "mu", "max_tracked")
        for name in (*positive, "checkpoint_every"):
            if name == "mu" and self.mu is None:
                continue
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.n_neighbours < 0:
            raise ValueError(f"n_neighbours must be >= 0, got {self.n_neighbours}")
        if self.co_prediction not in (True, False, "auto"):
            raise ValueError(f"co_prediction must be true, false or 'auto', got {self.co_prediction!r}")

    def _prepare_images(self, images: Any) -> np.ndarray:
        from semclust.ssl.data import resize_uint8

        x = np.asarray(images)
        if x.dtype != np.uint8 or x.ndim not in (3, 4):
            raise ValueError(f"images must be uint8 [n,H,W] or [n,H,W,C], got {x.dtype} {x.shape}")
        if not x.flags.writeable:  # e.g. pixels from PIL or a memory map; torch wants writable memory
            x = x.copy()
        size = self.image_size
        if size is None and min(x.shape[1], x.shape[2]) < 16:
            size = 16  # the small CNN pools three times: tiny images (8x8 digits) go up to 16 px
        if size is None and x.shape[1] != x.shape[2]:
            size = max(x.shape[1], x.shape[2])
        return resize_uint8(x, int(size)) if size is not None else x

    def _mu(self, n: int, steps: int) -> int:
        return int(self.mu) if self.mu is not None else default_mu(n, int(self.batch_size), steps)

    def _trainer(
        self, num_classes: int, steps: int, in_channels: int, seed: int, mu: int, out_dir: Path | None = None
    ) -> Any:
        """A FixMatch trainer; with ``out_dir`` it checkpoints there and continues from a checkpoint
        it finds (the caller has checked that the directory belongs to this run, or cleared it)."""
        from semclust.ssl.trainer import Trainer

        return Trainer(
            "fixmatch",
            network=self.network,
            num_classes=num_classes,
            in_channels=in_channels,
            total_steps=steps,
            batch_size=self.batch_size,
            mu=mu,
            lr=self.lr,
            # ASD's FixMatch stages are a few hundred steps: a constant 0.999 EMA would still be
            # mostly the initial weights, so they keep the warm-up variant.
            ema_warmup=True,
            device=self.device,
            seed=seed,
            flip=bool(self.flip),
            out_dir=out_dir,
            resume=out_dir is not None,
            checkpoint_every=int(self.checkpoint_every),
            threshold=self.threshold,
        )

    def _instance_stage(
        self,
        x: np.ndarray,
        lb_idx: np.ndarray,
        lb_inst: np.ndarray,
        n_inst: int,
        seed: int,
        ticks: _StageTicks,
        checkpoint: _RunCheckpoint | None = None,
        round_index: int = 0,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Train the instance classifier; ``(T, S, C or None)`` from its recorded predictions.

        With ``checkpoint`` the trainer checkpoints in ``round<r>-instance/`` and the records are
        saved with it, so a killed stage continues from the trainer's last checkpoint.
        """
        import torch

        rng = np.random.default_rng(seed + 7)
        tracked = (
            np.arange(len(x))
            if len(x) <= self.max_tracked
            else np.sort(rng.choice(len(x), self.max_tracked, replace=False))
        )
        x_tracked = x[tracked]
        in_channels = 1 if x.ndim == 3 else x.shape[-1]
        steps = int(self.instance_steps)
        out_dir = checkpoint.stage_dir(round_index, "instance") if checkpoint is not None else None
        trainer = self._trainer(n_inst, steps, in_channels, seed, self.mu_["instance"], out_dir)
        start = int(math.floor((1.0 - float(self.transition_window)) * self.instance_steps))
        records = checkpoint.records(round_index) if checkpoint is not None else _Records()
        first_step: list[int] = []

        @torch.no_grad()
        def record(step: int) -> None:
            model = trainer.model
            was = model.training
            model.eval()
            outs = []
            for s in range(0, len(x_tracked), 1024):
                chunk = trainer.normalised(torch.from_numpy(np.ascontiguousarray(x_tracked[s : s + 1024])))
                outs.append(model(chunk.to(trainer.device)).float().cpu())
            model.train(was)
            logits = torch.cat(outs)
            records.steps.append(step)
            records.predictions.append(logits.argmax(dim=1).numpy())
            records.top2.append(logits.topk(2, dim=1).indices.numpy())

        def on_step(step: int, logs: dict[str, float]) -> None:
            if not first_step:
                first_step.append(step)
                self._continue_records(records, step - 1, checkpoint)
            ticks.step(step, f"instance loss {logs['loss']:.3f}")
            if step >= start and (step - start) % int(self.record_every) == 0:
                record(step)
            if checkpoint is not None and (step % trainer.checkpoint_every == 0 or step == steps):
                # progress() runs before the trainer saves its checkpoint at this step: the saved
                # records are never behind it (at most ahead, which a resume drops).
                checkpoint.save_records(round_index, records, step, len(tracked))

        trainer.fit(x[lb_idx], lb_inst, x, progress=on_step)
        if not first_step:  # the trainer had finished before the kill: every record is saved
            self._continue_records(records, steps, checkpoint)
        ticks.finish()
        self.n_records_ = len(records.predictions)
        t = count_transitions(records.predictions, n_inst)
        use_co = self.co_prediction is True or (self.co_prediction == "auto" and t.sum() < n_inst)
        c = count_co_predictions(records.top2, n_inst) if use_co else None
        return t, transition_similarity(t, c), c

    @staticmethod
    def _continue_records(records: _Records, trainer_step: int, checkpoint: _RunCheckpoint | None) -> None:
        """Keep the records up to the step the trainer continues from: it redoes the later steps
        and records them again (identically on CPU)."""
        if records.saved_at < trainer_step:
            from semclust.store.checkpoint import CheckpointError

            where = checkpoint.directory if checkpoint is not None else "memory"
            raise CheckpointError(
                f"checkpoint in {where}: the instance stage's predictions were saved up to step "
                f"{records.saved_at} but its trainer continues from step {trainer_step}; start over without resuming"
            )
        records.drop_after(trainer_step)

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        images: Any,
        y: Any = None,
        features: Any = None,
        progress: Callable[[str, int], Callable[..., None]] | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        resume: bool = False,
    ) -> ASD:
        """Fit on ``images``; ``progress(description, total)`` gives each stage's tick function.

        ``checkpoint_dir``: every stage checkpoints there (see the class docstring); with
        ``resume=True`` a killed fit continues from it, without ``resume`` an old one is discarded.
        """
        from semclust.metrics import evaluate

        x = self._prepare_images(images)
        n = len(x)
        self._check(n)
        k = int(self.n_clusters)
        n_l = int(self.n_labelled) if self.n_labelled is not None else default_n_labelled(n, k)
        if not k <= n_l <= n:
            raise ValueError(f"n_labelled must lie in [K={k}, n={n}], got {n_l}")
        if n_l < 2:
            raise ValueError("n_labelled must be at least 2")
        if n_l * int(self.rounds) > n:
            raise ValueError(f"{self.rounds} rounds of {n_l} images need {n_l * self.rounds} images, have {n}")
        feats = None
        if self.similarity != "transitions" and features is None:
            raise ValueError(f"similarity={self.similarity!r} needs features (e.g. an encoder's, one row per image)")
        if self.sampler == "prototype" or features is not None:
            feats = np.asarray(features, dtype=np.float32) if features is not None else x.reshape(n, -1) / 255.0
            if feats.ndim != 2 or len(feats) != n:
                raise ValueError(f"features must be [n_images, d] with {n} rows, got shape {feats.shape}")
        y_arr = None if y is None else np.asarray(y, dtype=np.int64)
        self.coverage_probability_ = coverage_probability(n, k, n_l)
        self.n_labelled_ = n_l
        self.mu_ = {"instance": self._mu(n, int(self.instance_steps)), "ssl": self._mu(n, int(self.ssl_steps))}
        rng = np.random.default_rng(self.random_state)
        in_channels = 1 if x.ndim == 3 else x.shape[-1]
        checkpoint = None
        if checkpoint_dir is not None:
            from semclust.store.checkpoint import digest_arrays, fingerprint

            identity = fingerprint(self, digest_arrays(x, feats))
            identity["params"].pop("checkpoint_every", None)  # how often to save never changes the result
            checkpoint = _RunCheckpoint(checkpoint_dir, identity, resume=resume)
        rounds = int(self.rounds)

        sampled: list[np.ndarray] = []
        lb_idx_all: list[np.ndarray] = []
        lb_lab_all: list[np.ndarray] = []
        groups_all: list[np.ndarray] = []
        trainer = None
        for r in range(rounds):
            seed = int(self.random_state) + 1000 * r
            saved = checkpoint.grouping(r) if checkpoint is not None else None
            if saved is not None:  # grouped before the kill: no sampling, instance stage or grouping
                grouping, sampler_rng = saved
                rng.bit_generator.state = sampler_rng
            else:
                grouping = self._sample_and_group(
                    x, feats, n_l, k, r, seed, rng, sampled, lb_idx_all, trainer, progress, checkpoint
                )
                if checkpoint is not None:
                    checkpoint.save_grouping(r, grouping, rng)
            chosen, neighbours, groups = grouping.chosen, grouping.neighbours, grouping.groups
            # Only the most confidently grouped share of each group labels FixMatch (all by default).
            kept = np.flatnonzero(confident_members(grouping.similarity, groups, float(self.keep_confident)))
            lb_idx = np.concatenate([chosen[kept], neighbours[kept].reshape(-1)])
            lb_inst = np.concatenate([kept, np.repeat(kept, neighbours.shape[1])])
            sampled.append(chosen)
            groups_all.append(groups)
            lb_idx_all.append(lb_idx)
            lb_lab_all.append(groups[lb_inst])
            self.transitions_: np.ndarray = grouping.transitions
            self.similarity_: np.ndarray = grouping.similarity
            self.co_predictions_used_: bool = grouping.co_predictions_used
            self.n_records_ = grouping.n_records
            if checkpoint is not None and r + 1 < rounds and checkpoint.n_rounds > r + 1:
                # The next round is grouped already, so nothing reads this round's SSL model (it
                # would only align the next round's groups), and the next SSL stage retrains on
                # the union: this one is skipped.
                trainer = None
                continue
            tick = progress(f"asd round {r + 1}: fixmatch ({k} clusters)", int(self.ssl_steps)) if progress else None
            ssl_ticks = _StageTicks(tick, int(self.ssl_steps))
            out_dir = checkpoint.stage_dir(r, "ssl") if checkpoint is not None else None
            trainer = self._trainer(k, int(self.ssl_steps), in_channels, seed + 1, self.mu_["ssl"], out_dir)
            trainer.fit(
                np.ascontiguousarray(x[np.concatenate(lb_idx_all)]),
                np.concatenate(lb_lab_all),
                x,
                progress=ssl_ticks.fixmatch_step,
            )
            ssl_ticks.finish()

        assert trainer is not None  # _check makes rounds >= 1
        self.sampled_indices_ = np.concatenate(sampled)
        self.instance_groups_ = np.concatenate(groups_all)
        self.labelled_indices_ = np.concatenate(lb_idx_all)
        self.labelled_labels_ = np.concatenate(lb_lab_all)
        self.trainer_ = trainer
        # What predict needs (and a saved model keeps): the EMA network and the normalisation
        # statistics the trainer computed, the shape of the images fit was given (new images are
        # brought to it first) and the shape the network saw.
        self.model_ = trainer.ema_model
        self.mean_ = [float(v) for v in trainer.mean]
        self.std_ = [float(v) for v in trainer.std]
        self.in_channels_ = int(in_channels)
        self.input_shape_ = tuple(int(v) for v in np.shape(images)[1:])
        self.image_shape_ = tuple(int(v) for v in x.shape[1:])
        self.labels_ = self._classify(x)
        self.pseudo_label_purity_ = None
        self.labelled_purity_: float | None = None
        self.classes_covered_ = None
        if y_arr is not None and (y_arr[self.sampled_indices_] >= 0).any():
            ys = y_arr[self.sampled_indices_]
            known = ys >= 0
            self.pseudo_label_purity_ = float(evaluate(ys[known], self.instance_groups_[known])["acc"])
            self.classes_covered_ = int(len(np.unique(ys[known])))
            yl = y_arr[self.labelled_indices_]
            self.labelled_purity_ = float(evaluate(yl[yl >= 0], self.labelled_labels_[yl >= 0])["acc"])
        return self

    def _sample_and_group(
        self,
        x: np.ndarray,
        feats: np.ndarray | None,
        n_l: int,
        k: int,
        round_index: int,
        seed: int,
        rng: np.random.Generator,
        sampled: list[np.ndarray],
        lb_idx_all: list[np.ndarray],
        previous: Any,
        progress: Callable[[str, int], Callable[..., None]] | None,
        checkpoint: _RunCheckpoint | None,
    ) -> _Grouping:
        """One round's stages 1-4: sample ``n_l`` new images, train the instance stage (unless the
        similarity is the features'), group; groups are aligned to ``previous`` (the last round's
        SSL trainer) when there is one."""
        n = len(x)
        used = np.concatenate(sampled) if sampled else np.zeros(0, dtype=np.int64)
        if self.sampler == "uniform":
            chosen = sample_uniform(n, n_l, rng, exclude=used)
            neighbours = np.zeros((n_l, 0), dtype=np.int64)
        else:
            assert feats is not None  # set by fit for the prototype sampler
            used_all = np.concatenate([used, *lb_idx_all]) if lb_idx_all else used
            chosen, neighbours = sample_prototypes(
                feats, n_l, random_state=seed, exclude=np.unique(used_all), n_neighbours=int(self.n_neighbours)
            )
        lb_idx = np.concatenate([chosen, neighbours.reshape(-1)])
        lb_inst = np.concatenate([np.arange(n_l), np.repeat(np.arange(n_l), neighbours.shape[1])])
        if self.similarity == "features":
            assert feats is not None  # checked by fit
            t, c = np.zeros((n_l, n_l), dtype=np.int64), None
            s = feature_similarity(feats[chosen])
            self.n_records_ = 0
        else:
            description = f"asd round {round_index + 1}: instance stage ({n_l} classes)"
            tick = progress(description, int(self.instance_steps)) if progress else None
            ticks = _StageTicks(tick, int(self.instance_steps))
            t, s, c = self._instance_stage(x, lb_idx, lb_inst, n_l, seed, ticks, checkpoint, round_index)
            if self.similarity == "combined":
                assert feats is not None
                s = (s + feature_similarity(feats[chosen])) / 2.0
        groups = group_instances(s, k, self.grouping, random_state=seed)
        if previous is not None:
            groups = _align(groups, previous.predict(x[chosen]), k)
        return _Grouping(
            chosen=np.asarray(chosen, dtype=np.int64),
            neighbours=np.asarray(neighbours, dtype=np.int64),
            groups=np.asarray(groups, dtype=np.int64),
            transitions=np.asarray(t, dtype=np.int64),
            similarity=np.asarray(s, dtype=np.float64),
            co_predictions_used=c is not None,
            n_records=int(self.n_records_),
        )

    def fit_predict(self, images: Any, y: Any = None, features: Any = None, **kw: Any) -> np.ndarray:
        return self.fit(images, y=y, features=features, **kw).labels_

    def predict(self, images: Any) -> np.ndarray:
        """Cluster of new uint8 images by the EMA model. The images are prepared as in ``fit``
        (the same resizing for the same input size), then brought to the trained size."""
        if not hasattr(self, "model_"):
            from semclust.methods.base import NotFittedError

            raise NotFittedError("This ASD instance is not fitted yet; call 'fit' first.")
        x = self._prepare_images(images)
        channels = 1 if x.ndim == 3 else x.shape[-1]
        if channels != self.in_channels_:
            raise ValueError(f"images have {channels} channel(s); this ASD model was trained on {self.in_channels_}")
        if tuple(x.shape[1:]) != self.image_shape_:
            from semclust.ssl.data import resize_uint8

            x = resize_uint8(x, self.image_shape_[0])
        return self._classify(x)

    def _classify(self, x: np.ndarray) -> np.ndarray:
        """argmax of the EMA model on prepared uint8 images, in batches of 512: the same
        computation as :meth:`semclust.ssl.trainer.Trainer.predict` (FixMatch's evaluation)."""
        import torch

        from semclust.ssl.augment import normalize, to_float

        model = self.model_
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        pixels = torch.from_numpy(np.ascontiguousarray(x))
        out = []
        with torch.no_grad():
            for start in range(0, len(pixels), _EVAL_BATCH):
                chunk = normalize(to_float(pixels[start : start + _EVAL_BATCH]), self.mean_, self.std_).to(device)
                out.append(model(chunk).argmax(dim=1).cpu())
        model.train(was_training)
        return torch.cat(out).numpy().astype(np.int64) if out else np.zeros(0, dtype=np.int64)

    # --------------------------------------------------------------- saving
    # A saved model (semclust.outputs.model) keeps the EMA network's tensors ("model.<key>"),
    # labels_ and the JSON values below; loading rebuilds the network by name, never unpickling.
    _state_values = (
        "mean_", "std_", "in_channels_", "input_shape_", "image_shape_", "n_labelled_",
        "coverage_probability_", "pseudo_label_purity_", "classes_covered_",
    )  # fmt: skip

    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """``(arrays, values)``: ``labels_`` and the EMA network's state dict for safetensors,
        the normalisation, shapes and sampling summary as JSON-able values."""
        if not hasattr(self, "model_"):
            from semclust.methods.base import NotFittedError

            raise NotFittedError("This ASD instance is not fitted yet; call 'fit' first.")
        if not isinstance(self.network, str):
            raise ValueError("only an ASD trained with a named network (e.g. 'cnn') can be saved")
        arrays = {"labels_": np.ascontiguousarray(self.labels_, dtype=np.int64)}
        for key, tensor in self.model_.state_dict().items():
            arrays[f"model.{key}"] = np.ascontiguousarray(tensor.detach().cpu().numpy())
        values: dict[str, Any] = {}
        for name in self._state_values:
            value = getattr(self, name)
            values[name] = list(value) if isinstance(value, tuple) else value
        return arrays, values

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], values: dict[str, Any]) -> ASD:
        """Rebuild a fitted ASD (on the CPU) from :meth:`get_params` and :meth:`to_state` output;
        ValueError when a value, an array or a network tensor is missing or does not fit."""
        import torch

        from semclust.ssl.nets import build_network

        estimator = cls(**params)
        missing = [name for name in cls._state_values if name not in values]
        if missing or "labels_" not in arrays:
            raise ValueError(f"ASD: missing learned values {missing or ['labels_']}")
        in_channels = values["in_channels_"]
        input_shape, image_shape = values["input_shape_"], values["image_shape_"]
        mean, std = values["mean_"], values["std_"]
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
        for name, stats in (("mean_", mean), ("std_", std)):
            if (
                not isinstance(stats, list)
                or len(stats) != in_channels
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in stats)
            ):
                raise ValueError(f"ASD: {name} must be {in_channels} finite number(s), got {stats!r}")
        if not isinstance(params.get("network"), str):
            raise ValueError(f"ASD: network must be a name, got {params.get('network')!r}")
        for name in cls._state_values:
            value = values[name]
            setattr(estimator, name, tuple(value) if name in ("input_shape_", "image_shape_") else value)
        estimator.labels_ = np.asarray(arrays["labels_"], dtype=np.int64)
        network = build_network(params["network"], num_classes=int(params["n_clusters"]), in_channels=in_channels)
        prefix = "model."
        state = {
            k[len(prefix) :]: torch.from_numpy(np.array(v, copy=True))
            for k, v in arrays.items()
            if k.startswith(prefix)
        }
        unexpected = sorted(set(arrays) - {"labels_"} - {prefix + k for k in state})
        if unexpected:
            raise ValueError(f"ASD: unexpected arrays {unexpected}")
        try:
            network.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ValueError(f"ASD network: {err}") from None
        network.eval()
        for p in network.parameters():
            p.requires_grad_(False)
        estimator.model_ = network
        return estimator


# ----------------------------------------------------------------------------- images of a source
def source_images(source: Any, ids: Sequence[str], size: int = 32) -> tuple[np.ndarray, list[str]]:
    """uint8 images of ``source`` in the order of ``ids`` (e.g. a feature store's, which leaves
    out items that failed to decode). Array-backed sources give their array rows as they are;
    other sources are decoded as RGB and resized to ``size x size`` so that they stack."""
    from semclust.data.base import ArraySource

    position = {item_id: i for i, item_id in enumerate(source.ids)}
    missing = [item_id for item_id in ids if item_id not in position]
    if missing:
        raise ValueError(f"{len(missing)} ids are not in source {getattr(source, 'name', '')!r}, e.g. {missing[0]!r}")
    rows = np.fromiter((position[item_id] for item_id in ids), dtype=np.int64, count=len(ids))
    if isinstance(source, ArraySource):
        return np.asarray(source._images)[rows], list(ids)
    from PIL import Image

    out = np.empty((len(rows), size, size, 3), dtype=np.uint8)
    for j, i in enumerate(rows):
        image = source.load(int(i)).convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        out[j] = np.asarray(image, dtype=np.uint8)
    return out, list(ids)
