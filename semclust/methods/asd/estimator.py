"""The ASD estimator (see :mod:`semclust.methods.asd` for the method)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from semclust.methods.asd.backbones import PixelBackbone, classify_pixels
from semclust.methods.asd.budget import coverage_probability, default_mu, default_n_labelled
from semclust.methods.asd.checks import check_params, check_saved_values
from semclust.methods.asd.frozen import (
    BACKBONES,
    FrozenBackbone,
    check_frozen_values,
    check_views,
    predict_frozen,
    set_frozen_fit,
)
from semclust.methods.asd.instance import StageTicks
from semclust.methods.asd.rounds import sample_and_group
from semclust.methods.asd.similarity import (
    confident_members,
)
from semclust.methods.asd.state import Grouping, RunCheckpoint
from semclust.methods.base import BaseClusterer, NotFittedError, check_is_fitted
from semclust.ssl.views import CachedViews


class ASD(BaseClusterer):
    """Cluster images with ASD (see the module docstring).

    ``backbone="scratch"`` (the paper's setting): ``fit(images, y=None, features=None)`` with
    ``images`` uint8 ``[n,H,W]`` or ``[n,H,W,3]``, every stage a network trained on the pixels.
    ``backbone="frozen"``: ``fit(images_or_features, features=F, views=V, encoder=E)`` with an
    encoder's features ``F`` ``[n, d]`` and their cached augmented views ``V``
    (:func:`semclust.ssl.views.build_views`): every stage is a linear head (``hidden=0``; else
    an MLP with ``hidden`` units; :mod:`semclust.ssl.feature_head`) over the frozen features;
    ``predict`` takes feature rows, or uint8 images that it embeds with ``E`` (a saved model
    rebuilds it from its config).
    ``backbone="auto"`` (default) is frozen when ``views`` are given, scratch otherwise.
    ``features`` (``[n, d]``) also feed the prototype sampler; ``y`` only measures the purity of the
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
        transition_window: float | None = None,
        max_tracked: int | None = None,
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
        backbone: str = "auto",
        hidden: int = 0,
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
        self.backbone = backbone
        self.hidden = hidden

    # -------------------------------------------------------------- helpers
    def _check(self, n: int) -> None:
        check_params(self)

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

    def _backbone(self, x: np.ndarray) -> PixelBackbone:
        return PixelBackbone(
            x,
            network=self.network,
            batch_size=int(self.batch_size),
            lr=float(self.lr),
            threshold=float(self.threshold),
            flip=bool(self.flip),
            device=self.device,
            checkpoint_every=int(self.checkpoint_every),
        )

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        X: Any,
        y: Any = None,
        features: Any = None,
        progress: Callable[[str, int], Callable[..., None]] | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        resume: bool = False,
        views: CachedViews | None = None,
        encoder: Any = None,
    ) -> ASD:
        """Fit on the uint8 images ``X`` (frozen backbone: images or the features themselves);
        ``progress(description, total)`` gives each stage's tick function.

        ``checkpoint_dir``: every stage checkpoints there (see the class docstring); with
        ``resume=True`` a killed fit continues from it, without ``resume`` an old one is discarded.
        """
        from semclust.metrics import evaluate

        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; expected one of {', '.join(BACKBONES)}")
        frozen = self.backbone == "frozen" or (self.backbone == "auto" and views is not None)
        images = X
        if frozen:
            if features is None and np.asarray(X).dtype != np.uint8:
                features = X
            if features is None:
                raise ValueError("backbone='frozen' needs features (the encoder's, one row per image) and views")
            x = np.ascontiguousarray(np.asarray(features, dtype=np.float32))
            images = X if np.asarray(X).dtype == np.uint8 else None
            if x.ndim != 2 or (images is not None and len(images) != len(x)):
                raise ValueError(f"features must be [n_images, d] with one row per image, got shape {x.shape}")
        else:
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
        coverage = coverage_probability(n, k, n_l)
        mu = {"instance": self._mu(n, int(self.instance_steps)), "ssl": self._mu(n, int(self.ssl_steps))}
        backbone: PixelBackbone | FrozenBackbone
        if frozen:
            cached = check_views(views, n, x.shape[1])
            backbone = FrozenBackbone(
                x, cached, int(self.hidden), int(self.batch_size), float(self.lr), float(self.threshold), self.device
            )
            digest: tuple[np.ndarray | None, ...] = (x, feats, cached.weak, cached.strong)
        else:
            backbone = self._backbone(x)
            digest = (x, feats)
        checkpoint = None
        if checkpoint_dir is not None:
            from semclust.store.checkpoint import digest_arrays, fingerprint

            identity = fingerprint(self, digest_arrays(*digest))
            identity["params"].pop("checkpoint_every", None)  # how often to save never changes the result
            checkpoint = RunCheckpoint(checkpoint_dir, identity, resume=resume)
        rounds = int(self.rounds)
        rng = np.random.default_rng(self.random_state)

        sampled: list[np.ndarray] = []
        lb_idx_all: list[np.ndarray] = []
        lb_lab_all: list[np.ndarray] = []
        groups_all: list[np.ndarray] = []
        stage = None
        grouping: Grouping | None = None
        for r in range(rounds):
            seed = int(self.random_state) + 1000 * r
            saved = checkpoint.grouping(r) if checkpoint is not None else None
            if saved is not None:  # grouped before the kill: no sampling, instance stage or grouping
                grouping, sampler_rng = saved
                rng.bit_generator.state = sampler_rng
            else:
                grouping = sample_and_group(
                    self, backbone, feats, n_l, k, r, seed, rng, sampled, lb_idx_all, stage, mu, progress, checkpoint
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
            if checkpoint is not None and r + 1 < rounds and checkpoint.n_rounds > r + 1:
                # The next round is grouped already, so nothing reads this round's SSL model (it
                # would only align the next round's groups), and the next SSL stage retrains on
                # the union: this one is skipped.
                stage = None
                continue
            tick = progress(f"asd round {r + 1}: fixmatch ({k} clusters)", int(self.ssl_steps)) if progress else None
            ssl_ticks = StageTicks(tick, int(self.ssl_steps))
            out_dir = checkpoint.stage_dir(r, "ssl") if checkpoint is not None else None
            stage = backbone.stage(k, int(self.ssl_steps), seed + 1, mu["ssl"], out_dir)
            stage.fit(np.concatenate(lb_idx_all), np.concatenate(lb_lab_all), ssl_ticks.fixmatch_step)
            ssl_ticks.finish()

        assert stage is not None and grouping is not None  # _check makes rounds >= 1
        trainer = stage.trainer
        self.backbone_ = "frozen" if frozen else "scratch"
        self.coverage_probability_ = coverage
        self.n_labelled_ = n_l
        self.mu_ = mu
        self.transitions_ = grouping.transitions
        self.similarity_ = grouping.similarity
        self.co_predictions_used_ = grouping.co_predictions_used
        self.n_records_ = grouping.n_records
        self.sampled_indices_ = np.concatenate(sampled)
        self.instance_groups_ = np.concatenate(groups_all)
        self.labelled_indices_ = np.concatenate(lb_idx_all)
        self.labelled_labels_ = np.concatenate(lb_lab_all)
        self.trainer_ = trainer
        self.cluster_names_ = None
        self._score_sampling(y_arr, evaluate)
        if frozen:
            set_frozen_fit(self, trainer, x, images, encoder)
            return self
        # What predict needs (and a saved model keeps): the EMA network and the normalisation
        # statistics the trainer computed, the shape of the images fit was given (new images are
        # brought to it first) and the shape the network saw.
        self.model_ = trainer.ema_model
        self.mean_ = [float(v) for v in trainer.mean]
        self.std_ = [float(v) for v in trainer.std]
        assert isinstance(backbone, PixelBackbone)
        self.in_channels_ = int(backbone.in_channels)
        self.input_shape_ = tuple(int(v) for v in np.shape(images)[1:])
        self.image_shape_ = tuple(int(v) for v in x.shape[1:])
        self.n_features_in_ = int(np.prod(self.input_shape_))
        self.labels_ = classify_pixels(self.model_, x, self.mean_, self.std_)
        return self

    def _score_sampling(self, y_arr: np.ndarray | None, evaluate: Callable[..., dict[str, Any]]) -> None:
        """Purity of the sampled images' cluster labels (training never reads ``y``)."""
        self.pseudo_label_purity_: float | None = None
        self.labelled_purity_: float | None = None
        self.classes_covered_: int | None = None
        if y_arr is not None and (y_arr[self.sampled_indices_] >= 0).any():
            ys = y_arr[self.sampled_indices_]
            known = ys >= 0
            self.pseudo_label_purity_ = float(evaluate(ys[known], self.instance_groups_[known])["acc"])
            self.classes_covered_ = int(len(np.unique(ys[known])))
            yl = y_arr[self.labelled_indices_]
            self.labelled_purity_ = float(evaluate(yl[yl >= 0], self.labelled_labels_[yl >= 0])["acc"])

    def predict(self, X: Any) -> np.ndarray:
        """Cluster of new uint8 images by the EMA model. The images are prepared as in ``fit``
        (the same resizing for the same input size), then brought to the trained size."""
        if not hasattr(self, "model_"):
            raise NotFittedError("This ASD instance is not fitted yet; call 'fit' first.")
        if getattr(self, "backbone_", "scratch") == "frozen":
            return predict_frozen(self, X)
        x = self._prepare_images(X)
        channels = 1 if x.ndim == 3 else x.shape[-1]
        if channels != self.in_channels_:
            raise ValueError(f"images have {channels} channel(s); this ASD model was trained on {self.in_channels_}")
        if tuple(x.shape[1:]) != self.image_shape_:
            from semclust.ssl.data import resize_uint8

            x = resize_uint8(x, self.image_shape_[0])
        return classify_pixels(self.model_, x, self.mean_, self.std_)

    # --------------------------------------------------------------- saving
    # A saved model (semclust.outputs.model) keeps the EMA network's tensors ("model_.<key>"),
    # labels_ and the JSON values below (base.py's mechanism); loading rebuilds the network by
    # name, never unpickling.
    _state_arrays = ("labels_",)
    _state_modules = ("model_",)
    _state_values = (
        "n_features_in_", "cluster_names_", "mean_", "std_", "in_channels_", "input_shape_", "image_shape_",
        "n_labelled_", "coverage_probability_", "pseudo_label_purity_", "classes_covered_", "backbone_",
        "encoder_config_",
    )  # fmt: skip

    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """``(arrays, values)``: ``labels_`` and the EMA network's state dict for safetensors,
        the normalisation, shapes and sampling summary as JSON-able values."""
        check_is_fitted(self, ("labels_", "model_"))
        if getattr(self, "backbone_", "scratch") == "scratch" and not isinstance(self.network, str):
            raise ValueError("only an ASD trained with a named network (e.g. 'cnn') can be saved")
        return super().to_state()

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], values: dict[str, Any]) -> ASD:
        """Rebuild a fitted ASD (on the CPU) from :meth:`get_params` and :meth:`to_state` output;
        ValueError when a value, an array or a network tensor is missing or does not fit.
        Models saved before the estimator moved onto ``BaseClusterer`` (network tensors under
        ``model.<key>``, no ``n_features_in_``) load too."""
        arrays = {("model_." + k[len("model.") :] if k.startswith("model.") else k): v for k, v in arrays.items()}
        values = dict(values)
        values.setdefault("backbone_", "scratch")  # saved before the frozen backbone existed
        if values["backbone_"] == "frozen":
            check_frozen_values(values)
            estimator = super().from_state(params, arrays, values)
            assert isinstance(estimator, ASD)
            if estimator.input_shape_ is not None:
                estimator.input_shape_ = tuple(estimator.input_shape_)
            return estimator
        check_saved_values(params, values, ASD._state_values)
        values.setdefault("n_features_in_", int(np.prod(values["input_shape_"])))
        values.setdefault("cluster_names_", None)
        estimator = super().from_state(params, arrays, values)
        assert isinstance(estimator, ASD)
        estimator.input_shape_ = tuple(values["input_shape_"])
        estimator.image_shape_ = tuple(values["image_shape_"])
        for p in estimator.model_.parameters():
            p.requires_grad_(False)
        return estimator

    def _new_modules(self) -> dict[str, Any]:
        from semclust.ssl.nets import build_network

        if getattr(self, "backbone_", "scratch") == "frozen":
            from semclust.ssl.feature_head import FeatureHead

            return {"model_": FeatureHead(int(self.n_features_in_), int(self.n_clusters), int(self.hidden))}

        network = build_network(self.network, num_classes=int(self.n_clusters), in_channels=int(self.in_channels_))
        return {"model_": network}
