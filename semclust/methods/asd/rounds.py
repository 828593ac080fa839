"""One ASD round's stages 1-4: sample new images, train the instance stage, group."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from semclust.methods.asd.instance import StageTicks, resolve_recording, run_instance_stage
from semclust.methods.asd.samplers import make_sampler
from semclust.methods.asd.similarity import align_groups, feature_similarity, group_instances
from semclust.methods.asd.state import Grouping, RunCheckpoint


def sample_and_group(
    est: Any,
    backbone: Any,
    feats: np.ndarray | None,
    n_l: int,
    k: int,
    round_index: int,
    seed: int,
    rng: np.random.Generator,
    sampled: list[np.ndarray],
    lb_idx_all: list[np.ndarray],
    previous: Any,
    mu: dict[str, int],
    progress: Callable[[str, int], Callable[..., None]] | None,
    checkpoint: RunCheckpoint | None,
) -> Grouping:
    """One round's stages 1-4: sample ``n_l`` new images, train the instance stage (unless the
    similarity is the features'), group; groups are aligned to ``previous`` (the last round's
    SSL stage) when there is one."""
    n = len(backbone.x)
    sampler = make_sampler(est.sampler, int(est.n_neighbours))
    exclude = sampler.exclusion(sampled, lb_idx_all)
    chosen, neighbours = sampler.sample(n, n_l, rng, exclude, features=feats, seed=seed)
    lb_idx = np.concatenate([chosen, neighbours.reshape(-1)])
    lb_inst = np.concatenate([np.arange(n_l), np.repeat(np.arange(n_l), neighbours.shape[1])])
    if est.similarity == "features":
        assert feats is not None  # checked by fit
        t, c, n_records = np.zeros((n_l, n_l), dtype=np.int64), None, 0
        s = feature_similarity(feats[chosen])
    else:
        description = f"asd round {round_index + 1}: instance stage ({n_l} classes)"
        tick = progress(description, int(est.instance_steps)) if progress else None
        steps = int(est.instance_steps)
        out_dir = checkpoint.stage_dir(round_index, "instance") if checkpoint is not None else None
        recording = resolve_recording(est, backbone.recording)
        result = run_instance_stage(
            backbone.stage(n_l, steps, seed, mu["instance"], out_dir),
            n,
            lb_idx,
            lb_inst,
            n_l,
            steps=steps,
            seed=seed,
            record_every=int(est.record_every),
            transition_window=recording.transition_window,
            max_tracked=recording.max_tracked,
            co_prediction=est.co_prediction,
            ticks=StageTicks(tick, steps),
            checkpoint=checkpoint,
            round_index=round_index,
        )
        t, s, c, n_records = result.transitions, result.similarity, result.co_predictions, result.n_records
        if est.similarity == "combined":
            assert feats is not None
            s = (s + feature_similarity(feats[chosen])) / 2.0
    groups = group_instances(s, k, est.grouping, random_state=seed)
    if previous is not None:
        groups = align_groups(groups, previous.predict(chosen), k)
    return Grouping(
        chosen=np.asarray(chosen, dtype=np.int64),
        neighbours=np.asarray(neighbours, dtype=np.int64),
        groups=np.asarray(groups, dtype=np.int64),
        transitions=np.asarray(t, dtype=np.int64),
        similarity=np.asarray(s, dtype=np.float64),
        co_predictions_used=c is not None,
        n_records=int(n_records),
    )
