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
