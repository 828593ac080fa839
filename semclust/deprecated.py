"""Names kept for one release after a rename, each reached with a DeprecationWarning."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any


def renamed(module: str, old_to_new: dict[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that answers each old name with the object now called new."""

    def __getattr__(name: str) -> Any:
        if name in old_to_new:
            new = old_to_new[name]
            warnings.warn(f"{module}.{name} is now {new}; the old name goes in the next release",
                          DeprecationWarning, stacklevel=2)  # fmt: skip
            return namespace[new]
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__


def renamed_keywords(old_to_new: dict[str, str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator: calls with an old keyword name warn and pass the value as the new one."""
    import functools

    def wrap(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{function.__qualname__}() got both {old!r} and its new name {new!r}")
                    warnings.warn(f"{function.__qualname__}(): {old}= is now {new}=; the old name goes in the next "
                                  "release", DeprecationWarning, stacklevel=2)  # fmt: skip
                    kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        return call

    return wrap
