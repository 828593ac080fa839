"""ASD follows the package's estimator contract: BaseClusterer, get_params(deep), clone, and a
saved model in the shape base.py's to_state/from_state write (older "model.<key>" saves load)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fakes import band_images
from sklearn.base import clone

from semclust.methods.asd import ASD
from semclust.methods.base import BaseClusterer, NotFittedError

TINY = dict(n_labelled=6, instance_steps=4, ssl_steps=4, record_every=1, batch_size=4, mu=1, flip=False)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_asd_is_a_base_clusterer_that_clones():
    est = ASD(n_clusters=3, sampler="prototype", rounds=2, random_state=5)
    assert isinstance(est, BaseClusterer)
    params = est.get_params(deep=True)
    assert params == est.get_params(deep=False)
    assert params["sampler"] == "prototype" and params["rounds"] == 2 and params["random_state"] == 5
    twin = clone(est)
    assert twin is not est and twin.get_params() == params
    est.set_params(rounds=3)
    assert est.rounds == 3
    with pytest.raises(ValueError, match="invalid parameter"):
        est.set_params(epochs=3)
    with pytest.raises(NotFittedError):
        est.to_state()


def test_saved_state_uses_the_base_layout_and_old_layout_still_loads():
    x, _ = band_images(24, seed=0)
    est = ASD(n_clusters=3, random_state=0, **TINY).fit(x)
    arrays, values = est.to_state()
    keys = set(arrays) - {"labels_"}
    assert keys and all(k.startswith("model_.") for k in keys)
    assert values["n_features_in_"] == 64 and values["input_shape_"] == [8, 8]
    loaded = ASD.from_state(est.get_params(), arrays, values)
    np.testing.assert_array_equal(loaded.predict(x), est.labels_)
    assert loaded.input_shape_ == (8, 8)
    old = {("model." + k[len("model_.") :] if k.startswith("model_.") else k): v for k, v in arrays.items()}
    old_values = {k: v for k, v in values.items() if k not in ("n_features_in_", "cluster_names_")}
    np.testing.assert_array_equal(ASD.from_state(est.get_params(), old, old_values).predict(x), est.labels_)
