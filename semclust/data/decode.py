"""Turn whatever an image file holds into the 8-bit RGB picture every encoder expects.

Every failure becomes :class:`ImageDecodeError` with a short reason a person can act on, so
a run can record the item as skipped and carry on instead of dying on one bad file.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from semclust.data.base import ImageDecodeError

# PIL's own default, so behaviour matches what users of PIL already expect.
DEFAULT_MAX_PIXELS = 89_478_485

# Silencing PIL's bomb warning means touching the process-wide warning filters; the lock keeps
# our own concurrent decoders from restoring each other's filter lists out of order.
_OPEN_LOCK = threading.Lock()

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def decode_image(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview,
    item_id: str,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Decode ``source`` (a path or the file's bytes) to a fully loaded RGB image.

    ``max_pixels`` refuses images larger than that many pixels before their pixel data is
    decoded; ``None`` disables our check (PIL's own hard limit, twice
    ``Image.MAX_IMAGE_PIXELS``, still applies unless the caller raises that global).
    """
    stream = _open_stream(source, item_id)
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            # Our own limit below decides; PIL's warning would only duplicate it as noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                image = Image.open(stream)
            except Image.DecompressionBombError as exc:
                raise ImageDecodeError(item_id, f"decompression bomb: {exc}") from None
            except UnidentifiedImageError:
                raise ImageDecodeError(item_id, "not an image / unidentified format") from None
            except Exception as exc:  # noqa: BLE001 - any plugin failure is a bad file
                raise ImageDecodeError(item_id, _reason(exc)) from None
        with image:
            width, height = image.size
            if max_pixels is not None and width * height > max_pixels:
                raise ImageDecodeError(
                    item_id,
                    f"decompression bomb: {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}",
                )
            if width == 0 or height == 0:
                raise ImageDecodeError(item_id, f"image has no pixels ({width}x{height})")
            try:
                if getattr(image, "n_frames", 1) > 1:
                    image.seek(0)  # animations: the first frame stands for the file
                # Image.open only reads the header; decoding everything now is what makes a
                # truncated file fail here rather than later inside an encoder batch.
                image.load()
                return _to_rgb(_apply_orientation(image))
            except ImageDecodeError:
                raise
            except Image.DecompressionBombError as exc:
                raise ImageDecodeError(item_id, f"decompression bomb: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file
                raise ImageDecodeError(item_id, _reason(exc)) from None
    finally:
        stream.close()


def _open_stream(source: object, item_id: str) -> BinaryIO:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise ImageDecodeError(item_id, "empty file")
        return io.BytesIO(data)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"decode_image expects a path or bytes, got {type(source).__name__}")
    path = Path(source)
    try:
        if path.is_dir():
            raise ImageDecodeError(item_id, "is a directory, not a file")
        handle = open(path, "rb")  # noqa: SIM115 - closed by decode_image
    except FileNotFoundError:
        raise ImageDecodeError(item_id, "file not found (missing or broken link)") from None
    except PermissionError:
        raise ImageDecodeError(item_id, "permission denied") from None
    except OSError as exc:
        raise ImageDecodeError(item_id, f"cannot read file: {exc.strerror or exc}") from None
    try:
        empty = os.fstat(handle.fileno()).st_size == 0
    except OSError:
        empty = False
    if empty:
        handle.close()
        raise ImageDecodeError(item_id, "empty file")
    return handle


def _apply_orientation(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001
        # A mangled EXIF block should not cost us an otherwise good picture.
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        return _gray_array_to_rgb(np.asarray(image).astype(np.float64) / 257.0)
    if mode == "I":
        values = np.asarray(image).astype(np.float64)
        # PIL hands 16-bit PNG/TIFF grayscale over as "I"; only rescale further when the data
        # clearly does not fit a 16-bit container.
        if values.size and (values.min() < 0 or values.max() > 65535):
            return _gray_array_to_rgb(_stretch(values))
        return _gray_array_to_rgb(values / 257.0)
    if mode == "F":
        values = np.asarray(image).astype(np.float64)
        if values.size and values.min() >= 0 and values.max() <= 1:
            return _gray_array_to_rgb(values * 255.0)
        return _gray_array_to_rgb(_stretch(values))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _stretch(values: np.ndarray) -> np.ndarray:
    finite = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(finite.min()), float(finite.max())
    if high <= low:
        return np.zeros_like(finite)
    return (finite - low) * (255.0 / (high - low))


def _gray_array_to_rgb(values: np.ndarray) -> Image.Image:
    gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return Image.fromarray(np.repeat(gray[:, :, None], 3, axis=2), mode="RGB")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    lowered = text.lower()
    if "truncated" in lowered or isinstance(exc, EOFError):
        return "truncated file" + (f" ({text})" if text else "")
    if isinstance(exc, MemoryError):
        return "out of memory while decoding"
    detail = text if len(text) <= 160 else text[:157] + "..."
    return f"corrupt or unsupported image data ({type(exc).__name__}: {detail})"
