"""WordNet 3.0 noun synsets read straight from the database files (``data.noun``).

Reading the files ourselves keeps the vocabulary offline and dependency-free: Debian's
``wordnet-base`` ships them in ``/usr/share/wordnet``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DEFAULT_WORDNET_DIRS = ("/usr/share/wordnet", "/usr/share/wordnet/dict", "/usr/local/share/wordnet")


class WordNetError(FileNotFoundError):
    pass


@dataclass(frozen=True)
class NounSynset:
    offset: int
    lemmas: tuple[str, ...]
    gloss: str
    hypernyms: tuple[int, ...]

    @property
    def synset_id(self) -> str:
        """The ``n01440764`` form used by ImageNet."""
        return f"n{self.offset:08d}"

    @property
    def name(self) -> str:
        """Readable first lemma: underscores to spaces, WordNet's ``(a)``/``(p)`` markers dropped."""
        return readable_lemma(self.lemmas[0])


def readable_lemma(lemma: str) -> str:
    lemma = lemma.split("(")[0]
    return lemma.replace("_", " ").strip()


def find_wordnet_dir(wordnet_dir: str | os.PathLike[str] | None = None) -> Path:
    """Locate a WordNet directory holding ``data.noun``; explicit > $SEMCLUST_WORDNET_DIR > defaults."""
    candidates = [wordnet_dir] if wordnet_dir else []
    if not candidates and os.environ.get("SEMCLUST_WORDNET_DIR"):
        candidates = [os.environ["SEMCLUST_WORDNET_DIR"]]
    if not candidates:
        candidates = list(DEFAULT_WORDNET_DIRS)
    for candidate in candidates:
        path = Path(candidate)
        if (path / "data.noun").is_file():
            return path
    raise WordNetError(
        f"WordNet 3.0 'data.noun' not found in {', '.join(str(c) for c in candidates)}; "
        "install Debian's wordnet-base (make install does) or pass a WordNet directory"
    )


def parse_data_line(line: str) -> NounSynset:
    """Parse one synset line of a WordNet ``data.*`` file (format in wndb(5))."""
    body, _, gloss = line.partition(" | ")
    fields = body.split()
    offset = int(fields[0])
    word_count = int(fields[3], 16)
    lemmas = tuple(fields[4 + 2 * i] for i in range(word_count))
    pos = 4 + 2 * word_count
    pointer_count = int(fields[pos])
    hypernyms = []
    for p in range(pointer_count):
        symbol, target, target_pos = fields[pos + 1 + 4 * p : pos + 4 + 4 * p]
        if symbol in ("@", "@i") and target_pos == "n":
            hypernyms.append(int(target))
    return NounSynset(offset, lemmas, gloss.strip(), tuple(hypernyms))


@lru_cache(maxsize=4)
def _load_nouns(path: str) -> dict[int, NounSynset]:
    synsets: dict[int, NounSynset] = {}
    with open(Path(path) / "data.noun", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("  "):  # licence header
                continue
            synset = parse_data_line(line)
            synsets[synset.offset] = synset
    return synsets


def noun_synsets(wordnet_dir: str | os.PathLike[str] | None = None) -> dict[int, NounSynset]:
    """All noun synsets keyed by offset (82,115 in WordNet 3.0)."""
    return _load_nouns(str(find_wordnet_dir(wordnet_dir)))


def synset_names(synset_ids: list[str], wordnet_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Readable names for ``n########`` ids (e.g. the ImageNet classes)."""
    nouns = noun_synsets(wordnet_dir)
    names = []
    for synset_id in synset_ids:
        offset = int(synset_id.lstrip("n"))
        if offset not in nouns:
            raise WordNetError(f"synset {synset_id} is not a WordNet 3.0 noun")
        names.append(nouns[offset].name)
    return names
