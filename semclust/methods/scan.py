"""SCAN: clustering heads trained on mined nearest neighbours, on frozen features.

Van Gansbeke et al., "SCAN: Learning to Classify Images without Labels", ECCV 2020
(RESEARCH.md section 3). SCAN pretrains a backbone with SimCLR, mines nearest neighbours in
its embedding space and fine-tunes backbone + clustering heads. Here the backbone is frozen:
the input ``X`` already holds image features (e.g. raw visual features), and only the heads
are trained.

Per head, on a batch of anchors ``i`` with one mined neighbour ``j`` drawn per anchor:

    loss = -mean_i log <p_i, p_j>  -  entropy_weight * H(mean_i p_i)

``n_heads`` heads with independent initial weights see the same batches and are trained
jointly (the sum of their losses, as SCAN). After training each head's loss is evaluated on
the whole data in eval mode (consistency over every mined pair, entropy of the mean
prediction over all rows) and the head with the lowest loss is kept: SCAN's unsupervised
model selection, which never reads labels. An optional self-labelling stage then fine-tunes
that head with cross-entropy on its own confident predictions.

Defaults follow SCAN's released CIFAR-10 configuration (``configs/scan/scan_cifar10.yml``,
see docs/reference_notes.md); our earlier values remain as options:

- ``n_heads=1``, ``lr=1e-4`` and ``weight_decay=1e-4`` (Adam), ``entropy_weight=5.0``,
  ``n_neighbours=20``, ``batch_size=128``, ``epochs=50``: the released CIFAR-10 setting (one
  head for CIFAR/STL; the ImageNet configurations use 10). Our earlier frozen-feature choice
  was 5 heads, ``lr=1e-3`` without weight decay, batches of 256 and 30 epochs;
- ``hidden_dim=None`` is SCAN's head, one linear layer; an int gives
  Linear - BatchNorm1d - ReLU - Linear, as TAC's heads;
- inputs are L2-normalised, neighbours are exact cosine kNN (:func:`semclust.ops.knn.knn`);
  ``n_neighbours`` is reduced to ``n - 1`` on small inputs;
- anchors and their neighbours go through each head in separate forward passes, as SCAN's
  ``scan_train`` (it matters only for the BatchNorm of ``hidden_dim`` heads;
  ``joint_batch_norm=True`` is our earlier single pass); batches of fewer than 2 rows are
  skipped (BatchNorm needs two);
- head selection (with several heads) uses ``selection_entropy_weight=1.0``, the weight of
  the entropy in SCAN's released ``scan_evaluate`` (``total = consistency - entropy``);
  ``selection_entropy_weight=None`` uses ``entropy_weight``, the training objective.
- self-labelling (``self_label=True``): SCAN feeds a weakly augmented view to pick targets
  and trains on a strongly augmented view. Frozen features have no augmentations, so one
  forward pass gives both: rows of the batch whose (detached) max probability exceeds
  ``self_label_threshold`` are trained with cross-entropy towards their own argmax. Class
  balancing follows SCAN's ``ConfidenceBasedCE``: within a batch, class ``c`` among the
  confident rows gets weight ``n_confident / count_c`` and the weighted mean is taken, so
  every class present contributes equally. Batches with no confident row are skipped. The
  same ``lr`` is used; ``head_losses_``/``best_head_`` describe the selection before it.
  A linear head on frozen features is often less sharp than SCAN's fine-tuned network, so
  at the 0.99 threshold few or no rows may qualify; ``self_label_confident_`` reports the
  fraction, and a RuntimeWarning is raised when none ever does (the head is then unchanged).
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn

from semclust.deprecated import renamed
from semclust.methods.base import BaseClusterer, check_is_fitted, check_n_clusters
from semclust.methods.heads import head_logits, make_scan_head, softmax_rows
from semclust.methods.losses import scan_loss, selection_loss, self_label_loss
from semclust.methods.naming import text_space_centroids
from semclust.methods.spec import FeatureSet, MethodResult, MethodSpec, view_input
from semclust.ops.features import check_positive_int, l2_normalize
from semclust.ops.knn import knn
from semclust.store.checkpoint import EpochCheckpoint, TrainingState, digest_arrays, open_checkpoint


@dataclass(frozen=True)
class _ScanSettings:
    """The checked parameters of one fit (``batch_size`` and ``n_nb`` capped to the data)."""

    k: int
    n_heads: int
    n_nb: int
    epochs: int
    batch_size: int
    hidden: int | None
    sl_epochs: int


class SCAN(BaseClusterer):
    """SCAN clustering heads on frozen image features (see the module docstring).

    ``fit(X, y=None, on_epoch=None)``: ``X`` float[n, d] image features (L2-normalised
    internally); ``y`` is ignored (never used, not even for head selection).
    ``on_epoch(epoch, mean_loss)`` is called after every epoch, 1-based, numbering on
    through the self-labelling epochs (``epochs + 1 ...``) when ``self_label`` is set.

    Everything random (initial weights, shuffling, neighbour draws) comes from
    ``random_state``; on CPU the same seed gives identical results, and the global torch
    RNG state is restored afterwards. ``torch_threads`` sets torch's thread count during
    training only (restored afterwards; ``None`` leaves it alone); the default 1 avoids
    OpenMP slowdowns on busy machines for these tiny steps. ``device`` is any torch device
    string.

    Learned: ``labels_`` (int64[n], argmax of the kept head), ``probabilities_``
    (float32[n, K] of the kept head, after self-labelling if any), ``best_head_`` (index of
    the kept head), ``head_losses_`` (float64[n_heads], selection loss per head),
    ``head_consistency_``/``head_entropy_`` (its two parts), ``loss_history_`` (per epoch,
    the mean over steps of the mean loss over heads), ``head_loss_history_``
    (float64[epochs, n_heads]), ``heads_`` (all trained heads, CPU, eval mode), ``head_``
    (the kept head, fine-tuned when self-labelling), ``neighbours_`` (int64[n, k]),
    ``centers_`` (float32[K, d], normalised mean input per cluster; zero row if empty),
    ``n_features_in_``, ``cluster_names_ = None``; with ``self_label``:
    ``self_label_history_`` (mean CE per epoch over steps that had confident rows) and
    ``self_label_confident_`` (fraction of rows above the threshold per epoch, measured on
    the batches as trained).

    ``checkpoint_dir``: after every epoch (of both stages) the heads, the Adam state, the RNG
    states and the histories are saved there (:mod:`semclust.store.checkpoint`); with
    ``resume=True`` a fit continues after the last saved epoch (``on_epoch`` is first called
    for the epochs already done) and ends with the labels of an uninterrupted fit. Without
    ``resume`` an old checkpoint there is discarded.

    A saved model (:meth:`to_state`) keeps every head and the selection losses; the training
    neighbours and probabilities are not kept.
    """

    _state_arrays = (
        "labels_",
        "centers_",
        "head_losses_",
        "head_consistency_",
        "head_entropy_",
        "head_loss_history_",
    )
    _state_values = (
        "n_features_in_",
        "cluster_names_",
        "best_head_",
        "n_neighbours_",
        "loss_history_",
        "self_label_history_",
        "self_label_confident_",
    )
    _state_modules = ("head_", "heads_")

    def _new_modules(self) -> dict[str, nn.Module]:
        d, k = int(self.n_features_in_), int(self.n_clusters)
        hidden = None if self.hidden_dim is None else int(self.hidden_dim)
        heads = nn.ModuleList([make_scan_head(d, k, hidden) for _ in range(int(self.n_heads))])
        return {"head_": make_scan_head(d, k, hidden), "heads_": heads}

    def __init__(
        self,
        n_clusters: int = 10,
        n_heads: int = 1,
        n_neighbours: int = 20,
        entropy_weight: float = 5.0,
        epochs: int = 50,
        batch_size: int = 128,
        lr: float = 1e-4,
        weight_decay: float = 1e-4,
        selection_entropy_weight: float | None = 1.0,
        joint_batch_norm: bool = False,
        hidden_dim: int | None = None,
        self_label: bool = False,
        self_label_threshold: float = 0.99,
        self_label_epochs: int = 10,
        device: str = "cpu",
        torch_threads: int | None = 1,
        random_state: int = 0,
    ) -> None:
        self.n_clusters = n_clusters
        self.n_heads = n_heads
        self.n_neighbours = n_neighbours
        self.entropy_weight = entropy_weight
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.selection_entropy_weight = selection_entropy_weight
        self.joint_batch_norm = joint_batch_norm
        self.hidden_dim = hidden_dim
        self.self_label = self_label
        self.self_label_threshold = self_label_threshold
        self.self_label_epochs = self_label_epochs
        self.device = device
        self.torch_threads = torch_threads
        self.random_state = random_state

    # ------------------------------------------------------------------ checks

    def _check_params(self, n: int) -> _ScanSettings:
        k = check_n_clusters(self.n_clusters, n)
        n_heads = check_positive_int(self.n_heads, "n_heads")
        n_nb = min(check_positive_int(self.n_neighbours, "n_neighbours"), n - 1)
        epochs = check_positive_int(self.epochs, "epochs")
        batch_size = check_positive_int(self.batch_size, "batch_size")
        if batch_size < 2:
            raise ValueError(f"batch_size must be at least 2, got batch_size={batch_size}")
        batch_size = min(batch_size, n)
        hidden = None if self.hidden_dim is None else check_positive_int(self.hidden_dim, "hidden_dim")
        sl_epochs = check_positive_int(self.self_label_epochs, "self_label_epochs")
        for name in ("lr",):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        for name in ("entropy_weight", "weight_decay", "selection_entropy_weight"):
            value = getattr(self, name)
            if name == "selection_entropy_weight" and value is None:
                continue
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not (0.0 <= float(self.self_label_threshold) < 1.0):
            raise ValueError(f"self_label_threshold must lie in [0, 1), got {self.self_label_threshold!r}")
        if self.torch_threads is not None:
            check_positive_int(self.torch_threads, "torch_threads")
        if isinstance(self.random_state, bool) or not isinstance(self.random_state, (int, np.integer)):
            raise TypeError(f"random_state must be an integer, got {self.random_state!r}")
        return _ScanSettings(
            k=k,
            n_heads=n_heads,
            n_nb=n_nb,
            epochs=epochs,
            batch_size=batch_size,
            hidden=hidden,
            sl_epochs=sl_epochs,
        )

    # ------------------------------------------------------------------ fit

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike | None = None,
        on_epoch: Callable[[int, float], object] | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        resume: bool = False,
    ) -> SCAN:
        x = self._validate_fit_input(X, min_samples=2)
        p = self._check_params(x.shape[0])
        k, hidden = p.k, p.hidden
        device = torch.device(self.device)
        u = l2_normalize(x)
        neigh, _ = knn(u, p.n_nb)
        checkpoint, saved = open_checkpoint(
            checkpoint_dir, self, digest_arrays(x) if checkpoint_dir is not None else "", resume=resume
        )

        fork_devices = [device.index or 0] if device.type == "cuda" else []
        threads = torch.get_num_threads()
        if self.torch_threads is not None:
            torch.set_num_threads(int(self.torch_threads))
        try:
            with torch.random.fork_rng(devices=fork_devices):
                torch.manual_seed(int(self.random_state))
                gen = torch.Generator().manual_seed(int(self.random_state))
                heads = nn.ModuleList([make_scan_head(u.shape[1], k, hidden) for _ in range(p.n_heads)]).to(device)
                per_head = self._train(
                    heads, u, neigh, p.epochs, p.batch_size, device, gen, on_epoch, checkpoint, saved
                )
                w_select = self.selection_entropy_weight
                w_select = self.entropy_weight if w_select is None else w_select
                losses = [selection_loss(softmax_rows(head_logits(h, u, device)), neigh, w_select) for h in heads]
                best = int(np.argmin([loss[0] for loss in losses]))
                head = copy.deepcopy(heads[best])
                if self.self_label:
                    sl_hist, sl_conf = self._self_label(
                        head,
                        u,
                        p.sl_epochs,
                        p.batch_size,
                        device,
                        gen,
                        p.epochs,
                        on_epoch,
                        checkpoint,
                        saved,
                        heads,
                        per_head,
                    )
                    if not any(sl_conf):
                        warnings.warn(
                            f"self-labelling found no prediction above self_label_threshold="
                            f"{self.self_label_threshold}; the selected head is unchanged",
                            RuntimeWarning,
                            stacklevel=2,
                        )
                    self.self_label_history_ = sl_hist
                    self.self_label_confident_ = sl_conf
        finally:
            torch.set_num_threads(threads)

        self.heads_ = heads.cpu().eval()
        self.head_ = head.cpu().eval()
        self.head_losses_ = np.array([loss[0] for loss in losses], dtype=np.float64)
        self.head_consistency_ = np.array([loss[1] for loss in losses], dtype=np.float64)
        self.head_entropy_ = np.array([loss[2] for loss in losses], dtype=np.float64)
        self.best_head_ = best
        self.head_loss_history_ = np.asarray(per_head, dtype=np.float64).reshape(-1, len(heads))
        self.loss_history_ = [float(v) for v in self.head_loss_history_.mean(axis=1)]
        self.neighbours_ = neigh
        self.n_neighbours_ = p.n_nb
        self.n_features_in_ = x.shape[1]
        # same code path as predict_proba, so predict(X_train) reproduces labels_ exactly
        self.probabilities_ = self._proba(x)
        self.labels_ = self.probabilities_.argmax(axis=1).astype(np.int64)
        self.centers_ = text_space_centroids(u, self.labels_, k)
        self.cluster_names_ = None
        return self

    def _batches(self, n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
        order = torch.randperm(n, generator=gen)
        return [b for b in torch.split(order, batch_size) if len(b) >= 2]

    def _train(
        self,
        heads: nn.ModuleList,
        u: np.ndarray,
        neigh: np.ndarray,
        epochs: int,
        batch_size: int,
        device: torch.device,
        gen: torch.Generator,
        on_epoch: Callable[[int, float], object] | None,
        checkpoint: EpochCheckpoint | None = None,
        saved: TrainingState | None = None,
    ) -> list[list[float]]:
        optimizer = torch.optim.Adam(heads.parameters(), lr=self.lr, weight_decay=float(self.weight_decay))
        u_t = torch.from_numpy(u).to(device)
        nb_t = torch.from_numpy(neigh)
        n, n_nb = neigh.shape
        history: list[list[float]] = []
        start_epoch = 1
        if saved is not None:
            # a checkpoint of either stage holds the heads as this stage last left them
            saved.load_module("heads", heads)
            history = [[float(v) for v in row] for row in saved.values["head_loss_history"]]
            start_epoch = len(history) + 1
            if saved.values["stage"] == "heads":
                saved.load_optimizer("optimizer", optimizer)
                saved.load_generator("rng.batches", gen)
                saved.load_torch_global_rng()
            if on_epoch is not None:
                for epoch, means in enumerate(history, start=1):
                    on_epoch(epoch, float(np.mean(means)))
        heads.train()
        for epoch in range(start_epoch, epochs + 1):
            sums = np.zeros(len(heads))
            steps = 0
            for anchors in self._batches(n, batch_size, gen):
                pick = torch.randint(0, n_nb, (len(anchors),), generator=gen)
                j = nb_t[anchors, pick]
                b = len(anchors)
                losses = []
                for head in heads:
                    if self.joint_batch_norm:
                        prob = torch.softmax(head(u_t[torch.cat([anchors, j]).to(device)]), dim=1)
                        p_anchor, p_neighbour = prob[:b], prob[b:]
                    else:  # SCAN: anchors and neighbours in separate passes
                        p_anchor = torch.softmax(head(u_t[anchors.to(device)]), dim=1)
                        p_neighbour = torch.softmax(head(u_t[j.to(device)]), dim=1)
                    total, _, _ = scan_loss(p_anchor, p_neighbour, self.entropy_weight)
                    losses.append(total)
                loss = torch.stack(losses).sum()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                sums += np.array([float(v.detach()) for v in losses])
                steps += 1
            means = (sums / max(steps, 1)).tolist()
            history.append(means)
            if checkpoint is not None:
                state = TrainingState(epoch, values={"stage": "heads", "head_loss_history": history})
                state.put_module("heads", heads)
                state.put_optimizer("optimizer", optimizer)
                state.put_generator("rng.batches", gen)
                state.put_torch_global_rng()
                checkpoint.save(state)
            if on_epoch is not None:
                on_epoch(epoch, float(np.mean(means)))
        heads.eval()
        return history

    def _self_label(
        self,
        head: nn.Module,
        u: np.ndarray,
        epochs: int,
        batch_size: int,
        device: torch.device,
        gen: torch.Generator,
        epoch_offset: int,
        on_epoch: Callable[[int, float], object] | None,
        checkpoint: EpochCheckpoint | None = None,
        saved: TrainingState | None = None,
        heads: nn.ModuleList | None = None,
        head_history: list[list[float]] | None = None,
    ) -> tuple[list[float], list[float]]:
        optimizer = torch.optim.Adam(head.parameters(), lr=self.lr, weight_decay=float(self.weight_decay))
        u_t = torch.from_numpy(u).to(device)
        threshold = float(self.self_label_threshold)
        history: list[float] = []
        confident: list[float] = []
        start_epoch = 1
        if saved is not None and saved.values["stage"] == "self_label":
            saved.load_module("head", head)
            saved.load_optimizer("self_label_optimizer", optimizer)
            saved.load_generator("rng.batches", gen)
            saved.load_torch_global_rng()
            history = [float(v) for v in saved.values["self_label_history"]]
            confident = [float(v) for v in saved.values["self_label_confident"]]
            start_epoch = len(history) + 1
            if on_epoch is not None:
                for epoch, value in enumerate(history, start=1):
                    on_epoch(epoch_offset + epoch, value)
        head.train()
        for epoch in range(start_epoch, epochs + 1):
            total, steps, n_conf, n_seen = 0.0, 0, 0, 0
            for anchors in self._batches(u.shape[0], batch_size, gen):
                logits = head(u_t[anchors.to(device)])
                loss, count = self_label_loss(logits, threshold)
                n_conf += count
                n_seen += len(anchors)
                if loss is None:
                    continue
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach())
                steps += 1
            history.append(total / steps if steps else float("nan"))
            confident.append(n_conf / max(n_seen, 1))
            if checkpoint is not None and heads is not None:
                values = {
                    "stage": "self_label",
                    "head_loss_history": head_history or [],
                    "self_label_history": history,
                    "self_label_confident": confident,
                }
                state = TrainingState(epoch_offset + epoch, values=values)
                state.put_module("heads", heads)
                state.put_module("head", head)
                state.put_optimizer("self_label_optimizer", optimizer)
                state.put_generator("rng.batches", gen)
                state.put_torch_global_rng()
                checkpoint.save(state)
            if on_epoch is not None:
                on_epoch(epoch_offset + epoch, history[-1])
        head.eval()
        return history, confident

    # ------------------------------------------------------------------ predict

    def _proba(self, u: np.ndarray) -> np.ndarray:
        return softmax_rows(head_logits(self.head_, l2_normalize(u), torch.device("cpu")))

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """float32[m, K]: the kept head's softmax on L2-normalised ``X`` (eval mode)."""
        check_is_fitted(self, ("head_",))
        return self._proba(self._validate_predict_input(X))

    def predict(self, X: ArrayLike) -> np.ndarray:
        """int64[m]: argmax of :meth:`predict_proba`."""
        return self.predict_proba(X).argmax(axis=1).astype(np.int64)


def fit_scan(
    features: FeatureSet,
    n_clusters: int,
    random_state: int,
    view: str | None = None,
    *,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    **options: Any,
) -> MethodResult:
    # Image-only, like k-means: neighbours are mined where the image features keep most class information.
    view, rows = features.image_view(view)
    estimator = SCAN(n_clusters=n_clusters, random_state=random_state, **options)
    on_epoch = features.epoch_callback(
        "training scan heads", estimator.epochs + (estimator.self_label_epochs if estimator.self_label else 0)
    )
    estimator.fit(rows, on_epoch=on_epoch, checkpoint_dir=checkpoint_dir, resume=resume)
    info = {"view": view, "best_head": int(estimator.best_head_), "head_losses": [*map(float, estimator.head_losses_)]}
    return MethodResult(estimator, estimator.labels_, n_clusters, info=info)


SPEC = MethodSpec(
    name="scan",
    estimator=SCAN,
    fit=fit_scan,
    former_estimators=("SCANClusterer",),
    summary="SCAN clustering heads on mined image-feature neighbours (+ self-labelling)",
    predict_inputs=view_input,
    resumable=True,
)
METHOD_SPECS = (SPEC,)
__getattr__ = renamed(__name__, {"SCANClusterer": "SCAN"}, globals())
