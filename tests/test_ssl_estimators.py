import numpy as np
import pytest
import torch

import semclust
from semclust.ssl.estimators import CPE, FixMatch, FixMatchLA, MetaExpert


def _blobs(n_per_class: list[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Grayscale 12x12 images whose class is the bright quadrant (0..3)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c, n in enumerate(n_per_class):
        img = rng.integers(0, 60, size=(n, 12, 12)).astype(np.uint8)
        r, q = divmod(c, 2)
        img[:, r * 6 : r * 6 + 6, q * 6 : q * 6 + 6] += 180
        xs.append(img)
        ys.append(np.full(n, c))
    return np.concatenate(xs), np.concatenate(ys)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def test_top_level_exports():
    assert semclust.MetaExpert is MetaExpert and semclust.CPE is CPE
    assert semclust.FixMatch is FixMatch and semclust.FixMatchLA is FixMatchLA
    assert semclust.ASD.__name__ == "ASD"


def test_init_stores_parameters_untouched():
    model = MetaExpert(steps=7, taus=(0, 1, 2), random_state=3)
    assert model.steps == 7 and model.taus == (0, 1, 2) and model.random_state == 3
    assert not hasattr(model, "trainer_")
    with pytest.raises(RuntimeError, match="not fitted"):
        model.predict(np.zeros((1, 12, 12), np.uint8))


def test_metaexpert_learns_separable_long_tailed_classes_and_groups_by_frequency():
    x_lb, y_lb = _blobs([40, 20, 8, 3], seed=0)
    # class order scrambled: the rarest labelled class is not the last index
    perm = np.array([2, 0, 3, 1])
    y_lb = perm[y_lb]
    x_ulb, _ = _blobs([30, 30, 30, 30], seed=1)
    x_te, y_te = _blobs([25, 25, 25, 25], seed=2)
    y_te = perm[y_te]
    # 60 steps: the constant 0.999 EMA would still be ~94% the initial weights, so the warm-up variant
    model = MetaExpert(steps=60, batch_size=16, mu=2, lr=0.05, flip=False, ema_warmup=True,
                       random_state=0).fit(x_lb, y_lb, x_ulb)  # fmt: skip
    counts = np.bincount(y_lb, minlength=4)
    assert model.class_counts_.tolist() == counts.tolist()
    # head = most frequent labelled class, tail = the rarest ones, whatever their indices
    assert model.groups_[np.argmax(counts)] == 0 and model.groups_[np.argmin(counts)] == 2
    scores = model.score(x_te, y_te)
    assert scores["acc"] > 0.9, scores
    outputs = model.predict_outputs(x_te)
    assert outputs["expert_pred"].shape == (100, 3)


def test_same_random_state_gives_identical_predictions():
    x_lb, y_lb = _blobs([10, 10, 10, 10], seed=0)
    x_ulb, _ = _blobs([10, 10, 10, 10], seed=1)
    a = FixMatchLA(steps=5, batch_size=8, flip=False, random_state=1).fit(x_lb, y_lb, x_ulb)
    b = FixMatchLA(steps=5, batch_size=8, flip=False, random_state=1).fit(x_lb, y_lb, x_ulb)
    assert np.array_equal(a.predict(x_ulb), b.predict(x_ulb))


def test_bad_labels_name_the_problem():
    with pytest.raises(ValueError, match="y_labelled"):
        CPE(steps=2).fit(np.zeros((3, 12, 12), np.uint8), np.zeros((3, 2)), np.zeros((3, 12, 12), np.uint8))
