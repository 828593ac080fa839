"""ASD: coverage formula, samplers, transition counting, grouping and a tiny end-to-end run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fakes import band_images

from semclust.methods.asd import (
    ASD,
    confident_members,
    count_co_predictions,
    count_transitions,
    coverage_probability,
    default_mu,
    default_n_labelled,
    feature_similarity,
    group_instances,
    sample_prototypes,
    sample_uniform,
    transition_similarity,
)
from semclust.metrics import ari


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_coverage_probability_matches_research_values():
    assert coverage_probability(50000, 10, 50) == pytest.approx(0.95, abs=0.002)
    assert coverage_probability(50000, 10, 100) == pytest.approx(0.9997, abs=1e-4)
    assert coverage_probability(100, 10, 9) == 0.0  # fewer draws than classes
    # K=2, n=4, n_l=2: only {a1,a2} or {b1,b2} miss a class -> 1 - 2/6.
    assert coverage_probability(4, 2, 2) == pytest.approx(4 / 6)
    assert coverage_probability(1000, 10, 1000) == pytest.approx(1.0)


def test_default_n_labelled_reaches_coverage_and_ten_per_cluster():
    assert default_n_labelled(50000, 10) == 100
    m = default_n_labelled(50000, 20)
    assert m >= 200 and coverage_probability(50000, 20, m) >= 0.99
    assert default_n_labelled(25, 10) == 25  # capped at n


def test_transition_counting_on_a_scripted_sequence():
    records = [np.array([0, 1, 2, 2]), np.array([1, 1, 0, 2]), np.array([1, 2, 0, 0]), np.array([0, 2, 0, 0])]
    t = count_transitions(records, 3)
    # image 0: 0->1, 1->1, 1->0; image 1: 1->1, 1->2, 2->2; image 2: 2->0, 0->0, 0->0; image 3: 2->2, 2->0, 0->0
    expected = np.zeros((3, 3), dtype=np.int64)
    expected[0, 1] = 1
    expected[1, 0] = 1
    expected[1, 2] = 1
    expected[2, 0] = 2
    np.testing.assert_array_equal(t, expected)
    s = transition_similarity(t)
    # S = T + T^T = [[0,2,2],[2,0,1],[2,1,0]], row-normalised
    np.testing.assert_allclose(s, [[0, 0.5, 0.5], [2 / 3, 0, 1 / 3], [2 / 3, 1 / 3, 0]])
    assert count_transitions([np.array([1, 2])], 3).sum() == 0


def test_co_predictions_are_symmetric_and_added_before_normalising():
    c = count_co_predictions([np.array([[0, 1], [1, 0], [2, 1]])], 3)
    np.testing.assert_array_equal(c, [[0, 2, 0], [2, 0, 1], [0, 1, 0]])
    s = transition_similarity(np.zeros((3, 3)), c)
    np.testing.assert_allclose(s, [[0, 1, 0], [2 / 3, 0, 1 / 3], [0, 1, 0]])


@pytest.mark.parametrize("method", ["spectral", "agglomerative"])
def test_grouping_recovers_blocks(method):
    rng = np.random.default_rng(0)
    blocks = np.repeat(np.arange(3), [4, 5, 3])
    perm = rng.permutation(len(blocks))
    blocks = blocks[perm]
    s = np.where(blocks[:, None] == blocks[None, :], 5.0, 0.2) + rng.uniform(0, 0.2, (12, 12))
    np.fill_diagonal(s, 0)
    groups = group_instances(transition_similarity(s), 3, method, random_state=0)
    assert groups.dtype == np.int64 and set(groups) == {0, 1, 2}
    assert ari(blocks, groups) == pytest.approx(1.0)
    assert groups[0] == 0  # numbered by first member


def test_uniform_sampler_never_repeats_across_rounds():
    rng = np.random.default_rng(1)
    first = sample_uniform(30, 10, rng)
    second = sample_uniform(30, 10, rng, exclude=first)
    third = sample_uniform(30, 10, rng, exclude=np.concatenate([first, second]))
    assert len(np.unique(np.concatenate([first, second, third]))) == 30
    with pytest.raises(ValueError, match="left to sample"):
        sample_uniform(30, 1, rng, exclude=np.arange(30))


def test_prototype_sampler_picks_the_image_nearest_each_center_and_its_neighbours():
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    offsets = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.5], [0.0, -1.5]])
    x = (centers[:, None, :] + offsets[None]).reshape(-1, 2)  # cluster c: rows 5c..5c+4, 5c at its mean
    chosen, neighbours = sample_prototypes(x, 3, random_state=0, n_neighbours=2)
    assert sorted(chosen.tolist()) == [0, 5, 10]
    for p, nb in zip(chosen, neighbours):
        assert sorted(nb.tolist()) == [p + 1, p + 2]
    again, _ = sample_prototypes(x, 3, random_state=0, exclude=[0, 5, 10])
    assert not set(again.tolist()) & {0, 5, 10}
    assert sorted(again // 5) == [0, 1, 2]


def test_default_mu_gives_small_sets_ten_passes_and_large_ones_fixmatchs_seven():
    assert default_mu(1797, 32, 300) == 2  # digits: ceil(10 * 1797 / 9600)
    assert default_mu(6720, 32, 300) == 7 and default_mu(50000, 32, 300) == 7
    assert default_mu(6000, 32, 300) == 7 and default_mu(5000, 32, 300) == 6
    assert default_mu(10, 32, 300) == 1
    x, _ = _bands(30)
    est = ASD(3, **{**TINY, "mu": None, "ssl_steps": 50})
    est.instance_steps = 2
    assert est.fit(x).mu_ == {"instance": 7, "ssl": 2}  # ceil(10*30/8)=38 -> 7; ceil(10*30/200) = 2
    assert ASD(3, **TINY).fit(x).mu_ == {"instance": 2, "ssl": 2}  # given: kept


def _bands(n: int = 90, seed: int = 0):
    return band_images(n, seed, first_row=1)


TINY = dict(n_labelled=9, instance_steps=6, ssl_steps=4, record_every=1, batch_size=4, mu=2, flip=False)


def test_tiny_end_to_end_run_is_deterministic_and_reports_its_sample():
    x, y = _bands()
    a = ASD(3, random_state=3, **TINY).fit(x, y=y)
    b = ASD(3, random_state=3, **TINY).fit(x, y=y)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.sampled_indices_, b.sampled_indices_)
    np.testing.assert_array_equal(a.instance_groups_, b.instance_groups_)
    assert a.labels_.shape == (90,) and a.labels_.min() >= 0 and a.labels_.max() < 3
    assert len(np.unique(a.sampled_indices_)) == 9
    assert sorted(set(a.instance_groups_.tolist())) == [0, 1, 2]
    assert a.similarity_.shape == (9, 9)
    np.testing.assert_allclose(a.similarity_.sum(1)[a.similarity_.sum(1) > 0], 1.0)
    assert a.coverage_probability_ == pytest.approx(coverage_probability(90, 3, 9))
    assert 0.0 <= a.pseudo_label_purity_ <= 1.0 and a.classes_covered_ == len(set(y[a.sampled_indices_]))
    assert a.image_shape_ == (16, 16)  # 8 px images go up to 16 px
    assert a.predict(x[:5]).shape == (5,)


def test_rounds_resample_without_repetition_and_prototype_sampler_runs():
    x, y = _bands()
    est = ASD(3, rounds=2, sampler="prototype", n_neighbours=1, grouping="agglomerative", **TINY)
    est.fit(x, features=x.reshape(len(x), -1).astype(np.float32))
    assert len(est.sampled_indices_) == 18 and len(np.unique(est.sampled_indices_)) == 18
    assert len(est.labelled_indices_) == 36 and est.pseudo_label_purity_ is None
    assert est.labels_.max() < 3


def test_feature_similarity_matches_a_loop_over_pairs():
    f = np.random.default_rng(0).normal(size=(5, 3))
    expected = np.zeros((5, 5))
    for a in range(5):
        for b in range(5):
            if a != b:
                cos = f[a] @ f[b] / (np.linalg.norm(f[a]) * np.linalg.norm(f[b]))
                expected[a, b] = np.exp(cos / 0.1)
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(feature_similarity(f, temperature=0.1), expected, rtol=1e-10)


def test_feature_similarity_groups_the_sampled_images_by_their_features():
    # Pixels carry no class signal; the features do: only the feature similarity can group.
    x = np.random.default_rng(1).integers(0, 255, size=(60, 8, 8)).astype(np.uint8)
    y = np.arange(60) % 3
    feats = np.eye(3)[y] + np.random.default_rng(2).normal(scale=0.05, size=(60, 3))
    est = ASD(3, similarity="features", random_state=0, **TINY).fit(x, y=y, features=feats)
    assert est.pseudo_label_purity_ == 1.0
    assert est.n_records_ == 0 and est.transitions_.sum() == 0  # no instance stage
    combined = ASD(3, similarity="combined", random_state=0, **TINY).fit(x, y=y, features=feats)
    assert combined.n_records_ > 0
    # Half the feature similarity plus half a row-normalised transition similarity (whose rows
    # sum to 1, or to 0 for an instance class that never moved).
    transition_half = combined.similarity_ - feature_similarity(feats[combined.sampled_indices_]) / 2
    assert transition_half.min() >= -1e-6  # the estimator keeps features in float32
    for row_sum in transition_half.sum(1):
        assert row_sum == pytest.approx(0.5, abs=1e-6) or row_sum == pytest.approx(0.0, abs=1e-6)


def test_confident_members_keep_the_best_share_of_each_group():
    # Rows 0-2 form group 0, rows 3-5 group 1; row 2 sends most of its mass to group 1 and row 5
    # most of its to group 0, so they are each group's least confident members.
    s = np.array(
        [
            [0, 0.5, 0.4, 0.1, 0, 0],
            [0.5, 0, 0.3, 0, 0.2, 0],
            [0.2, 0.1, 0, 0.7, 0, 0],
            [0, 0, 0.2, 0, 0.6, 0.2],
            [0, 0.1, 0, 0.6, 0, 0.3],
            [0.5, 0.3, 0, 0.1, 0.1, 0],
        ]
    )
    groups = np.array([0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(confident_members(s, groups, 0.5), [True, True, False, True, True, False])
    np.testing.assert_array_equal(confident_members(s, groups, 0.1), [True, False, False, False, True, False])
    assert confident_members(s, groups, 1.0).all()
    with pytest.raises(ValueError, match="keep_confident"):
        confident_members(s, groups, 0.0)


def test_keep_confident_labels_fixmatch_with_part_of_each_group():
    x, y = _bands(60)
    feats = np.eye(3)[y] + np.random.default_rng(2).normal(scale=0.3, size=(60, 3))
    est = ASD(3, similarity="features", keep_confident=0.5, random_state=0, **TINY).fit(x, y=y, features=feats)
    kept = confident_members(est.similarity_, est.instance_groups_, 0.5)
    np.testing.assert_array_equal(est.labelled_indices_, est.sampled_indices_[kept])
    np.testing.assert_array_equal(est.labelled_labels_, est.instance_groups_[kept])
    sizes = np.bincount(est.instance_groups_, minlength=3)
    assert len(est.labelled_indices_) == sum(int(np.ceil(size / 2)) for size in sizes)
    assert est.labelled_purity_ is not None and est.pseudo_label_purity_ is not None


def test_feature_similarities_need_features():
    x, _ = _bands(30)
    with pytest.raises(ValueError, match="needs features"):
        ASD(3, similarity="features", **TINY).fit(x)
    with pytest.raises(ValueError, match="30 rows"):
        ASD(3, similarity="combined", **TINY).fit(x, features=np.zeros((29, 4)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"similarity": "nope"}, "unknown similarity"),
        ({"keep_confident": 0}, "keep_confident"),
        ({"keep_confident": 1.5}, "keep_confident"),
        ({"sampler": "nope"}, "unknown sampler"),
        ({"grouping": "nope"}, "unknown grouping"),
        ({"n_labelled": 2}, "n_labelled"),
    ],
)
def test_bad_settings_are_value_errors(kwargs, message):
    x, _ = _bands(30)
    with pytest.raises(ValueError, match=message):
        ASD(3, **{**TINY, **kwargs}).fit(x)


# ----------------------------------------------------------------------------- saved model
def _saved_asd(tmp_path, x, y):
    from semclust.outputs.model import load, model_inputs, save_model

    est = ASD(3, random_state=3, **TINY).fit(x, y=y)
    save_model(tmp_path / "model", method="asd", estimator=est, inputs=model_inputs("asd", {}),
               encoder_config={"name": "colour"}, n_clusters=3, cluster_names=None)  # fmt: skip
    return est, load(tmp_path)


def test_saved_asd_model_predicts_like_the_fitted_one(tmp_path):
    from PIL import Image

    x, y = _bands()
    est, loaded = _saved_asd(tmp_path, x, y)
    assert type(loaded.estimator) is ASD and loaded.method == "asd" and loaded.inputs == {"X": "pixels"}
    assert loaded.estimator.get_params() == est.get_params()
    np.testing.assert_array_equal(est.predict(x), est.labels_)  # predict reproduces the run's labels
    np.testing.assert_array_equal(loaded.estimator.predict(x), est.labels_)
    np.testing.assert_array_equal(loaded.estimator.labels_, est.labels_)
    new, _ = _bands(20, seed=5)
    np.testing.assert_array_equal(loaded.estimator.predict(new), est.predict(new))
    assert loaded.estimator.image_shape_ == (16, 16) and loaded.estimator.input_shape_ == (8, 8)
    assert loaded.estimator.mean_ == est.mean_ and loaded.estimator.std_ == est.std_

    # image files go through the same decode -> grey -> 8x8 path as the run's images
    folder = tmp_path / "new"
    folder.mkdir()
    for i in range(10):
        Image.fromarray(x[i]).save(folder / f"img{i:02d}.png")
    Image.fromarray(x[10]).convert("RGB").resize((24, 24)).save(folder / "img10_big.png")
    (folder / "zz_broken.png").write_text("not an image")
    ids, labels, skipped = loaded.predict_images(folder)
    assert ids[:10] == [f"img{i:02d}.png" for i in range(10)] and len(ids) == 11
    np.testing.assert_array_equal(labels[:10], est.labels_[:10])
    big = np.asarray(Image.open(folder / "img10_big.png").convert("L").resize((8, 8), Image.Resampling.BILINEAR))
    assert labels[10] == est.predict(big[None])[0]
    assert [s.item_id for s in skipped] == ["zz_broken.png"]
    with pytest.raises(ValueError, match="classifies images"):
        loaded.predict_features({"joint": np.zeros((2, 4), dtype=np.float32)})
    with pytest.raises(ValueError, match="channel"):
        est.predict(np.zeros((2, 8, 8, 3), dtype=np.uint8))


def test_saved_asd_model_refuses_a_changed_manifest_or_weights(tmp_path):
    import json

    from semclust.outputs.model import load_model

    x, y = _bands()
    _saved_asd(tmp_path, x, y)
    manifest_path, weights = tmp_path / "model" / "model.json", tmp_path / "model" / "model.safetensors"
    text, blob = manifest_path.read_text(), weights.read_bytes()
    manifest = json.loads(text)
    manifest["learned"]["mean_"] = [0.5, 0.5, 0.5]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"model\.json.*mean_"):
        load_model(tmp_path / "model")
    manifest["learned"]["mean_"] = json.loads(text)["learned"]["mean_"]
    manifest["params"]["network"] = "wrn-28-2"  # tensors no longer fit the named network
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"model\.json.*ASD\.model_"):
        load_model(tmp_path / "model")
    manifest_path.write_text(text)
    weights.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match=r"model\.safetensors.*checksum"):
        load_model(tmp_path / "model")
