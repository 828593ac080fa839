"""ASD: cluster images by cold-starting a semi-supervised learner with no labels.

Modules: :mod:`.budget` (coverage, ``n_l``, ``mu``), :mod:`.samplers`, :mod:`.similarity`
(transitions, co-predictions, grouping), :mod:`.instance` (the instance stage), :mod:`.state`
(a round's grouping, the checkpoint directory), :mod:`.backbones` (FixMatch on pixels),
:mod:`.estimator` (:class:`ASD`).

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
   ``transition_window`` fraction of the instance steps; both None by default: the backbone's
   ``recording``, the last half and 5,000 images from scratch, every image over the whole stage
   on a frozen encoder) an image predicted ``a`` at one record
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

from semclust.data.pixels import source_images
from semclust.methods.asd.backbones import EVAL_BATCH
from semclust.methods.asd.budget import MAX_MU, UNLABELLED_PASSES, coverage_probability, default_mu, default_n_labelled
from semclust.methods.asd.estimator import ASD
from semclust.methods.asd.instance import StageTicks
from semclust.methods.asd.samplers import SAMPLERS, PrototypeSampler, UniformSampler, sample_prototypes, sample_uniform
from semclust.methods.asd.similarity import (
    FEATURE_TEMPERATURE,
    GROUPINGS,
    SIMILARITIES,
    align_groups,
    confident_members,
    count_co_predictions,
    count_transitions,
    feature_similarity,
    group_instances,
    transition_similarity,
)
from semclust.methods.asd.state import ASD_STATE_FORMAT, Grouping, Records, RunCheckpoint

__all__ = [
    "ASD",
    "ASD_STATE_FORMAT",
    "EVAL_BATCH",
    "FEATURE_TEMPERATURE",
    "GROUPINGS",
    "MAX_MU",
    "SAMPLERS",
    "SIMILARITIES",
    "UNLABELLED_PASSES",
    "Grouping",
    "PrototypeSampler",
    "Records",
    "RunCheckpoint",
    "StageTicks",
    "UniformSampler",
    "align_groups",
    "confident_members",
    "count_co_predictions",
    "count_transitions",
    "coverage_probability",
    "default_mu",
    "default_n_labelled",
    "feature_similarity",
    "group_instances",
    "sample_prototypes",
    "sample_uniform",
    "source_images",
    "transition_similarity",
]
