"""Method parameters given as text (``--param KEY=VALUE``), converted by their annotations.

A method's parameters are the keyword arguments of its estimator's ``__init__`` and of the
function that fits it from a feature set (``MethodSpec.fit``), minus the ones the run itself
sets (the number of clusters, the seed, the checkpoint). Each value is converted by the
annotation it has there, so ``taus=0.5,1,2`` becomes a tuple of floats, ``n_centers=none``
``None`` and ``co_prediction=auto`` the string where ``bool | str`` allows both; a value that
fits no annotation is an error naming the key, the value and the type expected.
"""

from __future__ import annotations

import enum
import inspect
import json
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# Set by the run (K, --seed, the run directory), never by --param.
RUN_ARGUMENTS = frozenset({"self", "features", "n_clusters", "random_state", "checkpoint_dir", "resume"})
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"none", "null"}


class ParameterError(ValueError):
    """A parameter key the method does not have, or a value its type does not allow."""


@dataclass(frozen=True)
class Parameter:
    """One settable parameter: its annotation (``Any`` when it has none) and default."""

    name: str
    annotation: Any
    default: Any

    def describe(self) -> str:
        default = "required" if self.default is inspect.Parameter.empty else f"default {self.default!r}"
        return f"{self.name}: {type_name(self.annotation)} ({default})"


def parameters_of(*functions: Callable[..., Any]) -> dict[str, Parameter]:
    """The keyword parameters of ``functions`` (earlier ones win), without :data:`RUN_ARGUMENTS`."""
    found: dict[str, Parameter] = {}
    for function in functions:
        try:
            hints = typing.get_type_hints(function)
        except (NameError, TypeError):  # an annotation that only exists for type checkers
            hints = {}
        for p in inspect.signature(function).parameters.values():
            if p.name in RUN_ARGUMENTS or p.name in found or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            found[p.name] = Parameter(p.name, hints.get(p.name, Any), p.default)
    return found


def check_keys(method: str, given: Sequence[str], known: dict[str, Parameter]) -> None:
    """ParameterError for the first key of ``given`` that is not a parameter of ``method``."""
    for key in given:
        if key in RUN_ARGUMENTS - {"self", "features"}:
            setter = {"n_clusters": "--k", "random_state": "--seed"}.get(key, "the run directory")
            raise ParameterError(f"method {method}: {key} is set by {setter}, not by a parameter")
        if key not in known:
            valid = ", ".join(sorted(known))
            raise ParameterError(f"method {method} has no parameter {key!r}; its parameters: {valid}")


def convert(name: str, text: str, annotation: Any) -> Any:
    """``text`` as a value of ``annotation``; ParameterError naming ``name`` and ``text`` if it is none."""
    try:
        return _convert(text.strip(), annotation)
    except (ValueError, TypeError):
        raise ParameterError(f"--param {name}={text}: expected {type_name(annotation)}") from None


def _convert(text: str, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any or annotation is inspect.Parameter.empty:
        return _guess(text)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.lower() in _NONE:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(text, option)
            except (ValueError, TypeError):
                continue
        raise ValueError(text)
    if origin is typing.Literal:
        for option in args:
            if str(option) == text:
                return option
        raise ValueError(text)
    if origin in (tuple, list) or (origin is not None and _is_sequence(origin)):
        items = _items(text)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                raise ValueError(text)
            return tuple(_convert(item, a) for item, a in zip(items, args, strict=True))
        element = args[0] if args else Any
        values = [_convert(item, element) for item in items]
        return values if origin is list else tuple(values)
    if annotation is bool:
        lowered = text.lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise ValueError(text)
    if annotation is int:
        return int(text)
    if annotation is float:
        return float(text)
    if annotation is str:
        return text
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation(text)
    if annotation is type(None):
        if text.lower() in _NONE:
            return None
        raise ValueError(text)
    return text  # a type with no text form (a path, a callable): the text as given


def _is_sequence(origin: Any) -> bool:
    return isinstance(origin, type) and issubclass(origin, Sequence) and origin is not str


def _items(text: str) -> list[str]:
    if text.startswith("["):
        parsed = json.loads(text)
        if not isinstance(parsed, list):
            raise ValueError(text)
        return [str(v) for v in parsed]
    return [part.strip() for part in text.split(",") if part.strip()]


def _guess(text: str) -> Any:
    """A value with no annotation: int, float, bool or None where the text reads as one."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    lowered = text.lower()
    if lowered in _NONE:
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    return text


def type_name(annotation: Any) -> str:
    """A short reader's name for ``annotation``: ``int | None``, ``tuple of float``, ``one of a, b``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any or annotation is inspect.Parameter.empty:
        return "any"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is tuple and args and args[-1] is not Ellipsis:
        return f"{len(args)} comma-separated " + "/".join(type_name(a) for a in dict.fromkeys(args))
    if origin is not None and (origin in (tuple, list) or _is_sequence(origin)):
        return "comma-separated " + (type_name(args[0]) if args else "values")
    if annotation is type(None):
        return "none"
    return getattr(annotation, "__name__", str(annotation))
