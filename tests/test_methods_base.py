from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from semclust.methods.base import (
    BaseClusterer,
    NotFittedError,
    check_is_fitted,
    check_n_clusters,
)


class FirstColumnSign(BaseClusterer):
    """Minimal concrete clusterer: the label is whether column 0 exceeds a threshold."""

    def __init__(self, threshold: float = 0.0, n_clusters: int = 2) -> None:
        self.threshold = threshold
        self.n_clusters = n_clusters

    def fit(self, X, y=None) -> FirstColumnSign:
        x = self._validate_fit_input(X, min_samples=check_n_clusters(self.n_clusters))
        self.n_features_in_ = x.shape[1]
        self.labels_ = (x[:, 0] > self.threshold).astype(np.int64)
        return self

    def predict(self, X) -> np.ndarray:
        x = self._validate_predict_input(X)
        return (x[:, 0] > self.threshold).astype(np.int64)


def test_params_round_trip_and_clone() -> None:
    model = FirstColumnSign(threshold=0.5)
    assert model.get_params() == {"n_clusters": 2, "threshold": 0.5}
    assert model.set_params(threshold=2.0) is model
    assert model.threshold == 2.0
    copy = clone(model)
    assert copy is not model and copy.get_params() == model.get_params()
    assert repr(model) == "FirstColumnSign(n_clusters=2, threshold=2.0)"
    with pytest.raises(ValueError, match="invalid parameter 'thresh'"):
        model.set_params(thresh=1)


def test_varargs_init_is_rejected() -> None:
    class Bad(FirstColumnSign):
        def __init__(self, *args: object) -> None:
            pass

    with pytest.raises(TypeError, match="args"):
        Bad().get_params()


def test_not_fitted_error() -> None:
    model = FirstColumnSign()
    with pytest.raises(NotFittedError, match="FirstColumnSign instance is not fitted"):
        model._validate_predict_input(np.ones((2, 2)))
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)
    with pytest.raises(NotFittedError):
        check_is_fitted(model)
    model.fit(np.array([[1.0, 0.0], [-1.0, 0.0]]))
    check_is_fitted(model)
    check_is_fitted(model, ["labels_", "n_features_in_"])
    with pytest.raises(NotFittedError):
        check_is_fitted(model, ["centers_"])


def test_fit_predict_and_predict_validation() -> None:
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [3.0, 1.0]])
    model = FirstColumnSign()
    np.testing.assert_array_equal(model.fit_predict(x), [1, 0, 1])
    with pytest.raises(ValueError, match="X has 3 features, but FirstColumnSign was fitted with 2"):
        model.predict(np.ones((1, 3)))


def test_fit_input_validation() -> None:
    with pytest.raises(ValueError, match="X must be finite, got nan"):
        FirstColumnSign().fit(np.array([[np.nan, 1.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"X must be 2-D"):
        FirstColumnSign().fit(np.ones(4))
    with pytest.raises(ValueError, match="at least 3 rows, got n=2"):
        FirstColumnSign(n_clusters=3).fit(np.ones((2, 2)))


def test_check_n_clusters() -> None:
    assert check_n_clusters(np.int64(3), 5) == 3
    with pytest.raises(ValueError, match="n_clusters=6 is larger than the number of samples n=5"):
        check_n_clusters(6, 5)
    with pytest.raises(ValueError, match="at least 2, got n_clusters=1"):
        check_n_clusters(1)
    with pytest.raises(TypeError, match="integer, got 2.5"):
        check_n_clusters(2.5)
