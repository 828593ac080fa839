"""Noun vocabularies: WordNet 3.0 noun synsets (all, or the concrete ones) or a user's own list."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from semclust.vocab.wordnet import CONCRETE_LEXNAMES, noun_synsets

# Names ``--vocabulary`` accepts besides a file; the default names clusters with concrete nouns,
# the things a picture can show (the issue-16 measurement: abstract hubs otherwise win).
WORDNET_VOCABULARIES = {"wordnet-concrete": "concrete", "wordnet-all": "all"}
DEFAULT_VOCABULARY = "wordnet-concrete"


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


def wordnet_nouns(wordnet_dir: str | os.PathLike[str] | None = None, subset: str = "all") -> NounVocabulary:
    """One entry per WordNet noun synset, in ``data.noun`` order.

    ``subset="all"``: the 82,115 noun synsets of WordNet 3.0 (TAC's vocabulary);
    ``subset="concrete"``: those of the lexicographer files in :data:`CONCRETE_LEXNAMES`
    (artifact, animal, plant, food, object, body, substance, person: 47,330 synsets).
    Each synset is named by its first lemma only, as TAC does; the other lemmas of a synset
    are synonyms that would mostly duplicate its embedding.
    """
    if subset not in ("all", "concrete"):
        raise ValueError(f"subset must be 'all' or 'concrete', got {subset!r}")
    synsets = noun_synsets(wordnet_dir)
    ordered = [synsets[offset] for offset in sorted(synsets)]
    if subset == "concrete":
        ordered = [s for s in ordered if s.lexname in CONCRETE_LEXNAMES]
    return NounVocabulary(names=[s.name for s in ordered], synset_ids=[s.synset_id for s in ordered])


def load_vocabulary(spec: str | os.PathLike[str] | None = None) -> NounVocabulary:
    """``None`` or ``wordnet-concrete``: concrete WordNet nouns; ``wordnet-all``: every noun
    synset; anything else: a user's file (:func:`load_vocabulary_file`)."""
    spec = DEFAULT_VOCABULARY if spec is None else spec
    if str(spec) in WORDNET_VOCABULARIES and not Path(spec).is_file():
        return wordnet_nouns(subset=WORDNET_VOCABULARIES[str(spec)])
    return load_vocabulary_file(spec)


def load_vocabulary_file(path: str | os.PathLike[str]) -> NounVocabulary:
    """A user's vocabulary: one noun per line, UTF-8.

    Surrounding whitespace is stripped, blank lines and lines starting with ``#`` are
    ignored, and repeated nouns are kept once, at their first position.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"vocabulary file {path} does not exist (or name one of {', '.join(WORDNET_VOCABULARIES)})"
        )
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
