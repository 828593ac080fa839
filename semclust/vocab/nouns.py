"""Noun vocabularies: every WordNet 3.0 noun synset (TAC's vocabulary) or a user's own list."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from semclust.vocab.wordnet import noun_synsets


@dataclass
class NounVocabulary:
    """Parallel lists of readable noun names and their WordNet ids.

    Names repeat across synsets (WordNet has several "bank"s), so ``names`` is not unique for
    the WordNet vocabulary; a user's vocabulary has ``""`` as every synset id.
    """

    names: list[str]
    synset_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.synset_ids:
            self.synset_ids = [""] * len(self.names)
        if len(self.synset_ids) != len(self.names):
            raise ValueError(
                f"names and synset_ids must have the same length, got {len(self.names)} and {len(self.synset_ids)}"
            )

    def __len__(self) -> int:
        return len(self.names)


def wordnet_nouns(wordnet_dir: str | os.PathLike[str] | None = None) -> NounVocabulary:
    """One entry per WordNet noun synset (82,115 in WordNet 3.0), in ``data.noun`` order.

    Each synset is named by its first lemma only, as TAC does; the other lemmas of a synset
    are synonyms that would mostly duplicate its embedding.
    """
    synsets = noun_synsets(wordnet_dir)
    ordered = [synsets[offset] for offset in sorted(synsets)]
    return NounVocabulary(names=[s.name for s in ordered], synset_ids=[s.synset_id for s in ordered])


def load_vocabulary_file(path: str | os.PathLike[str]) -> NounVocabulary:
    """A user's vocabulary: one noun per line, UTF-8.

    Surrounding whitespace is stripped, blank lines and lines starting with ``#`` are
    ignored, and repeated nouns are kept once, at their first position.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"vocabulary file {path} does not exist")
    seen: set[str] = set()
    names: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            noun = line.strip()
            if not noun or noun.startswith("#") or noun in seen:
                continue
            seen.add(noun)
            names.append(noun)
    if not names:
        raise ValueError(f"vocabulary file {path} contains no nouns (only blank lines or # comments)")
    return NounVocabulary(names=names)
