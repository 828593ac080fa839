"""dataset:emoji on a tiny fake font + emoji-test.txt pair, and on Debian's real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import ImageFont

from semclust.data.base import ImageDecodeError, SourceError
from semclust.data.emoji import DEFAULT_EMOJI_FONT, DEFAULT_EMOJI_TEST, EmojiSource, parse_emoji_test
from semclust.data.registry import list_datasets, open_source

# Letters stand in for emoji: Pillow's bundled outline font draws them. "Component" and the
# skin-tone variant must be dropped, as must the one-member subgroup (animal-amphibian).
FAKE_TEST = """# emoji-test.txt (fake)
# group: Smileys & Emotion
# subgroup: face-smiling
0041                                       ; fully-qualified     # A E1.0 grinning face
0042 FE0F                                  ; fully-qualified     # B E0.6 smiling face
0042                                       ; unqualified         # B E0.6 smiling face
# group: Component
# subgroup: skin-tone
1F3FB                                      ; component           # x E1.0 light skin tone
# group: Animals & Nature
# subgroup: animal-mammal
0043                                       ; fully-qualified     # C E1.0 dog face
0043 1F3FD                                 ; fully-qualified     # C E1.0 dog face: medium skin tone
0044                                       ; fully-qualified     # D E1.0 cat face
# subgroup: animal-amphibian
0045                                       ; fully-qualified     # E E1.0 frog
# group: Food & Drink
# subgroup: food-fruit
0046                                       ; fully-qualified     # F E1.0 grapes
0047                                       ; fully-qualified     # G E1.0 melon
0020                                       ; fully-qualified     # (space) E1.0 blank
"""


@pytest.fixture
def fake(tmp_path: Path) -> tuple[Path, Path]:
    font = tmp_path / "fake.ttf"
    font.write_bytes(ImageFont.load_default(size=20).font_bytes)
    test = tmp_path / "emoji-test.txt"
    test.write_text(FAKE_TEST, encoding="utf-8")
    return font, test


def test_parse_drops_components_skin_tones_and_unqualified(fake) -> None:
    entries = parse_emoji_test(fake[1])
    assert [e.key for e in entries] == ["41", "42-FE0F", "43", "44", "45", "46", "47", "20"]
    assert entries[0].name == "grinning face" and entries[2].group == "Animals & Nature"
    assert entries[2].subgroup == "animal-mammal"


def test_fake_groups_and_subgroups(fake) -> None:
    font, test = fake
    groups = EmojiSource("all", font=font, emoji_test=test, image_size=32)
    assert groups.class_names == ["Smileys & Emotion", "Animals & Nature", "Food & Drink"]
    assert groups.labels.tolist() == [0, 0, 1, 1, 1, 2, 2, 2]
    assert groups.ids[0] == "all/41" and groups.names[2] == "dog face"
    image = groups.load(2)
    assert image.mode == "RGB" and image.size == (32, 32)
    pixels = np.asarray(image)
    assert pixels[0, 0].tolist() == [255, 255, 255] and pixels.min() < 100  # white ground, dark glyph
    with pytest.raises(ImageDecodeError, match="no glyph"):
        groups.load(7)  # a space draws nothing
    sub = EmojiSource("food-animals", font=font, emoji_test=test)
    assert sub.class_names == ["animal-mammal", "food-fruit"]  # amphibian had one member
    assert sub.names == ["dog face", "cat face", "grapes", "melon", "blank"]


def test_missing_font_names_the_package(fake, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="fonts-noto-color-emoji") as err:
        EmojiSource(font=tmp_path / "none.ttf", emoji_test=fake[1])
    assert "\n" not in str(err.value)
    with pytest.raises(SourceError, match="unicode-data"):
        EmojiSource(font=fake[0], emoji_test=tmp_path / "none.txt")
    with pytest.raises(SourceError, match="no split"):
        EmojiSource("people", font=fake[0], emoji_test=fake[1])


real = pytest.mark.skipif(
    not (DEFAULT_EMOJI_FONT.is_file() and DEFAULT_EMOJI_TEST.is_file()),
    reason="fonts-noto-color-emoji / unicode-data not installed",
)


@real
def test_real_noto_emoji() -> None:
    groups = open_source("dataset:emoji")
    assert len(groups.class_names) == 9 and "Component" not in groups.class_names
    assert len(groups) == len(set(groups.ids)) > 1800
    assert not any("skin tone" in n for n in groups.names)
    sub = open_source("dataset:emoji:food-animals")
    assert len(sub.class_names) == 15 and "animal-mammal" in sub.class_names
    assert "animal-amphibian" not in sub.class_names
    dog = sub.load(sub.names.index("dog face"))
    pixels = np.asarray(dog).reshape(-1, 3).astype(int)
    # colour: some pixel far from grey
    assert (pixels.max(axis=1) - pixels.min(axis=1)).max() > 100
    # a ZWJ sequence renders as one glyph, not three side by side
    from semclust.data.emoji import _font

    family = groups.entries[groups.ids.index("all/1F468-200D-1F469-200D-1F467")]
    one_glyph = _font(str(DEFAULT_EMOJI_FONT)).getbbox("\U0001f600")[2]
    assert _font(str(DEFAULT_EMOJI_FONT)).getbbox(family.text)[2] <= one_glyph
    row = next(r for r in list_datasets() if r["name"] == "emoji")
    assert row["available"] and row["splits"] == ["all", "food-animals"]
