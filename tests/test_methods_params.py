"""--param text converted by the annotations of a method's parameters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import pytest

from semclust.methods.params import ParameterError, check_keys, convert, parameters_of, type_name


def _example(
    features: object,
    n_clusters: int,
    random_state: int,
    epochs: int = 20,
    lr: float = 1e-3,
    flip: bool | None = None,
    co_prediction: bool | str = "auto",
    n_centers: int | None = None,
    betas: tuple[float, float] = (0.9, 0.99),
    taus: tuple[float, ...] = (0.0, 2.0),
    names: Sequence[str] | None = None,
    rule: Literal["cross", "none"] = "cross",
    **options: object,
) -> None: ...


PARAMS = parameters_of(_example)


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [
        ("epochs", "5", 5),
        ("lr", "3e-3", 3e-3),
        ("lr", "2", 2.0),
        ("flip", "true", True),
        ("flip", "No", False),
        ("flip", "none", None),
        ("flip", "None", None),
        ("co_prediction", "false", False),
        ("co_prediction", "auto", "auto"),
        ("n_centers", "null", None),
        ("n_centers", "40", 40),
        ("betas", "0.5,0.9", (0.5, 0.9)),
        ("taus", "0,1.5,3", (0.0, 1.5, 3.0)),
        ("taus", "[1, 2]", (1.0, 2.0)),
        ("names", "cat, dog", ("cat", "dog")),
        ("rule", "none", "none"),
    ],
)
def test_values_follow_their_annotation(key: str, text: str, expected: object) -> None:
    value = convert(key, text, PARAMS[key].annotation)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("key", "text", "fragment"),
    [
        ("epochs", "abc", "expected int"),
        ("epochs", "2.5", "expected int"),
        ("lr", "fast", "expected float"),
        ("flip", "maybe", "bool | none"),
        ("betas", "0.5", "2 comma-separated float"),
        ("taus", "1,x", "comma-separated float"),
        ("rule", "strict", "one of cross, none"),
    ],
)
def test_bad_values_name_the_key_the_value_and_the_type(key: str, text: str, fragment: str) -> None:
    with pytest.raises(ParameterError) as err:
        convert(key, text, PARAMS[key].annotation)
    assert f"{key}={text}" in str(err.value) and fragment in str(err.value)


def test_run_arguments_are_not_parameters() -> None:
    assert {"features", "n_clusters", "random_state"}.isdisjoint(PARAMS)
    assert list(PARAMS)[:2] == ["epochs", "lr"]


def test_unknown_key_lists_the_valid_ones() -> None:
    with pytest.raises(ParameterError) as err:
        check_keys("demo", ["epochz"], PARAMS)
    assert "'epochz'" in str(err.value) and "epochs" in str(err.value) and "taus" in str(err.value)
    with pytest.raises(ParameterError, match="--seed"):
        check_keys("demo", ["random_state"], PARAMS)


def test_type_names_read_plainly() -> None:
    assert type_name(PARAMS["n_centers"].annotation) == "int | none"
    assert type_name(PARAMS["taus"].annotation) == "comma-separated float"
