"""The scikit-learn parameter contract every estimator here shares (clusterers and SSL
classifiers): ``__init__`` stores its keyword arguments under their names, ``get_params`` /
``set_params`` read and write them, so :func:`sklearn.base.clone` and grid searches work."""

from __future__ import annotations

import inspect
from typing import Any


class ParamsMixin:
    """``get_params``/``set_params`` from the ``__init__`` signatures up the class chain (a
    subclass that adds keyword arguments and passes ``**kwargs`` up keeps its parents' ones)."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        names: set[str] = set()
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None or klass is object:
                continue
            for p in inspect.signature(init).parameters.values():
                if p.name == "self":
                    continue
                if p.kind is p.VAR_POSITIONAL:  # hidden positional arguments cannot be cloned
                    raise TypeError(f"{cls.__name__}.__init__ must not take *args")
                if p.kind is not p.VAR_KEYWORD:
                    names.add(p.name)
            if not any(p.kind is p.VAR_KEYWORD for p in inspect.signature(init).parameters.values()):
                break  # this __init__ passes nothing further up: the parents' parameters are not ours
        return sorted(names)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments as currently set.

        ``deep`` is accepted for scikit-learn compatibility; no parameter here is itself an
        estimator, so there is nothing to recurse into.
        """
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params: Any) -> Any:
        """Change constructor arguments in place; learned attributes are left to the next fit."""
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; valid parameters: {valid}")
            setattr(self, name, value)
        return self
