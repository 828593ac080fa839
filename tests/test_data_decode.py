from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from semclust.data.base import ImageDecodeError
from semclust.data.decode import decode_image


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image)


def _noise_rgb(size: int = 64) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_rgb_png_round_trips_exactly_from_path_and_bytes(tmp_path):
    array = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3) * 3
    path = tmp_path / "a.png"
    Image.fromarray(array).save(path)
    assert np.array_equal(_pixels(decode_image(path, "a")), array)
    assert np.array_equal(_pixels(decode_image(str(path), "a")), array)
    assert np.array_equal(_pixels(decode_image(path.read_bytes(), "a")), array)
    assert np.array_equal(_pixels(decode_image(bytearray(path.read_bytes()), "a")), array)


def test_grayscale_is_replicated_to_three_channels():
    gray = np.array([[0, 10], [200, 255]], dtype=np.uint8)
    out = _pixels(decode_image(_encode(Image.fromarray(gray), "PNG"), "g"))
    assert out.shape == (2, 2, 3)
    for channel in range(3):
        assert np.array_equal(out[:, :, channel], gray)


def test_one_bit_image_becomes_black_and_white():
    image = Image.new("1", (2, 1))
    image.putpixel((1, 0), 1)
    out = _pixels(decode_image(_encode(image, "PNG"), "bw"))
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[0, 1].tolist() == [255, 255, 255]


def test_rgba_is_composited_on_white():
    rgba = np.array(
        [[[255, 0, 0, 0], [0, 0, 255, 255], [255, 0, 0, 128]]],
        dtype=np.uint8,
    )
    out = _pixels(decode_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"), "t"))
    assert out[0, 0].tolist() == [255, 255, 255]  # fully transparent -> white, not red/black
    assert out[0, 1].tolist() == [0, 0, 255]
    red, green, blue = out[0, 2].tolist()
    assert red == 255 and 125 <= green <= 129 and green == blue


def test_gray_with_alpha_is_composited_on_white():
    la = Image.new("LA", (2, 1))
    la.putpixel((0, 0), (0, 0))
    la.putpixel((1, 0), (0, 255))
    out = _pixels(decode_image(_encode(la, "PNG"), "la"))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 1].tolist() == [0, 0, 0]


def test_palette_gif_with_transparent_index_is_white():
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 0, 255, 0] + [0] * (254 * 3))
    image.putpixel((0, 0), 0)
    image.putpixel((1, 0), 1)
    out = _pixels(decode_image(_encode(image, "GIF", transparency=0), "p"))
    assert out[0, 0].tolist() == [255, 255, 255]
    assert out[0, 1].tolist() == [0, 255, 0]


def test_palette_without_transparency_maps_through_palette():
    image = Image.new("P", (1, 1))
    image.putpalette([10, 20, 30] + [0] * (255 * 3))
    out = _pixels(decode_image(_encode(image, "PNG"), "p"))
    assert out[0, 0].tolist() == [10, 20, 30]


def test_cmyk_is_converted():
    image = Image.new("CMYK", (2, 1))
    image.putpixel((0, 0), (0, 255, 255, 0))  # pure red in print terms
    image.putpixel((1, 0), (0, 0, 0, 0))  # no ink -> white
    out = _pixels(decode_image(_encode(image, "TIFF"), "c"))
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[0, 1].tolist() == [255, 255, 255]


def test_sixteen_bit_png_is_scaled_not_clipped():
    values = np.array([[0, 257 * 100, 30000, 65535]], dtype=np.uint16)
    data = _encode(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    out = _pixels(decode_image(data, "deep"))
    assert out[0, :, 0].tolist() == [0, 100, round(30000 / 257), 255]
    assert np.array_equal(out[:, :, 0], out[:, :, 2])


def test_32_bit_integer_tiff_in_16_bit_range_is_scaled():
    values = np.array([[0, 65535, 257 * 7]], dtype=np.int32)
    out = _pixels(decode_image(_encode(Image.fromarray(values), "TIFF"), "i"))
    assert out[0, :, 0].tolist() == [0, 255, 7]


def test_32_bit_integer_out_of_16_bit_range_is_stretched():
    values = np.array([[-1000, 0, 99_000]], dtype=np.int32)
    out = _pixels(decode_image(_encode(Image.fromarray(values), "TIFF"), "i"))
    assert out[0, :, 0].tolist() == [0, round(1000 / 100_000 * 255), 255]


def test_float_image_in_unit_range_is_scaled():
    values = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    out = _pixels(decode_image(_encode(Image.fromarray(values), "TIFF"), "f"))
    assert out[0, :, 0].tolist() == [0, 128, 255]


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (4, 4), color) for color in [(255, 0, 0), (0, 0, 255)]]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    out = _pixels(decode_image(data, "anim"))
    assert out[0, 0].tolist() == [255, 0, 0]


def test_exif_orientation_is_applied():
    # 40 wide x 20 high: red on the left, blue on the right.
    array = np.zeros((20, 40, 3), dtype=np.uint8)
    array[:, :20] = (255, 0, 0)
    array[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    data = _encode(Image.fromarray(array), "JPEG", exif=exif.tobytes(), quality=95)
    out = _pixels(decode_image(data, "rot"))
    assert out.shape == (40, 20, 3)  # portrait now
    top, bottom = out[5, 10].astype(int), out[34, 10].astype(int)
    assert top[0] > 200 and top[2] < 60  # the left (red) edge turned to the top
    assert bottom[2] > 200 and bottom[0] < 60


def test_result_is_detached_from_the_file(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (3, 3), (1, 2, 3)).save(path)
    image = decode_image(path, "x")
    path.unlink()
    assert image.getpixel((2, 2)) == (1, 2, 3)


@pytest.mark.parametrize("as_bytes", [False, True])
def test_empty_input_is_reported_as_empty(tmp_path, as_bytes):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageDecodeError) as info:
        decode_image(b"" if as_bytes else path, "empty.jpg")
    assert info.value.item_id == "empty.jpg"
    assert info.value.reason == "empty file"


def test_text_file_named_jpg_is_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n")
    with pytest.raises(ImageDecodeError) as info:
        decode_image(path, "notes.jpg")
    assert "not an image" in info.value.reason
    assert str(info.value).startswith("notes.jpg: ")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file_fails_at_decode_time(fmt):
    data = _encode(_noise_rgb(), fmt)
    with pytest.raises(ImageDecodeError) as info:
        decode_image(data[: len(data) // 2], "cut")
    assert "truncated" in info.value.reason


def test_corrupted_png_payload_is_a_decode_error():
    data = bytearray(_encode(_noise_rgb(), "PNG"))
    start = data.index(b"IDAT") + 20
    data[start : start + 200] = bytes(200)
    with pytest.raises(ImageDecodeError):
        decode_image(bytes(data), "bad")


def test_missing_file_and_directory_are_decode_errors(tmp_path):
    with pytest.raises(ImageDecodeError, match="not found"):
        decode_image(tmp_path / "nope.png", "nope.png")
    with pytest.raises(ImageDecodeError, match="directory"):
        decode_image(tmp_path, "dir")


def test_pixel_limit_refuses_large_images_with_count():
    data = _encode(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ImageDecodeError) as info:
        decode_image(data, "big", max_pixels=5000)
    assert "decompression bomb" in info.value.reason
    assert "10000" in info.value.reason and "5000" in info.value.reason
    assert decode_image(data, "big", max_pixels=10000).size == (100, 100)


def test_pil_hard_bomb_error_becomes_decode_error(monkeypatch):
    data = _encode(Image.new("RGB", (100, 100)), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageDecodeError) as info:
        decode_image(data, "big", max_pixels=None)
    assert "decompression bomb" in info.value.reason
    assert "10000" in info.value.reason


def test_pil_bomb_warning_is_not_emitted_when_our_limit_allows(monkeypatch):
    data = _encode(Image.new("RGB", (100, 100)), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 6000)  # warns between 6000 and 12000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decode_image(data, "big", max_pixels=20_000).size == (100, 100)


def test_rejects_unsupported_argument_type():
    with pytest.raises(TypeError):
        decode_image(123, "x")  # type: ignore[arg-type]
