from __future__ import annotations

from pathlib import Path

import pytest

from semclust.vocab.wordnet import WordNetError, find_wordnet_dir, noun_synsets, parse_data_line, synset_names

# A real data.noun line (synset 02084071 'dog'), trimmed of some pointers.
DOG_LINE = (
    "02084071 05 n 03 dog 0 domestic_dog 0 Canis_familiaris 0 003 @ 02083346 n 0000 "
    "@ 01317541 n 0000 ~ 01322604 n 0000 | a member of the genus Canis; \"the dog barked\"  \n"
)


def test_parse_data_line_by_hand() -> None:
    synset = parse_data_line(DOG_LINE)
    assert synset.offset == 2084071
    assert synset.lemmas == ("dog", "domestic_dog", "Canis_familiaris")
    assert synset.hypernyms == (2083346, 1317541)  # '~' hyponym pointer is not a hypernym
    assert synset.gloss.startswith("a member of the genus Canis")
    assert synset.synset_id == "n02084071" and synset.name == "dog"


def test_wordnet_30_has_all_noun_synsets() -> None:
    nouns = noun_synsets()
    assert len(nouns) == 82115  # WordNet 3.0's noun synset count, as TAC reports
    assert nouns[2084071].lemmas[0] == "dog"


def test_imagenet_ids_resolve_to_names() -> None:
    assert synset_names(["n01440764", "n02084071"]) == ["tench", "dog"]
    with pytest.raises(WordNetError, match="n99999999"):
        synset_names(["n99999999"])


def test_missing_wordnet_directory_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(WordNetError, match=str(tmp_path)):
        find_wordnet_dir(tmp_path)


def test_user_wordnet_directory(tmp_path: Path) -> None:
    (tmp_path / "data.noun").write_text("  licence header line\n" + DOG_LINE)
    assert list(noun_synsets(tmp_path)) == [2084071]
