"""The clusterer contract, in the scikit-learn style so sklearn tooling (clone, grids) works."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from semclust.atomic import json_plain
from semclust.estimator import ParamsMixin
from semclust.ops.features import as_feature_matrix


class NotFittedError(ValueError, AttributeError):
    """A learned attribute was needed before ``fit`` ran.

    Subclasses both bases like scikit-learn's, so code catching either keeps working.
    """


def check_is_fitted(estimator: object, attributes: Sequence[str] | None = None) -> None:
    """Raise :class:`NotFittedError` unless ``estimator`` has been fitted.

    With ``attributes=None`` any public attribute ending in ``_`` counts as evidence of a
    fit, which is the convention every clusterer here follows.
    """
    if attributes is None:
        fitted = any(name.endswith("_") and not name.startswith("_") for name in vars(estimator))
    else:
        fitted = all(hasattr(estimator, name) for name in attributes)
    if not fitted:
        raise NotFittedError(f"This {type(estimator).__name__} instance is not fitted yet; call 'fit' first.")


def check_n_clusters(n_clusters: object, n_samples: int | None = None) -> int:
    """``n_clusters`` as an int in ``[2, n_samples]``, or a ValueError naming both."""
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)):
        raise TypeError(f"n_clusters must be an integer, got {n_clusters!r}")
    if n_clusters < 2:
        raise ValueError(f"n_clusters must be at least 2, got n_clusters={n_clusters}")
    if n_samples is not None and n_clusters > n_samples:
        raise ValueError(f"n_clusters={n_clusters} is larger than the number of samples n={n_samples}")
    return int(n_clusters)


class BaseClusterer(ParamsMixin, ABC):
    """Base for every clustering method.

    ``__init__`` only stores its arguments, unchanged and under the same names, so that
    ``get_params``/``set_params`` and :func:`sklearn.base.clone` can rebuild the object;
    checks happen in ``fit``. Everything learned by ``fit`` ends in ``_``: ``labels_``
    (int64[n]), ``centers_`` (float32[K, d]), ``n_features_in_`` and, where a method knows
    them, ``cluster_names_``.
    """

    labels_: np.ndarray
    centers_: np.ndarray
    n_features_in_: int
    cluster_names_: list[str] | None

    # What a saved model keeps (semclust.outputs.model): learned arrays, learned JSON values,
    # and learned torch modules (their state_dict tensors). Training-set-sized by-products that
    # predict never reads (neighbours, relation rows, counterparts) are left out.
    _state_arrays: tuple[str, ...] = ("labels_", "centers_")
    _state_values: tuple[str, ...] = ("n_features_in_", "cluster_names_")
    _state_modules: tuple[str, ...] = ()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if not _is_array(v))
        return f"{type(self).__name__}({args})"

    @abstractmethod
    def fit(self, X: ArrayLike, *args: Any, **kwargs: Any) -> BaseClusterer:
        """Learn clusters from ``X`` [n, d].

        Methods that need more than the images (noun embeddings, a second view, a text tower)
        take it as further arguments, so the signature is open here; a ``y`` argument, where a
        method has one, is never used for training and exists for sklearn pipelines.
        """

    @abstractmethod
    def predict(self, X: ArrayLike) -> np.ndarray:
        """int64[m] cluster index of each row of ``X``, using what ``fit`` learned."""

    def fit_predict(self, X: ArrayLike, y: ArrayLike | None = None, **fit_params: Any) -> np.ndarray:
        """Fit on ``X`` and return the training labels (not a second ``predict`` pass)."""
        return self.fit(X, y=y, **fit_params).labels_

    # ------------------------------------------------------------------ saving

    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """What ``fit`` learned, as ``(arrays, values)``: arrays (module tensors under
        ``"<module>.<key>"``) for safetensors, JSON-able values for a manifest."""
        check_is_fitted(self, ("labels_", "n_features_in_"))
        arrays: dict[str, np.ndarray] = {}
        for name in self._state_arrays:
            value = getattr(self, name, None)
            if value is not None:
                arrays[name] = np.ascontiguousarray(value)
        for name in self._state_modules:
            for key, tensor in getattr(self, name).state_dict().items():
                arrays[f"{name}.{key}"] = np.ascontiguousarray(tensor.detach().cpu().numpy())
        values = {name: json_plain(getattr(self, name)) for name in self._state_values if hasattr(self, name)}
        return arrays, values

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], values: dict[str, Any]) -> BaseClusterer:
        """Rebuild a fitted estimator from :meth:`get_params` and :meth:`to_state` output.

        Raises ValueError when an array or module tensor is missing, unexpected or of the
        wrong shape.
        """
        estimator = cls(**params)
        expected = set(cls._state_arrays)
        missing = [name for name in cls._state_arrays if name not in arrays]
        if missing:
            raise ValueError(f"{cls.__name__}: missing learned arrays {missing}")
        for name in cls._state_arrays:
            setattr(estimator, name, arrays[name])
        for name in cls._state_values:
            if name in values:
                setattr(estimator, name, values[name])
        modules = estimator._new_modules()
        for name in cls._state_modules:
            prefix = f"{name}."
            state = {k[len(prefix) :]: torch_tensor(v) for k, v in arrays.items() if k.startswith(prefix)}
            expected.update(prefix + k for k in state)
            try:
                modules[name].load_state_dict(state, strict=True)
            except RuntimeError as err:
                raise ValueError(f"{cls.__name__}.{name}: {err}") from None
            setattr(estimator, name, modules[name].eval())
        unexpected = sorted(set(arrays) - expected)
        if unexpected:
            raise ValueError(f"{cls.__name__}: unexpected arrays {unexpected}")
        missing = [name for name in ("labels_", "n_features_in_") if not hasattr(estimator, name)]
        if missing:
            raise ValueError(f"{cls.__name__}: missing learned values {missing}")
        return estimator

    def _new_modules(self) -> dict[str, Any]:
        """Untrained torch modules of the right shapes for every name in ``_state_modules``,
        built from the parameters and the learned values already restored."""
        return {}

    def _validate_fit_input(self, X: ArrayLike, *, min_samples: int = 1) -> np.ndarray:
        x = as_feature_matrix(X, name="X")
        if x.shape[0] < min_samples:
            raise ValueError(f"X needs at least {min_samples} rows, got n={x.shape[0]}")
        return x

    def _validate_predict_input(self, X: ArrayLike) -> np.ndarray:
        check_is_fitted(self, ("labels_", "n_features_in_"))
        x = as_feature_matrix(X, name="X")
        if x.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {x.shape[1]} features, but {type(self).__name__} was fitted with {self.n_features_in_}"
            )
        return x


def _is_array(value: object) -> bool:
    # arrays (e.g. class embeddings) would flood the repr with numbers
    return isinstance(value, np.ndarray) and value.size > 6


def torch_tensor(array: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.array(array, copy=True))
