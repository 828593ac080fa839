"""ImageNet-1k class ids (package data) and their readable WordNet names."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from semclust.vocab.wordnet import synset_names


@lru_cache(maxsize=1)
def imagenet_synset_ids() -> tuple[str, ...]:
    text = resources.files("semclust.resources").joinpath("imagenet_synsets.txt").read_text()
    ids = tuple(text.split())
    if len(ids) != 1000:
        raise RuntimeError(f"imagenet_synsets.txt holds {len(ids)} ids, expected 1000")
    return ids


@lru_cache(maxsize=2)
def imagenet_class_names(wordnet_dir: str | None = None) -> tuple[str, ...]:
    """Names in the classifier's logit order (line i = class i)."""
    return tuple(synset_names(list(imagenet_synset_ids()), wordnet_dir))
