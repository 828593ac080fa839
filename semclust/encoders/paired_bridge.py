"""A linear image-to-text map fitted on real image-text pairs: rendered emoji and their names.

The default offline bridge is fitted on the classifier's 1000 weight rows and their class
texts only, which carries little language. Here the rows are joined by pairs of (visual
feature of a rendered emoji, MiniLM embedding of its CLDR name and keywords), each emoji
rendered several ways (colour, grey, inverted, low resolution) so the map does not learn the
Noto palette. The map is ridge regression on unit rows, no bias, as the linear bridge.

Evaluation must never score an image the map was fitted on: :func:`split_by_codepoint` splits
emoji into two halves by a hash of their code points, and :func:`cross_fitted_text_view` maps
each half with the map fitted on the other.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from semclust.encoders.base import l2_normalize
from semclust.encoders.bridge import ridge_map

CLDR_ANNOTATIONS = Path("/usr/share/unicode/cldr/common/annotations/en.xml")
RENDERINGS = ("colour", "grey", "inverted", "low-res")


def render_variants(image: Image.Image, variants: Sequence[str] = RENDERINGS) -> list[Image.Image]:
    out = []
    for variant in variants:
        if variant == "colour":
            out.append(image)
        elif variant == "grey":
            out.append(ImageOps.grayscale(image).convert("RGB"))
        elif variant == "inverted":
            out.append(ImageOps.invert(ImageOps.grayscale(image)).convert("RGB"))
        elif variant == "low-res":
            out.append(image.resize((24, 24), Image.Resampling.BILINEAR).resize(image.size, Image.Resampling.BILINEAR))
        else:
            raise ValueError(f"unknown rendering {variant!r}; expected one of {', '.join(RENDERINGS)}")
    return out


@lru_cache(maxsize=1)
def cldr_keywords(path: str = str(CLDR_ANNOTATIONS)) -> dict[str, list[str]]:
    """Emoji -> its English CLDR keywords (Debian unicode-cldr-core), {} when absent."""
    file = Path(path)
    if not file.is_file():
        return {}
    keywords = {}
    pattern = re.compile(r'<annotation cp="([^"]+)">([^<]*)</annotation>')
    for emoji, words in pattern.findall(file.read_text(encoding="utf-8")):
        keywords[html.unescape(emoji).replace("\ufe0f", "")] = [w.strip() for w in html.unescape(words).split("|")]
    return keywords


def pair_text(name: str, emoji: str) -> str:
    """The text an emoji is paired with: its name, then its CLDR keywords when known."""
    words = [w for w in cldr_keywords().get(emoji.replace("\ufe0f", ""), []) if w != name]
    return f"{name}: {', '.join(words)}" if words else name


def split_by_codepoint(keys: Sequence[str]) -> np.ndarray:
    """bool per key: True for half A. Decided by a hash of the code points, so stable across runs."""
    return np.array([hashlib.sha256(k.encode()).digest()[0] % 2 == 0 for k in keys], dtype=bool)


class PairedTextMap:
    """``normalise(v @ M)``: ridge from unit visual features to unit text embeddings."""

    def __init__(self, lam: float = 1.0) -> None:
        self.lam = lam

    def fit(
        self,
        visual: np.ndarray,
        texts: np.ndarray,
        class_weights: np.ndarray | None = None,
        class_texts: np.ndarray | None = None,
    ) -> PairedTextMap:
        x = l2_normalize(np.asarray(visual, dtype=np.float32))
        t = l2_normalize(np.asarray(texts, dtype=np.float32))
        if class_weights is not None and class_texts is not None:
            x = np.concatenate([x, l2_normalize(np.asarray(class_weights, np.float32))])
            t = np.concatenate([t, l2_normalize(np.asarray(class_texts, np.float32))])
        self.matrix_ = ridge_map(x, t, self.lam)
        self.n_pairs_ = len(x)
        return self

    def transform(self, visual: np.ndarray) -> np.ndarray:
        return l2_normalize((l2_normalize(np.asarray(visual, np.float32)) @ self.matrix_).astype(np.float32))


def emoji_pair_features(encoder: Any, source: Any, variants: Sequence[str] = RENDERINGS) -> dict[str, np.ndarray]:
    """Visual features ``[n, len(variants), D]`` of every emoji of ``source`` and its text embedding ``[n, d]``."""
    images = [source.load(i) for i in range(len(source))]
    feats = []
    for variant in variants:
        raw, _ = encoder.visual_and_logits([render_variants(im, [variant])[0] for im in images])
        feats.append(l2_normalize(raw))
    texts = [pair_text(e.name, e.text) for e in source.entries]
    return {"visual": np.stack(feats, axis=1), "texts": np.asarray(encoder.encode_texts(texts), np.float32)}


def cross_fitted_text_view(
    visual: np.ndarray,
    in_a: np.ndarray,
    pair_visual: np.ndarray,
    pair_texts: np.ndarray,
    pair_in_a: np.ndarray,
    class_weights: np.ndarray | None = None,
    class_texts: np.ndarray | None = None,
    lam: float = 1.0,
) -> np.ndarray:
    """Text-space view of ``visual`` rows: half A mapped by the map fitted on half B's pairs and
    vice versa, so no row is mapped by a map that saw it. ``pair_visual`` is ``[n, R, D]``."""
    out = np.empty((len(visual), pair_texts.shape[1]), dtype=np.float32)
    r = pair_visual.shape[1]
    for half in (True, False):
        fit = pair_in_a != half  # the other half's pairs
        m = PairedTextMap(lam).fit(
            pair_visual[fit].reshape(-1, pair_visual.shape[2]),
            np.repeat(pair_texts[fit], r, axis=0),
            class_weights,
            class_texts,
        )
        rows = in_a == half
        out[rows] = m.transform(visual[rows])
    return out
