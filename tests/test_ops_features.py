from __future__ import annotations

import numpy as np
import pytest

from semclust.ops.features import as_feature_matrix, check_positive_int, l2_normalize


def test_as_feature_matrix_converts_to_contiguous_float32() -> None:
    x = np.arange(12, dtype=np.float16).reshape(3, 4)[:, ::2]
    out = as_feature_matrix(x)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, [[0, 2], [4, 6], [8, 10]])
    assert as_feature_matrix([[1, 2]]).dtype == np.float32


@pytest.mark.parametrize(
    "bad,message",
    [
        (np.ones(3), r"2-D \[n, d\], got shape \(3,\)"),
        (np.ones((0, 3)), r"non-empty, got shape \(0, 3\)"),
        (np.array([["a"]]), "numeric"),
        (np.array([[1.0, np.inf]]), "finite, got inf at row 0, column 1"),
        (np.array([[True]]), "numeric"),
    ],
)
def test_as_feature_matrix_rejects(bad: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        as_feature_matrix(bad, name="X")
    with pytest.raises(ValueError, match="^X "):
        as_feature_matrix(bad, name="X")


def test_l2_normalize_keeps_zero_rows() -> None:
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])
    assert out.dtype == np.float32


def test_check_positive_int() -> None:
    assert check_positive_int(np.int32(3), "k") == 3
    with pytest.raises(TypeError, match="k must be an integer, got 2.0"):
        check_positive_int(2.0, "k")
    with pytest.raises(TypeError, match="got True"):
        check_positive_int(True, "k")
    with pytest.raises(ValueError, match="k must be a positive integer, got -1"):
        check_positive_int(-1, "k")
