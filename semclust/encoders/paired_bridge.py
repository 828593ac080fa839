"""A linear image-to-text map fitted on real image-text pairs: rendered emoji and their names.

The default offline bridge is fitted on the classifier's 1000 weight rows and their class
texts only, which carries little language. Here the rows are joined by pairs of (visual
feature of a rendered emoji, MiniLM embedding of its CLDR name and keywords), each emoji
rendered several ways (colour, grey, inverted, low resolution) so the map does not learn the
Noto palette. The map is ridge regression (or orthogonal Procrustes) on unit rows, no bias,
as the linear bridges.

Evaluation must never score an image the map was fitted on: :func:`split_by_codepoint` splits
emoji into two halves by a hash of their code points, and :func:`held_out_joint_view` maps
each half with the map fitted on the other.

As the offline encoder's ``bridge=paired``, the map is fitted once per encoder setting from the
emoji of Debian's ``fonts-noto-color-emoji`` (:func:`paired_matrix`); ``paired_holdout=a|b``
leaves one half out of the fit, so that half's emoji can be scored honestly.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from semclust.encoders.base import l2_normalize
from semclust.encoders.bridge import procrustes_map, ridge_map

CLDR_ANNOTATIONS = Path("/usr/share/unicode/cldr/common/annotations/en.xml")
RENDERINGS = ("colour", "grey", "inverted", "low-res")
PAIRED_HOLDOUTS = ("none", "a", "b")  # the code-point half left out of the fit
# ridge: least squares; procrustes: the orthogonal map, which keeps the visual geometry (as the
# default classifier-row bridge does) while its fit sees real image-text pairs.
PAIRED_METHODS = ("ridge", "procrustes")
# Bump when the pairs are computed differently, so stale caches are never read.
PAIRS_FORMAT = 1


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
    """``normalise(v @ M)``: ridge (or orthogonal Procrustes, ``method="procrustes"``) from unit
    visual features to unit text embeddings."""

    def __init__(self, lam: float = 1.0, method: str = "ridge") -> None:
        self.lam = lam
        self.method = check_method(method)

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
        self.matrix_ = ridge_map(x, t, self.lam) if self.method == "ridge" else procrustes_map(x, t)
        self.n_pairs_ = len(x)
        return self

    def transform(self, visual: np.ndarray) -> np.ndarray:
        return l2_normalize((l2_normalize(np.asarray(visual, np.float32)) @ self.matrix_).astype(np.float32))


def emoji_pair_features(encoder: Any, source: Any, variants: Sequence[str] = RENDERINGS) -> dict[str, np.ndarray]:
    """Visual features ``[n, len(variants), D]`` of the emoji of ``source`` the font draws, their
    text embeddings ``[n, d]`` and ``keys`` ``[n]`` (an emoji without a glyph is left out)."""
    from semclust.data.base import ImageDecodeError

    images, entries = [], []
    for i, entry in enumerate(source.entries):
        try:
            images.append(source.load(i))
        except ImageDecodeError:
            continue
        entries.append(entry)
    if not images:
        raise ValueError(f"the emoji font {getattr(source, 'font_path', '')} drew none of its emoji")
    feats = []
    for variant in variants:
        raw, _ = encoder.visual_and_logits([render_variants(im, [variant])[0] for im in images])
        feats.append(l2_normalize(raw))
    texts = [pair_text(e.name, e.text) for e in entries]
    return {
        "visual": np.stack(feats, axis=1),
        "texts": np.asarray(encoder.encode_texts(texts), np.float32),
        "keys": np.array([e.key for e in entries]),
    }


def check_holdout(holdout: str) -> str:
    if holdout not in PAIRED_HOLDOUTS:
        raise ValueError(f"paired_holdout must be one of {', '.join(PAIRED_HOLDOUTS)}, got {holdout!r}")
    return holdout


def check_method(method: str) -> str:
    if method not in PAIRED_METHODS:
        raise ValueError(f"paired_method must be one of {', '.join(PAIRED_METHODS)}, got {method!r}")
    return method


def fit_rows(keys: Sequence[str], holdout: str) -> np.ndarray:
    """bool per emoji: used to fit a map that leaves half ``holdout`` out (``none``: every emoji)."""
    in_a = split_by_codepoint(keys)
    if check_holdout(holdout) == "none":
        return np.ones(len(in_a), dtype=bool)
    return ~in_a if holdout == "a" else in_a


def holdout_of(keys: Sequence[str]) -> list[str]:
    """The ``paired_holdout`` that scores each emoji key honestly: the half it belongs to."""
    return ["a" if a else "b" for a in split_by_codepoint(keys)]


def _pairs_cache_path(encoder: Any, source: Any, variants: Sequence[str], cache_dir: Path) -> Path:
    identity = {
        "format": PAIRS_FORMAT,
        "visual_model": encoder.visual_model,
        "image_size": encoder.image_size,
        "variants": list(variants),
        "font": [str(source.font_path), source.font_path.stat().st_size],
        "emoji_test": [str(source.test_path), source.test_path.stat().st_size],
        "cldr": [str(CLDR_ANNOTATIONS), CLDR_ANNOTATIONS.stat().st_size if CLDR_ANNOTATIONS.is_file() else 0],
        "n": len(source),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
    return cache_dir / f"pairs-{digest}.npz"


def cached_emoji_pairs(
    encoder: Any, source: Any = None, variants: Sequence[str] = RENDERINGS, cache_dir: Path | None = None
) -> dict[str, np.ndarray]:
    """:func:`emoji_pair_features` of every emoji (``dataset:emoji``'s), plus their ``keys``,
    computed once per encoder setting and font and kept on disk."""
    from semclust.atomic import atomic_write

    if source is None:
        from semclust.data.emoji import EmojiSource

        source = EmojiSource("all")
    if cache_dir is None:
        from semclust.cache import default_cache_dir

        cache_dir = default_cache_dir() / "paired"
    path = _pairs_cache_path(encoder, source, variants, Path(cache_dir))
    if path.is_file():
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    pairs = emoji_pair_features(encoder, source, variants)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(
        path, lambda handle: np.savez(handle, visual=pairs["visual"], texts=pairs["texts"], keys=pairs["keys"]), "wb"
    )
    return pairs


def paired_matrix(
    pairs: dict[str, np.ndarray],
    holdout: str,
    class_weights: np.ndarray | None,
    class_texts: np.ndarray | None,
    lam: float = 1.0,
    method: str = "ridge",
) -> tuple[np.ndarray, int]:
    """The map ``[D, d]`` fitted (``method``, see :data:`PAIRED_METHODS`) on every rendering of the
    emoji outside half ``holdout`` plus the classifier's rows; and the number of emoji it saw."""
    rows = fit_rows([str(k) for k in pairs["keys"]], holdout)
    visual = pairs["visual"][rows]
    renderings = visual.shape[1]
    fitted = PairedTextMap(lam, method).fit(
        visual.reshape(-1, visual.shape[2]),
        np.repeat(pairs["texts"][rows], renderings, axis=0),
        class_weights,
        class_texts,
    )
    return fitted.matrix_, int(rows.sum())


class PairedBridge:
    """``normalise(features @ M)`` with ``M`` a :class:`PairedTextMap`'s matrix."""

    kind = "paired"

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = np.asarray(matrix, dtype=np.float32)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return l2_normalize((np.asarray(features, dtype=np.float32) @ self.matrix).astype(np.float32))

    def embed(self, features: np.ndarray, logits: Any) -> np.ndarray:
        return self(features)


def held_out_joint_view(encoder: Any, visual: np.ndarray, keys: Sequence[str]) -> np.ndarray:
    """The paired joint view of emoji ``visual`` rows ``[n, D]``, each mapped by the map fitted
    without its own half (``keys``: the emoji's code-point keys, as ``EmojiEntry.key``), so no
    row is mapped by a map that saw its image with its name."""
    halves = np.array(holdout_of(keys))
    out: np.ndarray | None = None
    for half in ("a", "b"):
        rows = halves == half
        if rows.any():
            mapped = encoder.with_bridge(bridge="paired", paired_holdout=half).bridge.embed(visual[rows], None)
            if out is None:
                out = np.empty((len(visual), mapped.shape[1]), dtype=np.float32)
            out[rows] = mapped
    if out is None:
        raise ValueError("no rows to map")
    return out


def warn_if_fitted_on(source: Any, encoder: Any) -> bool:
    """Log a warning (and return True) when ``encoder``'s paired map was fitted on ``source``'s
    emoji with their names: joint-view results on them would not be held out."""
    if getattr(encoder, "bridge_kind", None) != "paired" or getattr(source, "name", None) != "emoji":
        return False
    from semclust.encoders.runtime import logger

    logger.warning(
        "the paired bridge (paired_holdout=%s) was fitted on emoji with their names: joint-view results on "
        "%s are not held out; score emoji with semclust.encoders.paired_bridge.held_out_joint_view",
        encoder.paired_holdout,
        source.name,
    )
    return True
