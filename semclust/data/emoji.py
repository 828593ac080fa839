"""Color emoji rendered from Debian's Noto Color Emoji font, labelled by Unicode's emoji-test.txt.

``dataset:emoji`` (split ``all``): every fully-qualified emoji, skin-tone variants dropped,
labelled by its group (9: Smileys & Emotion, People & Body, Animals & Nature, Food & Drink,
Travel & Places, Activities, Objects, Symbols, Flags; the "Component" group is not an emoji of
its own). ``dataset:emoji:food-animals``: the emoji of "Animals & Nature" and "Food & Drink"
labelled by subgroup (mammal, bird, fruit, drink, ...); subgroups with a single emoji
(animal-amphibian: the frog) are dropped, leaving 15. Every image also has its CLDR short name
(``names``), the text Unicode gives it.

Images are rendered on demand with Pillow (RAQM layout, so ZWJ sequences and flags come out
as one glyph) on a white background, cropped to the glyph and centred on a square canvas.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from semclust.data.base import ImageDecodeError, ImageSource, SourceError

DEFAULT_EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
DEFAULT_EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
FONT_ENV, TEST_ENV = "SEMCLUST_EMOJI_FONT", "SEMCLUST_EMOJI_TEST"
EMOJI_SPLITS = ("all", "food-animals")
FOOD_ANIMAL_GROUPS = ("Animals & Nature", "Food & Drink")
SKIN_TONES = frozenset(range(0x1F3FB, 0x1F400))
NOT_EMOJI_GROUPS = frozenset({"Component"})
MIN_SUBGROUP_SIZE = 2  # one image is no cluster
BITMAP_SIZE = 109  # Noto Color Emoji's only strike (CBDT bitmaps); outline fonts take any size
DEFAULT_IMAGE_SIZE = 96


@dataclass(frozen=True)
class EmojiEntry:
    codepoints: tuple[int, ...]
    name: str
    group: str
    subgroup: str

    @property
    def text(self) -> str:
        return "".join(chr(c) for c in self.codepoints)

    @property
    def key(self) -> str:
        return "-".join(f"{c:X}" for c in self.codepoints)


def parse_emoji_test(path: str | os.PathLike[str]) -> list[EmojiEntry]:
    """Fully-qualified entries of an ``emoji-test.txt``, skin-tone variants and Component left out."""
    entries = []
    group = subgroup = ""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("# group:"):
                group = line.split(":", 1)[1].strip()
            elif line.startswith("# subgroup:"):
                subgroup = line.split(":", 1)[1].strip()
            elif line.strip() and not line.startswith("#"):
                fields, _, comment = line.partition("#")
                points, _, status = fields.partition(";")
                if status.strip() != "fully-qualified" or group in NOT_EMOJI_GROUPS:
                    continue
                try:
                    codepoints = tuple(int(p, 16) for p in points.split())
                except ValueError:
                    raise SourceError(f"{path}: cannot read code points {points.strip()!r}") from None
                if SKIN_TONES & set(codepoints):
                    continue
                # comment: "<emoji> E<version> <name>"
                parts = comment.strip().split(" ", 2)
                name = parts[2].strip() if len(parts) == 3 else comment.strip()
                entries.append(EmojiEntry(codepoints, name, group, subgroup))
    if not entries:
        raise SourceError(f"{path} lists no fully-qualified emoji; is it Unicode's emoji-test.txt?")
    return entries


def locate_emoji(
    font: str | os.PathLike[str] | None = None, emoji_test: str | os.PathLike[str] | None = None
) -> tuple[Path, Path]:
    """(font, emoji-test.txt): explicit paths > $SEMCLUST_EMOJI_FONT/TEST > Debian's locations."""
    font_path = Path(font or os.environ.get(FONT_ENV) or DEFAULT_EMOJI_FONT)
    test_path = Path(emoji_test or os.environ.get(TEST_ENV) or DEFAULT_EMOJI_TEST)
    if not font_path.is_file():
        raise SourceError(
            f"emoji font {font_path} not found; install Debian's fonts-noto-color-emoji (make install does)"
        )
    if not test_path.is_file():
        raise SourceError(f"{test_path} not found; install Debian's unicode-data (make install does)")
    return font_path, test_path


@lru_cache(maxsize=4)
def _font(path: str) -> ImageFont.FreeTypeFont:
    layout = ImageFont.Layout.RAQM if ImageFont.core.HAVE_RAQM else ImageFont.Layout.BASIC
    try:
        return ImageFont.truetype(path, BITMAP_SIZE, layout_engine=layout)
    except OSError as exc:
        raise SourceError(f"cannot load emoji font {path}: {exc}") from None


def render_emoji(text: str, font: ImageFont.FreeTypeFont, size: int = DEFAULT_IMAGE_SIZE) -> Image.Image | None:
    """The glyph(s) of ``text`` in colour on white, cropped, centred on a ``size`` square; None when blank."""
    canvas = Image.new("RGBA", (BITMAP_SIZE * 3, BITMAP_SIZE * 2), (255, 255, 255, 0))
    ImageDraw.Draw(canvas).text((8, 8), text, font=font, embedded_color=True, fill=(0, 0, 0, 255))
    box = canvas.getbbox()
    if box is None:
        return None
    glyph = canvas.crop(box)
    side = max(glyph.size)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2), glyph)
    return square.resize((size, size), Image.Resampling.LANCZOS)


class EmojiSource(ImageSource):
    """Rendered emoji with group (``all``) or food/animal subgroup (``food-animals``) labels."""

    def __init__(
        self,
        split: str = "all",
        font: str | os.PathLike[str] | None = None,
        emoji_test: str | os.PathLike[str] | None = None,
        image_size: int = DEFAULT_IMAGE_SIZE,
    ) -> None:
        if split not in EMOJI_SPLITS:
            raise SourceError(f"emoji has no split {split!r}; valid splits: {', '.join(EMOJI_SPLITS)}")
        self.font_path, self.test_path = locate_emoji(font, emoji_test)
        entries = parse_emoji_test(self.test_path)
        if split == "all":
            key = [e.group for e in entries]
        else:
            entries = [e for e in entries if e.group in FOOD_ANIMAL_GROUPS]
            key = [e.subgroup for e in entries]
            counts = {k: key.count(k) for k in set(key)}
            kept = [i for i, k in enumerate(key) if counts[k] >= MIN_SUBGROUP_SIZE]
            entries, key = [entries[i] for i in kept], [key[i] for i in kept]
        if not entries:
            raise SourceError(f"{self.test_path} has no emoji for split {split!r}")
        classes = list(dict.fromkeys(key))  # emoji-test order
        self.split = split
        self.image_size = int(image_size)
        self.entries = entries
        self.names = [e.name for e in entries]
        self.name = "emoji"
        self._ids = [f"{split}/{e.key}" for e in entries]
        self._labels = np.array([classes.index(k) for k in key], dtype=np.int64)
        self._class_names = classes
        _font(str(self.font_path))  # fail now, with the path, rather than on the first image

    def load(self, index: int) -> Image.Image:
        entry = self.entries[index]
        image = render_emoji(entry.text, _font(str(self.font_path)), self.image_size)
        if image is None:
            raise ImageDecodeError(self._ids[index], f"the font has no glyph for {entry.key} ({entry.name})")
        return image

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "split": self.split,
            "n": len(self),
            "font": str(self.font_path),
            "emoji_test": str(self.test_path),
            "image_size": self.image_size,
        }
