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


# lexnames(5): the lexicographer file number in each data line names the file the synset was
# written in, i.e. its broad semantic category.
NOUN_LEXNAMES: dict[int, str] = {
    3: "noun.Tops", 4: "noun.act", 5: "noun.animal", 6: "noun.artifact", 7: "noun.attribute",
    8: "noun.body", 9: "noun.cognition", 10: "noun.communication", 11: "noun.event",
    12: "noun.feeling", 13: "noun.food", 14: "noun.group", 15: "noun.location", 16: "noun.motive",
    17: "noun.object", 18: "noun.person", 19: "noun.phenomenon", 20: "noun.plant",
    21: "noun.possession", 22: "noun.process", 23: "noun.quantity", 24: "noun.relation",
    25: "noun.shape", 26: "noun.state", 27: "noun.substance", 28: "noun.time",
}  # fmt: skip
# Things a picture can show: the "syndrome / policy / therapy" files are left out.
CONCRETE_LEXNAMES = frozenset(
    {
        "noun.artifact", "noun.animal", "noun.plant", "noun.food",
        "noun.object", "noun.body", "noun.substance", "noun.person",
    }
)  # fmt: skip


@dataclass(frozen=True)
class NounSynset:
    offset: int
    lemmas: tuple[str, ...]
    gloss: str
    hypernyms: tuple[int, ...]
    lexfile: int = -1  # lexicographer file number (NOUN_LEXNAMES); -1 when unknown

    @property
    def lexname(self) -> str:
        return NOUN_LEXNAMES.get(self.lexfile, "")

    @property
    def concrete(self) -> bool:
        return self.lexname in CONCRETE_LEXNAMES

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
    lexfile = int(fields[1])
    word_count = int(fields[3], 16)
    lemmas = tuple(fields[4 + 2 * i] for i in range(word_count))
    pos = 4 + 2 * word_count
    pointer_count = int(fields[pos])
    hypernyms = []
    for p in range(pointer_count):
        symbol, target, target_pos = fields[pos + 1 + 4 * p : pos + 4 + 4 * p]
        if symbol in ("@", "@i") and target_pos == "n":
            hypernyms.append(int(target))
    return NounSynset(offset, lemmas, gloss.strip(), tuple(hypernyms), lexfile)


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


def hypernym_distances(offset: int, synsets: dict[int, NounSynset]) -> dict[int, int]:
    """Every ancestor of ``offset`` (itself included, at 0) with its fewest hypernym steps up."""
    distances = {offset: 0}
    frontier = [offset]
    while frontier:
        following = []
        for node in frontier:
            synset = synsets.get(node)
            for parent in synset.hypernyms if synset else ():
                if parent not in distances:
                    distances[parent] = distances[node] + 1
                    following.append(parent)
        frontier = following
    return distances


def synset_depth(offset: int, synsets: dict[int, NounSynset]) -> int:
    """1 + the fewest hypernym steps from ``offset`` to a root (a root has depth 1)."""
    distances = hypernym_distances(offset, synsets)
    roots = [node for node in distances if not (synsets.get(node) and synsets[node].hypernyms)]
    return 1 + min(distances[r] for r in roots)


def wu_palmer(a: int, b: int, synsets: dict[int, NounSynset]) -> float:
    """Wu-Palmer similarity ``2 d(lcs) / (d(lcs) + steps(a, lcs) + d(lcs) + steps(b, lcs))``.

    ``lcs`` is the deepest common ancestor; 0.0 when the two share none.
    """
    up_a, up_b = hypernym_distances(a, synsets), hypernym_distances(b, synsets)
    common = set(up_a) & set(up_b)
    if not common:
        return 0.0
    best = 0.0
    for node in common:
        depth = synset_depth(node, synsets)
        best = max(best, 2.0 * depth / (2.0 * depth + up_a[node] + up_b[node]))
    return best
