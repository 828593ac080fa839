from __future__ import annotations

from pathlib import Path

import pytest

from semclust.vocab.nouns import NounVocabulary, load_vocabulary_file, wordnet_nouns

LINES = (
    "  licence header line\n"
    "02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 000 | a member of the genus Canis\n"
    "00002137 03 n 02 abstraction 0 abstract_entity 0 000 | a general concept\n"
    "09213565 17 n 01 bank 0 000 | sloping land\n"
    "08420278 14 n 03 depository_financial_institution 0 bank 0 banking_concern 0 000 | a bank\n"
    "03000000 06 n 01 big_(a) 0 000 | made up\n"
)


def test_wordnet_nouns_from_a_small_database(tmp_path: Path) -> None:
    (tmp_path / "data.noun").write_text(LINES)
    vocab = wordnet_nouns(tmp_path)
    assert vocab.synset_ids == ["n00002137", "n02084071", "n03000000", "n08420278", "n09213565"]
    assert vocab.names == ["abstraction", "dog", "big", "depository financial institution", "bank"]
    assert len(vocab) == 5


def test_wordnet_30_gives_one_entry_per_noun_synset() -> None:
    vocab = wordnet_nouns()
    assert len(vocab) == len(vocab.synset_ids) == 82115
    assert vocab.names[vocab.synset_ids.index("n02084071")] == "dog"
    assert all(len(s) == 9 and s.startswith("n") for s in vocab.synset_ids[:100])


def test_user_vocabulary_file(tmp_path: Path) -> None:
    path = tmp_path / "nouns.txt"
    path.write_text("# my nouns\ncat\n\n  dog  \ncat\n#dog\nhot dog\n", encoding="utf-8")
    vocab = load_vocabulary_file(path)
    assert vocab.names == ["cat", "dog", "hot dog"]
    assert vocab.synset_ids == ["", "", ""]


def test_user_vocabulary_errors_name_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="empty.txt"):
        load_vocabulary_file(empty)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_vocabulary_file(tmp_path / "missing.txt")


def test_vocabulary_lengths_must_match() -> None:
    with pytest.raises(ValueError, match="same length"):
        NounVocabulary(names=["a", "b"], synset_ids=["n00000001"])


def test_concrete_subset_of_a_small_database(tmp_path: Path) -> None:
    (tmp_path / "data.noun").write_text(LINES)
    vocab = wordnet_nouns(tmp_path, subset="concrete")
    # dog (05 noun.animal), big (06 noun.artifact), bank (17 noun.object); not 03 Tops, 14 group
    assert vocab.synset_ids == ["n02084071", "n03000000", "n09213565"]
    with pytest.raises(ValueError, match="subset"):
        wordnet_nouns(tmp_path, subset="abstract")


def _lexnames_from_the_man_page() -> dict[int, str]:
    """lexnames(5) as Debian's wordnet-base ships it: 'NN<TAB>noun.x<TAB>description' rows."""
    import gzip
    import re

    page = Path("/usr/share/man/man5/lexnames.5WN.gz")
    if not page.is_file():
        pytest.skip("lexnames(5) man page not installed")
    rows = re.findall(r"^(\d\d)\t(noun\.\w+)", gzip.open(page, "rt").read(), flags=re.M)
    return {int(number): name for number, name in rows}


def test_concrete_filter_matches_wordnet_lexnames() -> None:
    from semclust.vocab.wordnet import CONCRETE_LEXNAMES, NOUN_LEXNAMES

    lexnames = _lexnames_from_the_man_page()
    assert lexnames == NOUN_LEXNAMES
    concrete_numbers = {n for n, name in lexnames.items() if name in CONCRETE_LEXNAMES}
    assert len(concrete_numbers) == 8
    # an independent pass over data.noun: the lexicographer file is the line's second field
    expected = []
    with open("/usr/share/wordnet/data.noun", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if not line.startswith("  ") and int(line.split()[1]) in concrete_numbers:
                expected.append("n" + line.split()[0])
    vocab = wordnet_nouns(subset="concrete")
    assert vocab.synset_ids == sorted(expected)
    assert len(vocab) == 47330  # of WordNet 3.0's 82,115 noun synsets
    ids = set(vocab.synset_ids)
    assert "n02084071" in ids  # dog, noun.animal
    assert "n14304060" not in ids and "n14304060" in set(wordnet_nouns().synset_ids)  # syndrome, noun.state


def test_load_vocabulary_names(tmp_path: Path) -> None:
    from semclust.vocab.nouns import load_vocabulary

    assert len(load_vocabulary()) == 47330
    assert len(load_vocabulary("wordnet-all")) == 82115
    path = tmp_path / "mine.txt"
    path.write_text("cat\ndog\n")
    assert load_vocabulary(path).names == ["cat", "dog"]
    with pytest.raises(FileNotFoundError, match="wordnet-all"):
        load_vocabulary(tmp_path / "absent.txt")
