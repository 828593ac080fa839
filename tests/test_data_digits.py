from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from semclust.data.digits import DigitsSource


def test_digits_scaled_to_bytes_with_labels():
    source = DigitsSource()
    reference = load_digits()
    assert len(source) == 1797
    assert source.class_names == [str(d) for d in range(10)]
    assert np.array_equal(source.labels, reference.target)
    assert source.ids[0] == "all/0" and source.ids[-1] == "all/1796"
    loaded = source.load(5)
    assert loaded.mode == "L"  # greyscale stays one channel; encoders convert as they need
    image = np.asarray(loaded)
    assert image.shape == (8, 8)
    expected = np.rint(reference.images[5] * 255 / 16).astype(np.uint8)
    assert np.array_equal(image, expected)
    # 16 (the stored maximum) must map to full white, not 16/255 grey.
    assert image.max() == 255
    assert source.describe() == {"name": "digits", "split": "all", "n": 1797}
