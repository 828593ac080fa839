"""A trained method killed after epoch k resumes from its checkpoint and ends exactly like an
uninterrupted fit with the same seed (LAIC, TAC, SCAN incl. its self-labelling stage)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from semclust.methods.laic import LAIC
from semclust.methods.scan import SCAN
from semclust.methods.tac import TAC
from semclust.ops.features import l2_normalize
from semclust.store import checkpoint as checkpoint_module
from semclust.store.checkpoint import STATE_FILE, CheckpointError

K, PER, D = 3, 30, 16


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    """Three noisy clusters on the sphere, a noun planted on each mean, distractor nouns."""
    rng = np.random.default_rng(0)
    means = l2_normalize(rng.standard_normal((K, D)).astype(np.float32))
    y = np.repeat(np.arange(K), PER)
    x = l2_normalize((means[y] + 0.8 * rng.standard_normal((len(y), D)) / np.sqrt(D)).astype(np.float32))
    nouns = l2_normalize(np.concatenate([means, rng.standard_normal((12, D))]).astype(np.float32))
    names = [f"planted{c}" for c in range(K)] + [f"distractor{j}" for j in range(12)]
    visual = l2_normalize(x + 0.1 * rng.standard_normal(x.shape).astype(np.float32))
    return {"x": x, "y": y, "nouns": nouns, "names": names, "visual": visual}


class Killed(Exception):
    """Stands for the process dying right after an epoch (its checkpoint already written)."""


def kill_after(epochs: int) -> Callable[[int, float], None]:
    calls: list[int] = []

    def on_epoch(epoch: int, loss: float) -> None:
        calls.append(epoch)
        if len(calls) == epochs:
            raise Killed(f"killed after epoch {epoch}")

    return on_epoch


def counting_saves(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Epoch numbers of every checkpoint written from now on."""
    saved: list[int] = []
    original = checkpoint_module.EpochCheckpoint.save

    def save(self: Any, state: Any) -> None:
        saved.append(state.epoch)
        original(self, state)

    monkeypatch.setattr(checkpoint_module.EpochCheckpoint, "save", save)
    return saved


def laic(**kw: Any) -> LAIC:
    params: dict[str, Any] = dict(
        n_clusters=K, n_centers=3, centers="free", epochs=6, batch_size=16, lr=1e-2, temperature=0.2, n_init=2
    )
    return LAIC(**{**params, **kw})


def fit_laic(est: LAIC, data: dict[str, Any], **kw: Any) -> LAIC:
    return est.fit(data["x"], data["nouns"], data["names"], image_features=data["visual"], **kw)


def tac(**kw: Any) -> TAC:
    params: dict[str, Any] = dict(
        n_clusters=K, n_centers=3, epochs=6, batch_size=16, n_neighbours=5, hidden_dim=16, n_init=2
    )
    return TAC(**{**params, **kw})


def fit_tac(est: TAC, data: dict[str, Any], **kw: Any) -> TAC:
    return est.fit(data["x"], data["nouns"], noun_names=data["names"], image_features=data["visual"], **kw)


def scan(**kw: Any) -> SCAN:
    params: dict[str, Any] = dict(n_clusters=K, n_heads=2, n_neighbours=5, epochs=6, batch_size=16, lr=1e-2)
    return SCAN(**{**params, **kw})


def fit_scan(est: SCAN, data: dict[str, Any], **kw: Any) -> SCAN:
    return est.fit(data["x"], **kw)


def scan_self_label(**kw: Any) -> SCAN:
    return scan(self_label=True, self_label_epochs=4, self_label_threshold=0.4, **kw)


CASES = {
    # name: (make estimator, fit it, total on_epoch calls, kill after this many)
    "laic": (laic, fit_laic, 6, 2),
    "tac": (tac, fit_tac, 6, 3),
    "scan": (scan, fit_scan, 6, 4),
    "scan-self-label-stage1": (scan_self_label, fit_scan, 10, 3),
    "scan-self-label-stage2": (scan_self_label, fit_scan, 10, 8),
}


def assert_same_fit(a: Any, b: Any) -> None:
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.centers_, b.centers_)
    assert a.loss_history_ == b.loss_history_
    for name in ("image_head_", "text_head_", "head_", "heads_"):
        if hasattr(a, name):
            for (key, va), (_, vb) in zip(getattr(a, name).state_dict().items(), getattr(b, name).state_dict().items()):
                torch.testing.assert_close(va, vb, rtol=0, atol=0, msg=f"{name}.{key}")
    if hasattr(a, "self_label_history_"):
        np.testing.assert_array_equal(a.self_label_history_, b.self_label_history_)


@pytest.mark.parametrize("case", sorted(CASES))
def test_killed_fit_resumes_to_the_uninterrupted_result(
    case: str, data: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make, fit, total, kill_at = CASES[case]
    reference = fit(make(random_state=4), data)
    assert len(np.unique(reference.labels_)) > 1

    ckpt = tmp_path / "checkpoint"
    with pytest.raises(Killed):
        fit(make(random_state=4), data, checkpoint_dir=ckpt, on_epoch=kill_after(kill_at))
    record = json.loads((ckpt / STATE_FILE).read_text())
    assert record["epoch"] == kill_at
    # only safetensors and JSON on disk (no pickle anywhere)
    assert sorted(p.name for p in ckpt.iterdir()) == [STATE_FILE, f"tensors-{kill_at}.safetensors"]

    saves = counting_saves(monkeypatch)
    seen: list[tuple[int, float]] = []
    resumed = fit(
        make(random_state=4), data, checkpoint_dir=ckpt, resume=True, on_epoch=lambda e, v: seen.append((e, v))
    )
    assert saves == list(range(kill_at + 1, total + 1))  # only the epochs after the kill were trained
    assert len(seen) == total  # finished epochs are reported again first, so a progress bar is complete
    assert_same_fit(resumed, reference)


def test_resume_without_a_checkpoint_starts_from_scratch(data: dict[str, Any], tmp_path: Path) -> None:
    reference = fit_tac(tac(), data)
    resumed = fit_tac(tac(), data, checkpoint_dir=tmp_path / "none-yet", resume=True)
    assert_same_fit(resumed, reference)


def test_checkpoint_of_another_run_is_refused(data: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(Killed):
        fit_scan(scan(), data, checkpoint_dir=tmp_path, on_epoch=kill_after(2))
    with pytest.raises(CheckpointError, match="lr: 0.01 then, 0.02 now"):
        fit_scan(scan(lr=2e-2), data, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(CheckpointError, match="other training inputs"):
        fit_scan(scan(), {"x": data["x"][::-1].copy()}, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(CheckpointError, match="estimator SCAN vs TAC"):
        fit_tac(tac(), data, checkpoint_dir=tmp_path, resume=True)


def test_damaged_checkpoint_is_refused_and_a_fresh_fit_replaces_it(data: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(Killed):
        fit_laic(laic(), data, checkpoint_dir=tmp_path, on_epoch=kill_after(2))
    tensors = tmp_path / "tensors-2.safetensors"
    blob = bytearray(tensors.read_bytes())
    blob[-1] ^= 0xFF
    tensors.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="SHA-256"):
        fit_laic(laic(), data, checkpoint_dir=tmp_path, resume=True)
    # without resume the old checkpoint is discarded and training starts over
    fresh = fit_laic(laic(), data, checkpoint_dir=tmp_path)
    assert_same_fit(fresh, fit_laic(laic(), data))
    assert json.loads((tmp_path / STATE_FILE).read_text())["epoch"] == 6
