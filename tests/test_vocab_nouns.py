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
