"""LAIC: clustering on a cross-modal relation matrix with learned semantic centers.

RESEARCH.md section 1 (Ma et al., arXiv 2603.24275; no public code). Two estimators:

- :class:`LAICNoTrain` ("Ours (no-train)"): TAC's noun selection, the relation matrix
  ``C = relation_matrix(U, S_sel)`` (ridge rows by default), spherical k-means on the
  L2-normalised rows of ``C``.
- :class:`LAIC`: starts from the no-train clustering, mines k-hat = 10 neighbours among rows
  of ``C``, filters them (neighbourhood consistency filtering, ``"cross"`` rule against the
  visual-space kNN by default), and learns K semantic centers ``w_k`` in the text space,
  either by CoOp-style prompt learning through the frozen text tower (``centers="prompt"``)
  or as free vectors (``centers="free"``). ``p(k|x) = softmax_k(cos(u_x, w_k) / T)``;
  loss = SCAN consistency ``-mean log <p_i, p_j>`` over kept pairs
  ``- entropy_weight * H(mean_i p_i)``.

The paper gives no T, epochs, learning rate or loss weights. Defaults (interpretations):

- ``temperature=0.01``: CLIP's logit scale (100), which CoOp-style prompt learners and
  zero-shot classifiers use for ``cos / T`` between image and text embeddings;
- ``entropy_weight=5.0``: the balance weight of SCAN, SIC and TAC;
- ``lr=1e-3`` (Adam), ``epochs=20``, ``batch_size=512``: TAC's optimiser, lr, epochs and
  batch. Every step sends the K prompts forward and back through the text tower, whatever the
  batch, so the steps are the cost: a 10k-row fit is 400 steps. On Fashion-MNIST test (offline
  encoder, seeds 0-2) batch 512 scored ACC 0.593 / 0.731 / 0.731 against 0.561 / 0.724 / 0.729
  for batch 256 in half the steps, while 10 epochs at 256 lost 0.558 / 0.696 / 0.703
  (benchmarks/laic_schedule.py);
- one kept neighbour is sampled per anchor per step (as SCAN/TAC do); anchors left with
  no kept neighbour (``min_keep=0``, strict filtering) contribute to no consistency term;
- ``torch_threads``: threads torch uses while training (restored afterwards). The steps are
  tiny (K prompts, a batch of dot products), and on a loaded machine torch's OpenMP team
  can be ~50x slower than one thread (measured: 1.3 s vs 0.02 s per MiniLM prompt step on 2
  busy cores), hence the default 1; ``None`` leaves torch's setting alone;
- initial center names: the noun nearest to each initial cluster's joint-space centroid,
  distinct across clusters (identical initial centers could never separate);
- ``kmeans_iter=100`` iterations (faiss's default) with ``n_init=5`` restarts for both k-means
  of the no-train stage (TAC's noun centers and the clustering of the relation rows). TAC's
  own code runs 300 x 10 (:mod:`semclust.ops.tac_text`, TAC's default); LAIC gives no k-means
  settings, and 300 iterations tripled the stage's time on Fashion-MNIST test
  (benchmarks/speed.py) for centers that 100 iterations already reach.

Under ``torchrun`` (``WORLD_SIZE > 1``) training runs with DistributedDataParallel (see
:meth:`LAIC._train`): every rank draws the same global batches and keeps its part of each, the
batch-mean prediction of the entropy term is all-reduced, and the ranks end with the centers of
one process training on the whole batches; rank 0 alone writes the checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
import torch
from numpy.typing import ArrayLike

from semclust.deprecated import renamed_keywords
from semclust.distributed import (
    DistContext,
    barrier,
    broadcast_object,
    join_if_launched,
    local_context,
    shard_indices,
    wrap_ddp,
)
from semclust.methods.base import BaseClusterer, check_is_fitted, check_n_clusters
from semclust.methods.laic_notrain import (
    LAIC_KMEANS_ITER,
    LAICNoTrain,
    check_noun_embeddings,
    initial_center_nouns,
    nearest_distinct_nouns,
)
from semclust.methods.spec import FeatureSet, MethodResult, MethodSpec
from semclust.ops.features import as_feature_matrix, check_positive_int, l2_normalize
from semclust.ops.filtering import FilterRule, filter_neighbours, pair_purity
from semclust.ops.knn import knn
from semclust.ops.relation import RelationMode, relation_rows_normalized
from semclust.store.checkpoint import EpochCheckpoint, TrainingState, digest_arrays, open_checkpoint


class _FreeCenters(torch.nn.Module):
    def __init__(self, init: np.ndarray) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.tensor(init, dtype=torch.float32))

    def forward(self) -> torch.Tensor:
        return torch.nn.functional.normalize(self.weight, dim=-1)


class LAIC(BaseClusterer):
    """LAIC with filtered relation-space neighbours and learned semantic centers.

    ``fit(X, noun_embeddings, noun_names, image_features=None, text_tower=None, y=None,
    on_epoch=None)``: ``X`` are joint (image-text) image embeddings, ``noun_embeddings`` the
    vocabulary in the same space and ``noun_names`` its names. ``image_features`` (any image
    space, e.g. the visual view) is the second space of the ``"cross"`` filter; without it the
    joint space is used. ``text_tower`` (MiniLMTextTower, CLIP HFClipEncoder, or a
    :class:`~semclust.encoders.prompt.FrozenTextModule`) is required for ``centers="prompt"``;
    its model is frozen in place. ``y`` is used only to report ``neighbour_purity_``.
    ``on_epoch(epoch, mean_loss)`` is called after each epoch.

    ``checkpoint_dir``: after every epoch the training state (centers or prompt contexts,
    Adam state, RNG state, loss history) is saved there (:mod:`semclust.store.checkpoint`);
    with ``resume=True`` a fit continues after the last saved epoch (``on_epoch`` is first
    called for the epochs already done) and ends with the labels of an uninterrupted fit.
    Without ``resume`` an old checkpoint there is discarded.

    Learned: ``labels_`` (argmax p), ``centers_`` (unit-norm ``[K, d]`` in the joint space),
    ``cluster_nouns_`` (top-5 distinct nearest nouns of each center, among the whole vocabulary
    by default or the selected nouns with ``name_from="selected"``), ``cluster_names_``
    (the first of them: every method's ``cluster_names_`` holds one name per cluster),
    ``initial_labels_``, ``initial_names_``, ``neighbours_``,
    ``neighbour_mask_``, ``loss_history_``, ``neighbour_purity_`` (dict or None) and
    ``no_train_`` (the fitted :class:`LAICNoTrain`).

    A saved model (:meth:`to_state`) keeps the centers, labels, names and histories; the
    neighbours, their mask and ``no_train_`` are training by-products and are not kept.
    """

    _state_arrays = ("labels_", "centers_", "initial_labels_")
    _state_values = (
        "n_features_in_",
        "cluster_names_",
        "cluster_nouns_",
        "initial_names_",
        "loss_history_",
        "neighbour_purity_",
    )

    def __init__(
        self,
        n_clusters: int = 10,
        relation: RelationMode = "ridge",
        lam: float = 1.0,
        n_centers: int | None = None,
        nouns_per_center: int = 5,
        n_neighbours: int = 10,
        filter_rule: FilterRule = "cross",
        min_keep: int = 0,
        centers: str = "prompt",
        n_ctx: int = 4,
        ctx_init: str | None = "a photo of a",
        temperature: float = 0.01,
        epochs: int = 20,
        batch_size: int = 512,
        lr: float = 1e-3,
        entropy_weight: float = 5.0,
        n_init: int = 5,
        kmeans_iter: int = LAIC_KMEANS_ITER,
        name_from: str = "all",
        device: str = "cpu",
        torch_threads: int | None = 1,
        random_state: int = 0,
    ) -> None:
        self.n_clusters = n_clusters
        self.relation = relation
        self.lam = lam
        self.n_centers = n_centers
        self.nouns_per_center = nouns_per_center
        self.n_neighbours = n_neighbours
        self.filter_rule = filter_rule
        self.min_keep = min_keep
        self.centers = centers
        self.n_ctx = n_ctx
        self.ctx_init = ctx_init
        self.temperature = temperature
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.entropy_weight = entropy_weight
        self.name_from = name_from
        self.n_init = n_init
        self.kmeans_iter = kmeans_iter
        self.device = device
        self.torch_threads = torch_threads
        self.random_state = random_state

    # ------------------------------------------------------------------ fit

    @renamed_keywords({"visual_feats": "image_features"})
    def fit(
        self,
        X: ArrayLike,
        noun_embeddings: ArrayLike | None = None,
        noun_names: Sequence[str] | None = None,
        image_features: ArrayLike | None = None,
        text_tower: Any = None,
        y: ArrayLike | None = None,
        on_epoch: Callable[[int, float], object] | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        resume: bool = False,
    ) -> LAIC:
        if self.centers not in ("prompt", "free"):
            raise ValueError(f"centers must be 'prompt' or 'free', got {self.centers!r}")
        if self.name_from not in ("selected", "all"):
            raise ValueError(f"name_from must be 'selected' or 'all', got {self.name_from!r}")
        for name in ("temperature", "lr"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        for name in ("epochs", "batch_size", "n_neighbours"):
            check_positive_int(getattr(self, name), name)
        u = l2_normalize(self._validate_fit_input(X, min_samples=2))
        n = u.shape[0]
        k = check_n_clusters(self.n_clusters, n)
        s = l2_normalize(check_noun_embeddings(noun_embeddings, u.shape[1]))
        if noun_names is None or len(noun_names) != s.shape[0]:
            raise ValueError("fit needs noun_names, one name per row of noun_embeddings")
        names = [str(x) for x in noun_names]
        if self.centers == "prompt" and text_tower is None:
            raise ValueError("centers='prompt' needs text_tower (the frozen text encoder)")

        # 1. no-train clustering on relation rows; neighbours in that space
        base = LAICNoTrain(
            n_clusters=k,
            relation=self.relation,
            lam=self.lam,
            n_centers=self.n_centers,
            nouns_per_center=self.nouns_per_center,
            n_init=self.n_init,
            kmeans_iter=self.kmeans_iter,
            random_state=self.random_state,
        ).fit(u, s)
        self.no_train_ = base
        self.initial_labels_ = base.labels_
        rows = relation_rows_normalized(base.relation_)
        neigh, _ = knn(rows, self.n_neighbours)

        # 2. neighbourhood consistency filtering
        neigh_b = None
        if self.filter_rule == "cross":
            second = u if image_features is None else as_feature_matrix(image_features, name="image_features")
            if second.shape[0] != n:
                raise ValueError(f"image_features has {second.shape[0]} rows for {n} images")
            neigh_b, _ = knn(second, self.n_neighbours)
        mask = filter_neighbours(
            neigh, neigh_b=neigh_b, labels_a=base.labels_, rule=self.filter_rule, min_keep=self.min_keep
        )
        self.neighbours_, self.neighbour_mask_ = neigh, mask
        self.neighbour_purity_ = None
        if y is not None:
            before, after, kept = pair_purity(neigh, mask, np.asarray(y))
            self.neighbour_purity_ = {"before": before, "after": after, "kept_fraction": kept}

        # 3. initial centers named by the nearest noun to each initial cluster's centroid
        centroids = np.stack(
            [
                u[base.labels_ == c].mean(axis=0) if (base.labels_ == c).any() else np.zeros(u.shape[1], np.float32)
                for c in range(k)
            ]
        )
        init_idx = initial_center_nouns(centroids, s, names)
        self.initial_names_ = [names[j] for j in init_idx]

        torch.manual_seed(int(self.random_state))
        # Under torchrun every rank joins the process group (a CUDA device becomes cuda:LOCAL_RANK).
        dist_ctx = join_if_launched(self.device)
        device = dist_ctx.device if dist_ctx.distributed else torch.device(self.device)
        if self.centers == "prompt":
            from semclust.encoders.prompt import PromptLearner

            module: torch.nn.Module = PromptLearner(
                text_tower,
                n_ctx=self.n_ctx,
                init_names=self.initial_names_,
                ctx_init=self.ctx_init,
                random_state=self.random_state,
            )
        else:
            module = _FreeCenters(s[init_idx]).to(device)
        checkpoint, saved = open_checkpoint(
            checkpoint_dir,
            self,
            digest_arrays(u, s, None if image_features is None else np.asarray(image_features), np.asarray(names))
            if checkpoint_dir is not None
            else "",
            resume=resume,
        )
        threads = torch.get_num_threads()
        if self.torch_threads is not None:
            torch.set_num_threads(int(self.torch_threads))
        try:
            self.loss_history_ = self._train(module, u, neigh, mask, device, on_epoch, checkpoint, saved, dist_ctx)
        finally:
            torch.set_num_threads(threads)

        # 4. final centers, labels and names
        with torch.no_grad():
            w = module().float().cpu().numpy()
        self.centers_ = l2_normalize(np.ascontiguousarray(w, dtype=np.float32))
        self.labels_ = np.argmax(u @ self.centers_.T, axis=1).astype(np.int64)
        # name_from="selected" restricts names to the nouns the relation matrix was built on (those
        # near the images): a learned center can drift where the nearest of 82k nouns are unrelated.
        pool = base.selected_nouns_ if self.name_from == "selected" else np.arange(len(names))
        pool_names = [names[j] for j in pool]
        tops = nearest_distinct_nouns(self.centers_, s[pool], pool_names, 5)
        self.cluster_nouns_ = [[pool_names[j] for j in top] for top in tops]
        self.cluster_names_ = [top[0] if top else "" for top in self.cluster_nouns_]
        self.n_features_in_ = u.shape[1]
        return self

    def _train(
        self,
        module: torch.nn.Module,
        u: np.ndarray,
        neigh: np.ndarray,
        mask: np.ndarray,
        device: torch.device,
        on_epoch: Callable[[int, float], object] | None,
        checkpoint: EpochCheckpoint | None = None,
        saved: TrainingState | None = None,
        dist_ctx: DistContext | None = None,
    ) -> list[float]:
        """Adam on the consistency + entropy loss; returns the mean loss of every epoch.

        With a distributed ``dist_ctx`` (torchrun) the module is wrapped in DDP. Every rank has the
        same ``u`` and the same seeded ``rng``, so it draws the same permutation and neighbour
        picks, i.e. the same global batch of B anchors, and keeps its contiguous part of it. The
        local loss is scaled so that DDP's average of the ranks' gradients is the gradient of the
        one-process loss on the whole batch: the consistency term is ``world_size * (local sum) /
        B``; the entropy term uses the global ``mean_p`` (a differentiable all-reduce of the local
        sums of ``pa``, divided by B), whose backward sums the ranks' identical upstream gradients,
        a factor ``world_size`` that DDP's averaging divides out again. Rank 0 alone saves the
        checkpoint; every rank loads it when resuming. Batches need not split evenly.
        """
        ctx = dist_ctx if dist_ctx is not None else local_context(device)
        if ctx.distributed:
            if torch.distributed.get_backend() == "nccl" and device.type != "cuda":
                raise ValueError("under torchrun with a CUDA process group LAIC trains on the GPU: pass device='cuda'")
            # Every rank trains on rank 0's pairs: the ranks' steps must match one for one (a rank
            # with another number of anchors would wait forever in a collective), and the stages
            # before (k-means, kNN) are not promised to be bit-identical across processes.
            neigh, mask = broadcast_object((neigh, mask), ctx)
        counts = mask.sum(axis=1)
        anchors = np.flatnonzero(counts > 0)
        if anchors.size == 0:
            raise ValueError("neighbourhood filtering kept no pair; use min_keep >= 1 or another rule")
        # kept neighbours first in each row (stable, so by decreasing similarity)
        order = np.argsort(~mask, axis=1, kind="stable")
        kept_first = np.take_along_axis(neigh, order, axis=1)
        rng = np.random.default_rng(self.random_state)
        feats = torch.from_numpy(u).to(device)
        params = [p for p in module.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=self.lr)
        inv_t = 1.0 / float(self.temperature)
        bs = max(1, int(self.batch_size))
        history: list[float] = []
        start_epoch = 0
        if saved is not None:
            saved.load_module("centers", module)
            saved.load_optimizer("optimizer", opt)
            saved.load_numpy_rng("rng", rng)
            saved.load_torch_global_rng()
            history = [float(v) for v in saved.values["loss_history"]]
            start_epoch = saved.epoch
            if on_epoch is not None:
                for epoch, loss_value in enumerate(history):
                    on_epoch(epoch, loss_value)
        # DDP broadcasts rank 0's parameters and buffers once; the buffers (a prompt learner's
        # fixed token embeddings) never change, so they are not re-broadcast before every forward.
        train_module = wrap_ddp(module, ctx, forward_sync_buffers=False)
        module.train()
        for epoch in range(start_epoch, int(self.epochs)):
            perm = rng.permutation(anchors)
            total, steps = 0.0, 0
            for start in range(0, len(perm), bs):
                a = perm[start : start + bs]
                pick = (rng.random(len(a)) * counts[a]).astype(np.int64)
                b = kept_first[a, pick]
                w = train_module().to(feats.dtype)
                if ctx.distributed:
                    loss, logged = self._sharded_loss(feats, w, a, b, inv_t, ctx)
                    total += logged
                else:
                    pa = torch.softmax(feats[a] @ w.T * inv_t, dim=1)
                    pb = torch.softmax(feats[b] @ w.T * inv_t, dim=1)
                    consistency = -torch.log((pa * pb).sum(1).clamp_min(1e-8)).mean()
                    mean_p = pa.mean(0)
                    entropy = -(mean_p * torch.log(mean_p.clamp_min(1e-8))).sum()
                    loss = consistency - self.entropy_weight * entropy
                opt.zero_grad()
                loss.backward()
                opt.step()
                if not ctx.distributed:
                    total += float(loss.detach())
                steps += 1
            if ctx.distributed:  # each rank holds its share of the epoch's loss: add them up
                total_t = torch.tensor(total, dtype=torch.float64, device=device)
                torch.distributed.all_reduce(total_t)
                total = float(total_t)
            history.append(total / max(steps, 1))
            if checkpoint is not None and ctx.is_main:
                state = TrainingState(epoch + 1, values={"loss_history": history})
                state.put_module("centers", module)
                state.put_optimizer("optimizer", opt)
                state.put_numpy_rng("rng", rng)
                state.put_torch_global_rng()
                checkpoint.save(state)
            if checkpoint is not None:
                barrier(ctx)  # no rank leaves an epoch before its checkpoint is complete
            if on_epoch is not None:
                on_epoch(epoch, history[-1])
        module.eval()
        return history

    def _sharded_loss(
        self, feats: torch.Tensor, w: torch.Tensor, a: np.ndarray, b: np.ndarray, inv_t: float, ctx: DistContext
    ) -> tuple[torch.Tensor, float]:
        """This rank's loss for the global batch ``(a, b)`` under DDP, and its share of the batch loss.

        The shares of all ranks add up to the one-process loss of the batch (for the history).
        """
        # Differentiable: its backward all-reduces (sums) the gradients of the ranks.
        from torch.distributed._functional_collectives import all_reduce as differentiable_all_reduce

        n_global = len(a)
        mine = cast(np.ndarray, shard_indices(np.arange(n_global), ctx))  # may be empty when B < world_size
        pa = torch.softmax(feats[a[mine]] @ w.T * inv_t, dim=1)
        pb = torch.softmax(feats[b[mine]] @ w.T * inv_t, dim=1)
        consistency_sum = -torch.log((pa * pb).sum(1).clamp_min(1e-8)).sum()
        world = cast(torch.distributed.ProcessGroup, torch.distributed.group.WORLD)
        mean_p = differentiable_all_reduce(pa.sum(0), "sum", world) / n_global
        entropy = -(mean_p * torch.log(mean_p.clamp_min(1e-8))).sum()
        loss = consistency_sum * (ctx.world_size / n_global) - self.entropy_weight * entropy
        share = (
            float(consistency_sum.detach()) / n_global - self.entropy_weight * float(entropy.detach()) / ctx.world_size
        )
        return loss, share

    # ------------------------------------------------------------------ predict

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """``p(k|x) = softmax_k(cos(u_x, w_k) / T)`` for new joint-space images."""
        x = l2_normalize(self._validate_predict_input(X))
        logits = (x @ self.centers_.T) / np.float32(self.temperature)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: ArrayLike) -> np.ndarray:
        check_is_fitted(self, ("centers_",))
        x = l2_normalize(self._validate_predict_input(X))
        return np.argmax(x @ self.centers_.T, axis=1).astype(np.int64)


def fit_laic(
    features: FeatureSet,
    n_clusters: int,
    random_state: int,
    *,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    **options: Any,
) -> MethodResult:
    names, nouns = features.noun_vocabulary()
    estimator = LAIC(n_clusters=n_clusters, random_state=random_state, **options)
    tower = features.text_tower() if estimator.centers == "prompt" else None
    on_epoch = features.epoch_callback(f"training laic ({estimator.centers} centers)", estimator.epochs)
    # Labels only measure neighbour purity for the report; training never reads them.
    estimator.fit(
        features.joint,
        nouns,
        noun_names=names,
        image_features=features.visual,
        text_tower=tower,
        y=features.labels,
        on_epoch=on_epoch,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
    )
    info: dict[str, Any] = {"final_loss": estimator.loss_history_[-1], "initial_names": estimator.initial_names_}
    if estimator.neighbour_purity_ is not None:
        info["neighbour_purity"] = estimator.neighbour_purity_
    return MethodResult(estimator, estimator.labels_, n_clusters, cluster_names=estimator.cluster_nouns_, info=info)


SPEC = MethodSpec(
    name="laic",
    estimator=LAIC,
    fit=fit_laic,
    summary="LAIC: relation-matrix neighbours and K semantic centers learned by prompt learning",
    needs=frozenset({"nouns", "text"}),
    resumable=True,
    names_from_centers=True,
)
METHOD_SPECS = (SPEC,)
