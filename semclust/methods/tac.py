"""TAC: image clustering with text counterparts retrieved from WordNet nouns.

Li et al., "Image Clustering with External Guidance", ICML 2024 (RESEARCH.md section 2).
Both variants start from the same text side (:mod:`semclust.ops.tac_text`): nouns are kept
near k' image k-means centers, and every image ``u_i`` gets a text counterpart ``t_i``, a
sharp softmax blend of the kept nouns.

* :class:`TACNoTrain` clusters the concatenation ``[u_i ; t_i]`` with spherical k-means.
* :class:`TAC` trains an image head and a text head with cross-modal mutual distillation
  (:func:`tac_loss`) and clusters by the image head's argmax.

Defaults follow TAC's public code (XLearning-SCU/2024-ICML-TAC, see docs/reference_notes.md):
one image-text consistency term per sample, k' = N/300 (3K when that is below K), k-means with
300 iterations and 10 (noun centers) / 20 (no-train) restarts, Adam betas (0.9, 0.99),
trunc-normal(0.02) head weights, heads as wide as their input (``hidden_dim=None``), every
WordNet noun a candidate (``dedupe_nouns=False``), faiss's k-means subsample of 256 points per
center (``kmeans_max_points_per_centroid=256``), full batches only, and separate forward
passes for anchors and neighbours. Our earlier choices remain options (``consistency="cross"``,
``joint_batch_norm=True``, ``drop_last=False``, ``head_init="default"``, ``hidden_dim=512``,
``dedupe_nouns=True``, ``kmeans_max_points_per_centroid=None``: every point). Details marked
*Interpretation* are not pinned down by the paper or the code and were chosen here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, cast

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import nn

from semclust.deprecated import renamed_keywords
from semclust.methods.base import BaseClusterer, check_n_clusters
from semclust.methods.losses import EPS, cluster_entropy
from semclust.methods.naming import text_space_centroids
from semclust.methods.spec import FeatureSet, MethodResult, MethodSpec
from semclust.methods.tac_notrain import (
    TACTextSide,
    check_noun_embeddings,
    check_noun_names,
    image_input,
    image_side,
    tac_inputs,
)
from semclust.ops.features import check_positive_int, l2_normalize
from semclust.ops.knn import knn
from semclust.ops.tac_text import (
    DEFAULT_TEMPERATURE,
    FAISS_MAX_POINTS_PER_CENTROID,
    NOUN_KMEANS_RESTARTS,
    text_counterparts,
)
from semclust.store.checkpoint import EpochCheckpoint, TrainingState, digest_arrays, open_checkpoint

# --------------------------------------------------------------------------- training


HEAD_INITS = ("trunc_normal", "default")
CONSISTENCY_MODES = ("same", "cross")


def make_head(dim: int, hidden_dim: int | None, n_clusters: int, init: str = "trunc_normal") -> nn.Sequential:
    """Linear(d, hidden) - BatchNorm1d - ReLU - Linear(hidden, K) - softmax.

    ``hidden_dim=None``: ``hidden = d``, as TAC's ``models.py`` builds its heads (512 wide for
    CLIP ViT-B/32's 512-d features).

    ``init="trunc_normal"`` (TAC's ``models.py``): both Linear weights ~ truncated normal with
    std 0.02 (biases keep PyTorch's default); ``"default"``: PyTorch's default initialisation.
    """
    if init not in HEAD_INITS:
        raise ValueError(f"head init must be one of {', '.join(HEAD_INITS)}, got {init!r}")
    hidden_dim = dim if hidden_dim is None else hidden_dim
    head = nn.Sequential(
        nn.Linear(dim, hidden_dim),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(),
        nn.Linear(hidden_dim, n_clusters),
        nn.Softmax(dim=1),
    )
    if init == "trunc_normal":
        for layer in (head[0], head[3]):
            nn.init.trunc_normal_(cast(nn.Linear, layer).weight, std=0.02)
    return head


def cluster_infonce(p: torch.Tensor, q: torch.Tensor, tau: float) -> torch.Tensor:
    """Cluster-level InfoNCE between the K columns of ``p`` and of ``q`` (both [B, K]).

    The 2K columns are L2-normalised over the batch; column k of ``p`` and column k of
    ``q`` are a positive pair, and every other of the 2K columns is a negative. The loss is
    the cross-entropy of each of the 2K columns against its partner, averaged over all 2K
    (so it is symmetric in ``p`` and ``q``), with cosine similarities divided by ``tau``.
    """
    k = p.shape[1]
    cols = torch.cat([p.t(), q.t()], dim=0)  # [2K, B]
    cols = cols / cols.norm(dim=1, keepdim=True).clamp_min(EPS)
    sim = cols @ cols.t() / tau
    self_mask = torch.eye(2 * k, dtype=torch.bool, device=p.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    target = torch.cat([torch.arange(k, 2 * k), torch.arange(0, k)]).to(p.device)
    return nn.functional.cross_entropy(sim, target)


def tac_loss(
    p_img: torch.Tensor,
    p_txt: torch.Tensor,
    p_img_nb: torch.Tensor,
    p_txt_nb: torch.Tensor,
    *,
    tau: float = 0.5,
    entropy_weight: float = 5.0,
    consistency: str = "same",
) -> tuple[torch.Tensor, dict[str, float]]:
    """TAC's training loss on one batch; returns ``(total, parts)``.

    Inputs are softmax outputs [B, K]: the image head on anchors ``u_i`` (``p_img``), the
    text head on anchors ``t_i`` (``p_txt``), the image head on a random image-neighbour
    of each anchor (``p_img_nb``) and the text head on a random text-neighbour
    (``p_txt_nb``).

    * distillation = ``cluster_infonce(p_txt, p_img_nb) + cluster_infonce(p_img, p_txt_nb)``
    * consistency (``"same"``, TAC's ``train_head.py``) = ``-mean_i log <p_txt_i, p_img_i>``:
      one term, the two heads on the same sample; ``"cross"`` (our earlier variant) =
      ``-mean_i log <p_txt_i, p_img_nb_i> - mean_i log <p_img_i, p_txt_nb_i>`` (two terms, so
      also twice the weight)
    * entropy = ``H(mean_i p_txt_i) + H(mean_i p_img_i)`` (anchors only)
    * total = distillation + consistency - entropy_weight * entropy

    Log arguments are clamped at 1e-8.
    """
    if consistency not in CONSISTENCY_MODES:
        raise ValueError(f"consistency must be one of {', '.join(CONSISTENCY_MODES)}, got {consistency!r}")
    distill = cluster_infonce(p_txt, p_img_nb, tau) + cluster_infonce(p_img, p_txt_nb, tau)
    if consistency == "same":
        consistency_term = -torch.log((p_txt * p_img).sum(dim=1).clamp_min(EPS)).mean()
    else:
        agree_a = (p_txt * p_img_nb).sum(dim=1).clamp_min(EPS)
        agree_b = (p_img * p_txt_nb).sum(dim=1).clamp_min(EPS)
        consistency_term = -torch.log(agree_a).mean() - torch.log(agree_b).mean()
    entropy = cluster_entropy(p_txt.mean(dim=0)) + cluster_entropy(p_img.mean(dim=0))
    total = distill + consistency_term - entropy_weight * entropy
    parts = {
        "distillation": float(distill.detach()),
        "consistency": float(consistency_term.detach()),
        "entropy": float(entropy.detach()),
        "total": float(total.detach()),
    }
    return total, parts


class TAC(TACTextSide, BaseClusterer):
    """TAC with training: two clustering heads taught by cross-modal mutual distillation.

    ``fit(X, noun_embeddings, noun_names=None, on_epoch=None)`` builds the text
    counterparts like :class:`TACNoTrain`, finds the ``n_neighbours`` nearest neighbours of
    every image among the images and of every counterpart among the counterparts, then
    trains an image head on ``u`` and a text head on ``t`` (:func:`make_head`) with
    :func:`tac_loss` and Adam (``betas`` (0.9, 0.99), as TAC) for ``epochs`` passes over
    shuffled batches of ``batch_size``; each step draws one random neighbour per anchor in
    each modality. As in TAC's ``train_head.py``, an incomplete last batch is dropped
    (``drop_last``) and anchors and neighbours go through the heads in separate forward passes,
    so BatchNorm normalises each on its own (``joint_batch_norm=True``: one pass over both).
    ``n_init`` is the noun centers' k-means restarts (TAC: 10).
    Clusters are the image head's argmax (in eval mode). ``on_epoch(epoch, mean_loss)`` is
    called after every epoch (1-based), e.g. for a progress bar.

    ``checkpoint_dir``: after every epoch both heads, the Adam state, the RNG states and the
    loss history are saved there (:mod:`semclust.store.checkpoint`); with ``resume=True`` a
    fit continues after the last saved epoch (``on_epoch`` is first called for the epochs
    already done) and ends with the labels of an uninterrupted fit. Without ``resume`` an old
    checkpoint there is discarded.

    Everything random (initial weights, shuffling, neighbour draws) comes from
    ``random_state``: on CPU the same seed gives identical labels. The global torch RNG
    state is restored afterwards. ``device`` is any torch device string ("cpu", "cuda",
    "cuda:1").

    Learned: ``labels_``, ``centers_`` (float32[K, d], normalised mean image embedding per
    cluster; an empty cluster has a zero row), ``loss_history_`` (mean loss per epoch),
    ``image_head_``/``text_head_`` (on CPU, eval mode), plus the text-side attributes of
    :class:`TACNoTrain` (``selected_nouns_``, ``text_counterparts_``, ``text_centers_``,
    ``cluster_nouns_``, ``cluster_names_`` ...).

    *Interpretations*: inputs to both heads are L2-normalised; ``n_neighbours`` is reduced
    to ``n - 1`` on small inputs; with ``drop_last=False`` a last batch of a single row is
    still dropped (BatchNorm needs two); the batch size is capped at n.
    """

    _state_arrays = ("labels_", "centers_", "selected_nouns_", "selected_noun_embeddings_", "text_centers_")
    _state_values = (
        "n_features_in_",
        "cluster_names_",
        "cluster_nouns_",
        "n_centers_",
        "image_dim_",
        "n_neighbours_",
        "loss_history_",
    )
    _state_modules = ("image_head_", "text_head_")

    def _new_modules(self) -> dict[str, nn.Module]:
        k = int(self.n_clusters)
        hidden = None if self.hidden_dim is None else int(self.hidden_dim)
        return {
            "image_head_": make_head(int(self.image_dim_), hidden, k, init=self.head_init),
            "text_head_": make_head(int(self.n_features_in_), hidden, k, init=self.head_init),
        }

    def __init__(
        self,
        n_clusters: int = 10,
        n_centers: int | None = None,
        nouns_per_center: int = 5,
        temperature: float = DEFAULT_TEMPERATURE,
        n_init: int = NOUN_KMEANS_RESTARTS,
        epochs: int = 20,
        batch_size: int = 512,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.99),
        n_neighbours: int = 50,
        tau: float = 0.5,
        entropy_weight: float = 5.0,
        hidden_dim: int | None = None,
        consistency: str = "same",
        drop_last: bool = True,
        joint_batch_norm: bool = False,
        head_init: str = "trunc_normal",
        dedupe_nouns: bool = False,
        kmeans_max_points_per_centroid: int | None = FAISS_MAX_POINTS_PER_CENTROID,
        device: str = "cpu",
        random_state: int = 0,
    ) -> None:
        self.n_clusters = n_clusters
        self.n_centers = n_centers
        self.nouns_per_center = nouns_per_center
        self.temperature = temperature
        self.n_init = n_init
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.betas = betas
        self.n_neighbours = n_neighbours
        self.tau = tau
        self.entropy_weight = entropy_weight
        self.hidden_dim = hidden_dim
        self.consistency = consistency
        self.drop_last = drop_last
        self.joint_batch_norm = joint_batch_norm
        self.head_init = head_init
        self.dedupe_nouns = dedupe_nouns
        self.kmeans_max_points_per_centroid = kmeans_max_points_per_centroid
        self.device = device
        self.random_state = random_state

    def _noun_restarts(self) -> int:
        return int(self.n_init)

    @renamed_keywords({"image_feats": "image_features"})
    def fit(
        self,
        X: ArrayLike,
        noun_embeddings: ArrayLike | None = None,
        y: ArrayLike | None = None,
        *,
        noun_names: Sequence[str] | None = None,
        on_epoch: Callable[[int, float], object] | None = None,
        image_features: ArrayLike | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        resume: bool = False,
    ) -> TAC:
        x = self._validate_fit_input(X, min_samples=2)
        k = check_n_clusters(self.n_clusters, x.shape[0])
        s = check_noun_embeddings(x, noun_embeddings)
        names = check_noun_names(noun_names, s.shape[0])
        epochs = check_positive_int(self.epochs, "epochs")
        batch_size = min(check_positive_int(self.batch_size, "batch_size"), x.shape[0])
        n_nb = min(check_positive_int(self.n_neighbours, "n_neighbours"), x.shape[0] - 1)
        hidden = None if self.hidden_dim is None else check_positive_int(self.hidden_dim, "hidden_dim")
        if isinstance(self.random_state, bool) or not isinstance(self.random_state, (int, np.integer)):
            raise TypeError(f"random_state must be an integer, got {self.random_state!r}")
        for name in ("lr", "tau"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        betas = tuple(float(b) for b in self.betas)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if self.consistency not in CONSISTENCY_MODES:
            raise ValueError(f"consistency must be one of {', '.join(CONSISTENCY_MODES)}, got {self.consistency!r}")
        if self.head_init not in HEAD_INITS:
            raise ValueError(f"head_init must be one of {', '.join(HEAD_INITS)}, got {self.head_init!r}")
        device = torch.device(self.device)

        u = image_side(x, image_features)
        self.image_dim_ = u.shape[1]
        t = self._fit_text_side(x, s)
        nb_img, _ = knn(u, n_nb)
        nb_txt, _ = knn(t, n_nb)

        checkpoint, saved = open_checkpoint(
            checkpoint_dir, self, digest_arrays(x, s, u) if checkpoint_dir is not None else "", resume=resume
        )
        fork_devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(int(self.random_state))
            img_head, txt_head, history = self._train(
                u, t, nb_img, nb_txt, k, hidden, epochs, batch_size, device, on_epoch, checkpoint, saved
            )
        self.image_head_ = img_head.cpu().eval()
        self.text_head_ = txt_head.cpu().eval()
        self.loss_history_ = history
        self.n_features_in_ = x.shape[1]
        self.n_neighbours_ = n_nb
        self.labels_ = self._image_probs(u).argmax(axis=1).astype(np.int64)
        self.centers_ = text_space_centroids(u, self.labels_, k)
        self._set_names(t, self.labels_, k, names)
        return self

    def _train(
        self,
        u: np.ndarray,
        t: np.ndarray,
        nb_img: np.ndarray,
        nb_txt: np.ndarray,
        k: int,
        hidden: int | None,
        epochs: int,
        batch_size: int,
        device: torch.device,
        on_epoch: Callable[[int, float], object] | None,
        checkpoint: EpochCheckpoint | None = None,
        saved: TrainingState | None = None,
    ) -> tuple[nn.Module, nn.Module, list[float]]:
        gen = torch.Generator().manual_seed(int(self.random_state))
        img_head = make_head(u.shape[1], hidden, k, init=self.head_init).to(device)
        txt_head = make_head(t.shape[1], hidden, k, init=self.head_init).to(device)
        params = list(img_head.parameters()) + list(txt_head.parameters())
        b1, b2 = (float(b) for b in self.betas)
        optimizer = torch.optim.Adam(params, lr=self.lr, betas=(b1, b2))
        u_t = torch.from_numpy(u).to(device)
        t_t = torch.from_numpy(t).to(device)
        nb_img_t = torch.from_numpy(nb_img)
        nb_txt_t = torch.from_numpy(nb_txt)
        n, n_nb = nb_img.shape
        history: list[float] = []
        start_epoch = 1
        if saved is not None:
            saved.load_module("image_head", img_head)
            saved.load_module("text_head", txt_head)
            saved.load_optimizer("optimizer", optimizer)
            saved.load_generator("rng.batches", gen)
            saved.load_torch_global_rng()
            history = [float(v) for v in saved.values["loss_history"]]
            start_epoch = saved.epoch + 1
            if on_epoch is not None:
                for epoch, loss_value in enumerate(history, start=1):
                    on_epoch(epoch, loss_value)
        img_head.train()
        txt_head.train()
        for epoch in range(start_epoch, epochs + 1):
            order = torch.randperm(n, generator=gen)
            total, steps = 0.0, 0
            for start in range(0, n, batch_size):
                anchors = order[start : start + batch_size]
                if len(anchors) < 2 or (self.drop_last and len(anchors) < batch_size):
                    continue
                pick = torch.randint(0, n_nb, (2, len(anchors)), generator=gen)
                j_img = nb_img_t[anchors, pick[0]].to(device)
                j_txt = nb_txt_t[anchors, pick[1]].to(device)
                a = anchors.to(device)
                b = len(anchors)
                if self.joint_batch_norm:  # one forward per head: BatchNorm sees both together
                    p_img_all = img_head(torch.cat([u_t[a], u_t[j_img]]))
                    p_txt_all = txt_head(torch.cat([t_t[a], t_t[j_txt]]))
                    p_img, p_img_nb, p_txt, p_txt_nb = p_img_all[:b], p_img_all[b:], p_txt_all[:b], p_txt_all[b:]
                else:  # TAC: anchors first, then neighbours, each batch normalised on its own
                    p_txt, p_img = txt_head(t_t[a]), img_head(u_t[a])
                    p_txt_nb, p_img_nb = txt_head(t_t[j_txt]), img_head(u_t[j_img])
                loss, _ = tac_loss(
                    p_img,
                    p_txt,
                    p_img_nb,
                    p_txt_nb,
                    tau=self.tau,
                    entropy_weight=self.entropy_weight,
                    consistency=self.consistency,
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach())
                steps += 1
            mean_loss = total / max(steps, 1)
            history.append(mean_loss)
            if checkpoint is not None:
                state = TrainingState(epoch, values={"loss_history": history})
                state.put_module("image_head", img_head)
                state.put_module("text_head", txt_head)
                state.put_optimizer("optimizer", optimizer)
                state.put_generator("rng.batches", gen)
                state.put_torch_global_rng()
                checkpoint.save(state)
            if on_epoch is not None:
                on_epoch(epoch, mean_loss)
        return img_head, txt_head, history

    @torch.no_grad()
    def _image_probs(self, u: np.ndarray) -> np.ndarray:
        return self.image_head_(torch.from_numpy(l2_normalize(u))).numpy()

    @torch.no_grad()
    def predict_proba(self, X: ArrayLike, head: str = "image", image_features: ArrayLike | None = None) -> np.ndarray:
        """float32[n, K] soft assignments from the ``"image"`` head (TAC's evaluation), the
        ``"text"`` head (on counterparts retrieved from the kept nouns) or their ``"mean"``.
        ``image_features`` must be given when ``fit`` had them."""
        x = self._validate_predict_input(X)
        if head not in ("image", "text", "mean"):
            raise ValueError(f"head must be 'image', 'text' or 'mean', got {head!r}")
        p_img = self._image_probs(image_side(x, image_features, self.image_dim_))
        if head == "image":
            return p_img
        t = text_counterparts(x, self.selected_noun_embeddings_, temperature=self.temperature)
        p_txt = self.text_head_(torch.from_numpy(t)).numpy()
        return p_txt if head == "text" else (p_img + p_txt) / 2

    @renamed_keywords({"image_feats": "image_features"})
    def predict(self, X: ArrayLike, image_features: ArrayLike | None = None) -> np.ndarray:
        """Image-head argmax, as TAC evaluates (the text head is not needed)."""
        return self.predict_proba(X, image_features=image_features).argmax(axis=1).astype(np.int64)


def fit_tac(
    features: FeatureSet,
    n_clusters: int,
    random_state: int,
    image_view: str | None = None,
    *,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    **options: Any,
) -> MethodResult:
    names, nouns = features.noun_vocabulary()
    view, image = image_input(features, image_view)
    estimator = TAC(n_clusters=n_clusters, random_state=random_state, **options)
    on_epoch = features.epoch_callback("training tac", estimator.epochs)
    estimator.fit(
        features.joint,
        nouns,
        noun_names=names,
        on_epoch=on_epoch,
        image_features=image,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
    )
    info = {"n_centers": estimator.n_centers_, "image_view": view, "final_loss": estimator.loss_history_[-1]}
    return MethodResult(estimator, estimator.labels_, n_clusters, info=info)


SPEC = MethodSpec(
    name="tac",
    estimator=TAC,
    fit=fit_tac,
    summary="TAC: image and text heads trained by cross-modal mutual distillation",
    predict_args=("X", "image_features"),
    predict_inputs=tac_inputs,
    needs=frozenset({"nouns"}),
    resumable=True,
    noun_templates="tac",
)
METHOD_SPECS = (SPEC,)
