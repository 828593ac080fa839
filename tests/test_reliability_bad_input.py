"""A messy folder built at test time: every bad file is reported and skipped, every good one clustered.

Also holds the property-based tests of the loader (:func:`semclust.data.decode.decode_image`):
random bytes only ever raise :class:`ImageDecodeError`; random shapes and modes always come
back as 8-bit RGB of the right size.
"""

from __future__ import annotations

import csv
import io
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from semclust.cli.main import app
from semclust.data.base import ImageDecodeError
from semclust.data.decode import decode_image

runner = CliRunner()
SMALL = "offline:image_size=32"


# Loading the offline encoder's towers and fitting its bridge on 1000 ImageNet class texts costs ~30 s
# on a busy CPU; every CLI call in these modules would pay it again. Sharing them between
# calls changes no number (the towers are frozen, eval-mode models) and keeps the suite quick.
_LOADED: dict = {}


@pytest.fixture(scope="module", autouse=True)
def reuse_loaded_models():
    from semclust.encoders.offline import OfflineEncoder

    text_tower, visual_tower = OfflineEncoder.text_tower.fget, OfflineEncoder.visual_tower.fget
    bridge = OfflineEncoder.bridge.fget
    class_texts = OfflineEncoder.class_text_embeddings

    def shared(key: tuple, load):
        if key not in _LOADED:
            _LOADED[key] = load()
        return _LOADED[key]

    def text(self):
        return shared(("text", str(self.device)), lambda: text_tower(self))

    def visual(self):
        return shared(("visual", self.image_size, str(self.device)), lambda: visual_tower(self))

    def class_text_embeddings(self):
        return shared(("class texts", self.class_text, self.class_template), lambda: class_texts(self))

    def fitted_bridge(self):
        options = (self.bridge_kind, self.class_text, self.class_template, self.top_t, self.bridge_lambda)
        return shared(("bridge", *options, self.bridge_alpha, str(self.device)), lambda: bridge(self))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(OfflineEncoder, "bridge", property(fitted_bridge))
        patch.setattr(OfflineEncoder, "text_tower", property(text))
        patch.setattr(OfflineEncoder, "visual_tower", property(visual))
        patch.setattr(OfflineEncoder, "class_text_embeddings", class_text_embeddings)
        yield


def _vocabulary(tmp: Path) -> str:
    path = tmp / "nouns.txt"
    path.write_text("red apple\nblue sky\ncat\n")
    return str(path)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` and whose pixel data is a token IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _colour(rgb: tuple[int, int, int], size: tuple[int, int] = (24, 24)) -> Image.Image:
    return Image.new("RGB", size, rgb)


def _exif_rotated_jpeg(width: int, height: int, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encode(_colour((200, 30, 30), (width, height)), "JPEG", exif=exif.tobytes())


# name -> reason fragment the report must give
BAD = {
    "zero.jpg": "empty file",
    "truncated.jpg": "truncated",
    "truncated.png": "",  # PIL words broken PNG streams several ways; any reason will do
    "notes.jpg": "not an image",
    "bomb.png": "decompression bomb",
    "hugebomb.png": "decompression bomb",
    "[bold]markup.jpg": "empty file",  # rich markup in a name must be printed literally
}


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    root = tmp_path_factory.mktemp("messy")
    good: dict[str, bytes] = {}
    reds = [(220, 20, 20), (200, 40, 30), (240, 10, 40)]
    blues = [(20, 20, 220), (30, 40, 200), (10, 60, 240)]
    for i, rgb in enumerate(reds + blues):
        good[f"plain/{i}.png"] = _encode(_colour(rgb), "PNG")
    good["modes/cmyk.jpg"] = _encode(_colour((220, 20, 20)).convert("CMYK"), "JPEG")
    good["modes/sixteen.png"] = _encode(Image.fromarray(np.full((24, 24), 40000, np.uint16)), "PNG")
    good["modes/palette.png"] = _encode(_colour((20, 20, 220)).convert("P"), "PNG")
    rgba = Image.new("RGBA", (24, 24), (200, 20, 20, 128))
    good["modes/alpha.png"] = _encode(rgba, "PNG")
    good["modes/one.png"] = _encode(_colour((20, 20, 220), (1, 1)), "PNG")
    frames = [_colour((220, 20, 20)).convert("P"), _colour((20, 20, 220)).convert("P")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    good["modes/animated.gif"] = buffer.getvalue()
    good["modes/rotated.jpg"] = _exif_rotated_jpeg(40, 20, 6)
    good["été_<b>x&amp;'\".png"] = _encode(_colour((30, 30, 230)), "PNG")
    for rel, data in good.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)

    bad = root / "bad"
    bad.mkdir()
    (bad / "zero.jpg").write_bytes(b"")
    jpeg = _encode(_colour((10, 200, 10), (64, 64)), "JPEG")
    (bad / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    png = _encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), "PNG")
    (bad / "truncated.png").write_bytes(png[: len(png) // 2])
    (bad / "notes.jpg").write_text("this is not an image\n")
    (bad / "bomb.png").write_bytes(_png_header_only(10_000, 10_000))  # over semclust's limit
    (bad / "hugebomb.png").write_bytes(_png_header_only(30_000, 30_000))  # over PIL's hard limit too
    (bad / "[bold]markup.jpg").write_bytes(b"")
    (root / "empty_dir").mkdir()
    (root / "plain" / "loop").symlink_to("..", target_is_directory=True)  # points back up the tree
    (root / "plain" / "dangling.png").symlink_to(root / "nowhere.png")
    return root, set(good)


def test_messy_folder_skips_each_bad_file_and_clusters_the_rest(
    messy_folder: tuple[Path, set[str]], tmp_path: Path
) -> None:
    root, good = messy_folder
    out = tmp_path / "run"
    args = ["cluster", str(root), "--k", "2", "--encoder", SMALL, "--out", str(out)]
    result = runner.invoke(app, [*args, "--vocabulary", _vocabulary(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output

    assert (out / "assignments.csv").read_text(encoding="utf-8").startswith("id,cluster\n")
    # the name with a quote comes back CSV-quoted: read it with the csv module
    with open(out / "assignments.csv", newline="", encoding="utf-8") as handle:
        clustered = [row["id"] for row in csv.DictReader(handle)]
    assert sorted(clustered) == sorted(good)  # every good file, once; nothing via the loop twice

    record = json.loads((out / "run.json").read_text())
    skipped = {s["id"]: s["reason"] for s in record["skipped"]}
    expected_bad = {f"bad/{name}" for name in BAD} | {"plain/dangling.png"}
    assert set(skipped) == expected_bad
    assert record["n_skipped"] == len(expected_bad) and record["n_items"] == len(good)
    for name, fragment in BAD.items():
        assert fragment in skipped[f"bad/{name}"], (name, skipped[f"bad/{name}"])
    assert "not found" in skipped["plain/dangling.png"]

    # the summary names the count, then every bad file with its reason on its own line
    assert f"skipped {len(expected_bad)} unreadable file(s)" in result.output
    for item, reason in skipped.items():
        assert f"  {item}: {reason}" in result.output.splitlines(), item


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod 000 does not stop root from reading the file")
    root = tmp_path / "photos"
    root.mkdir()
    for i, rgb in enumerate([(220, 20, 20), (20, 20, 220), (200, 30, 30), (30, 30, 200)]):
        _colour(rgb).save(root / f"{i}.png")
    locked = root / "locked.png"
    _colour((0, 255, 0)).save(locked)
    locked.chmod(0)
    try:
        out = tmp_path / "run"
        args = ["cluster", str(root), "--k", "2", "--encoder", SMALL, "--out", str(out)]
        result = runner.invoke(app, [*args, "--vocabulary", _vocabulary(tmp_path)], catch_exceptions=False)
    finally:
        locked.chmod(0o644)
    assert result.exit_code == 0, result.output
    assert "  locked.png: permission denied" in result.output.splitlines()


def test_folder_without_images_is_a_one_line_error(tmp_path: Path) -> None:
    root = tmp_path / "nothing here"
    (root / "sub").mkdir(parents=True)
    (root / "readme.txt").write_text("no pictures")
    result = runner.invoke(app, ["cluster", str(root), "--k", "2", "--encoder", SMALL, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and str(root) in lines[0] and lines[0].startswith("error:")
    assert "Traceback" not in result.output


def test_folder_where_every_file_is_bad_is_a_one_line_error(tmp_path: Path) -> None:
    root = tmp_path / "all bad"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"")
    (root / "b.png").write_text("nope")
    result = runner.invoke(app, ["cluster", str(root), "--k", "2", "--encoder", SMALL, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.output.count("error:") == 1


# --- properties of the loader -------------------------------------------------------------

QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@QUICK
@given(st.binary(max_size=512))
def test_random_bytes_only_raise_image_decode_error(data: bytes) -> None:
    try:
        image = decode_image(data, "random")
    except ImageDecodeError as err:
        assert err.item_id == "random" and str(err)
    else:
        assert image.mode == "RGB" and min(image.size) >= 1


@QUICK
@given(st.binary(min_size=1, max_size=256), st.integers(0, 10_000), st.sampled_from(["PNG", "JPEG", "GIF"]))
def test_corrupted_real_images_only_raise_image_decode_error(noise: bytes, at: int, fmt: str) -> None:
    """A real header followed by garbage (or a cut) reaches deeper into PIL's decoders than random bytes."""
    base = _encode(_colour((120, 60, 200), (16, 16)).convert("P" if fmt == "GIF" else "RGB"), fmt)
    at = at % len(base)
    data = base[:at] + noise + base[at + len(noise) :]
    try:
        image = decode_image(data, "mangled")
    except ImageDecodeError:
        return
    assert image.mode == "RGB"


MODES = ["L", "LA", "RGB", "RGBA", "P", "I;16", "CMYK"]


@st.composite
def pictures(draw: st.DrawFn) -> tuple[bytes, tuple[int, int]]:
    mode = draw(st.sampled_from(MODES))
    width, height = draw(st.integers(1, 64)), draw(st.integers(1, 64))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        image = Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    elif mode == "P":
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert("P")
    else:
        bands = len(Image.new(mode, (1, 1)).getbands())
        array = rng.integers(0, 256, (height, width, bands), dtype=np.uint8)
        image = Image.frombytes(mode, (width, height), array.tobytes())
    expected = (width, height)
    if mode in ("L", "RGB", "CMYK") and draw(st.booleans()):
        orientation = draw(st.integers(1, 8))
        exif = Image.Exif()
        exif[0x0112] = orientation
        data = _encode(image, "JPEG", exif=exif.tobytes())
        if orientation >= 5:  # 5-8 swap width and height
            expected = (height, width)
    elif mode == "CMYK":
        data = _encode(image, draw(st.sampled_from(["JPEG", "TIFF"])))
    else:
        data = _encode(image, draw(st.sampled_from(["PNG", "TIFF"])))
    return data, expected


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pictures(), st.booleans())
def test_any_mode_and_size_comes_back_rgb_of_the_right_size(
    picture: tuple[bytes, tuple[int, int]], from_path: bool
) -> None:
    data, expected = picture
    source: bytes | Path = data
    if from_path:
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".img", delete=False) as handle:
            handle.write(data)
        source = Path(handle.name)
    try:
        image = decode_image(source, "picture")
    finally:
        if from_path:
            os.unlink(source)
    assert image.mode == "RGB"
    assert image.size == expected
    assert np.asarray(image).dtype == np.uint8
