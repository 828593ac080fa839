"""HFClipEncoder on tiny random-weight CLIP / SigLIP / SigLIP 2 models built offline."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
from semclust.encoders.clip import HFClipEncoder  # noqa: E402 - after the importorskip guards

TEXTS = ["a photo of a cat", "a dog", "", "A much longer caption that runs past the limit " * 4]
MAX_LEN = 16


@dataclass
class Tiny:
    kind: str
    path: Path
    model: Any
    tokenizer: Any
    processor: Any
    padding: bool | str
    dim: int


def _byte_level_clip_tokenizer() -> Any:
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    # Every byte as a word piece and a word end: any text tokenizes without merges.
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    alphabet = sorted(ByteLevel.alphabet())
    for suffix in ("", "</w>"):
        for ch in alphabet:
            vocab[ch + suffix] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=MAX_LEN)


def _byte_fallback_siglip2_tokenizer() -> Any:
    from transformers import Siglip2Tokenizer

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for ch in "abcdefghijklmnopqrstuvwxyz▁":
        vocab[ch] = len(vocab)
    return Siglip2Tokenizer(vocab=vocab, merges=[], model_max_length=MAX_LEN)


def _tower_configs(vocab_size: int, *, bos: int, eos: int, pad: int) -> tuple[dict, dict]:
    text = {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": MAX_LEN,
        "bos_token_id": bos,
        "eos_token_id": eos,
        "pad_token_id": pad,
    }
    vision = {
        "image_size": 32,
        "patch_size": 8,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    }
    return text, vision


def _build(kind: str, root: Path) -> Tiny:
    from transformers import (
        CLIPConfig,
        CLIPImageProcessorPil,
        CLIPModel,
        Siglip2Config,
        Siglip2ImageProcessorPil,
        Siglip2Model,
        SiglipConfig,
        SiglipImageProcessorPil,
        SiglipModel,
    )

    torch.manual_seed(0)
    if kind == "clip":
        tokenizer = _byte_level_clip_tokenizer()
        text, vision = _tower_configs(len(tokenizer), bos=0, eos=1, pad=1)
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))
        processor = CLIPImageProcessorPil(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        )
        padding: bool | str = True
        dim = 16
    elif kind == "siglip":
        tokenizer = _byte_level_clip_tokenizer()
        text, vision = _tower_configs(len(tokenizer), bos=0, eos=1, pad=1)
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
        processor = SiglipImageProcessorPil(size={"height": 32, "width": 32})
        padding, dim = "max_length", 32
    elif kind == "siglip2":
        tokenizer = _byte_fallback_siglip2_tokenizer()
        text, vision = _tower_configs(len(tokenizer), bos=2, eos=1, pad=0)
        del vision["image_size"]
        vision["num_patches"] = 16
        model = Siglip2Model(Siglip2Config(text_config=text, vision_config=vision))
        processor = Siglip2ImageProcessorPil(patch_size=8, max_num_patches=16)
        padding, dim = "max_length", 32
    else:
        raise AssertionError(kind)
    model.eval()
    path = root / kind
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    processor.save_pretrained(path)
    return Tiny(kind, path, model, tokenizer, processor, padding, dim)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Tiny]:
    root = tmp_path_factory.mktemp("tiny_clip")
    return {kind: _build(kind, root) for kind in ("clip", "siglip", "siglip2")}


@pytest.fixture(scope="module", params=["clip", "siglip", "siglip2"])
def tiny(request: pytest.FixtureRequest, tiny_models: dict[str, Tiny]) -> Tiny:
    return tiny_models[request.param]


@pytest.fixture(scope="module")
def encoder(tiny: Tiny) -> HFClipEncoder:
    return HFClipEncoder(str(tiny.path), batch_size=64)


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    out = []
    for i, (h, w) in enumerate([(32, 32), (40, 56), (64, 24), (33, 33), (50, 50)]):
        arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        im = Image.fromarray(arr)
        out.append(im.convert("L") if i == 3 else im)  # one grey image: must be made RGB
    return out


def _pooled(output: Any) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _normalise(x: torch.Tensor) -> np.ndarray:
    x = x.float().numpy()
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _assert_unit_rows(x: np.ndarray) -> None:
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def test_shapes_dtype_and_unit_norm(tiny: Tiny, encoder: HFClipEncoder, images: list) -> None:
    views = encoder.image_views(images)
    assert set(views) == {"joint"}
    img = views["joint"]
    txt = encoder.encode_texts(TEXTS)
    assert encoder.dim == tiny.dim
    assert img.shape == (len(images), tiny.dim) and img.dtype == np.float32
    assert txt.shape == (len(TEXTS), tiny.dim) and txt.dtype == np.float32
    _assert_unit_rows(img)
    _assert_unit_rows(txt)
    np.testing.assert_array_equal(encoder.encode_images(images), img)


def test_deterministic(encoder: HFClipEncoder, images: list) -> None:
    np.testing.assert_array_equal(
        encoder.image_views(images)["joint"], encoder.image_views(images)["joint"]
    )
    np.testing.assert_array_equal(encoder.encode_texts(TEXTS), encoder.encode_texts(TEXTS))


def test_batch_size_does_not_change_results(
    tiny: Tiny, encoder: HFClipEncoder, images: list
) -> None:
    small = HFClipEncoder(str(tiny.path), batch_size=2)
    np.testing.assert_allclose(
        small.encode_images(images), encoder.encode_images(images), atol=1e-5
    )
    np.testing.assert_allclose(small.encode_texts(TEXTS), encoder.encode_texts(TEXTS), atol=1e-5)


def test_matches_raw_model(tiny: Tiny, encoder: HFClipEncoder, images: list) -> None:
    rgb = [im.convert("RGB") for im in images]
    tokens = tiny.tokenizer(
        TEXTS, padding=tiny.padding, truncation=True, max_length=MAX_LEN, return_tensors="pt"
    )
    with torch.no_grad():
        pixels = tiny.processor(images=rgb, return_tensors="pt")
        ref_img = _normalise(_pooled(tiny.model.get_image_features(**pixels)))
        ref_txt = _normalise(_pooled(tiny.model.get_text_features(**tokens)))
    np.testing.assert_allclose(encoder.encode_images(images), ref_img, atol=1e-5)
    np.testing.assert_allclose(encoder.encode_texts(TEXTS), ref_txt, atol=1e-5)


def test_single_items_match_batch(encoder: HFClipEncoder, images: list) -> None:
    batch = encoder.encode_texts(TEXTS)
    one_by_one = np.concatenate([encoder.encode_texts([t]) for t in TEXTS])
    np.testing.assert_allclose(one_by_one, batch, atol=1e-5)
    first = encoder.encode_images(images[:1])
    np.testing.assert_allclose(first, encoder.encode_images(images)[:1], atol=1e-5)


def test_empty_inputs(encoder: HFClipEncoder) -> None:
    assert encoder.encode_texts([]).shape == (0, encoder.dim)
    assert encoder.image_views([])["joint"].shape == (0, encoder.dim)
    with pytest.raises(TypeError):
        encoder.encode_texts("a cat")


def test_config_is_json_and_describes_model(tiny: Tiny, encoder: HFClipEncoder) -> None:
    cfg = json.loads(json.dumps(encoder.config()))
    assert cfg["name"] == f"clip:{tiny.path}" == encoder.name
    assert cfg["model"] == str(tiny.path)
    assert cfg["model_type"] == tiny.kind
    assert cfg["dim"] == tiny.dim
    assert cfg["versions"]["transformers"] == transformers.__version__
    pre = cfg["preprocessing"]
    np.testing.assert_allclose(pre["image_mean"], tiny.processor.image_mean)
    np.testing.assert_allclose(pre["image_std"], tiny.processor.image_std)
    assert pre["text"]["padding"] == tiny.padding
    assert pre["text"]["max_length"] == MAX_LEN
    if tiny.kind != "siglip2":
        assert pre["image_size"] == 32


def test_bfloat16_close_to_float32(tiny_models: dict[str, Tiny], images: list) -> None:
    path = str(tiny_models["clip"].path)
    full = HFClipEncoder(path)
    half = HFClipEncoder(path, dtype="bfloat16")
    assert half.config()["options"] == {"dtype": "bfloat16"}
    out = half.encode_images(images)
    assert out.dtype == np.float32
    _assert_unit_rows(out)
    np.testing.assert_allclose(out, full.encode_images(images), atol=0.05)


def test_registry_builds_clip_encoder(tiny_models: dict[str, Tiny]) -> None:
    registry = pytest.importorskip("semclust.encoders.registry")
    enc = registry.get_encoder(f"clip:{tiny_models['clip'].path}", batch_size=3)
    assert isinstance(enc, HFClipEncoder) and enc.batch_size == 3


def test_missing_directory_is_a_clear_value_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ValueError, match="no-such-model") as info:
        HFClipEncoder(str(missing))
    assert "local directory" in str(info.value)


def test_directory_without_model_is_a_clear_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="save_pretrained"):
        HFClipEncoder(str(tmp_path))


def test_uncached_hub_name_offline_is_a_clear_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    hub_constants = pytest.importorskip("huggingface_hub.constants")
    # Never touch the network from tests, even where it is reachable.
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    name = "semclust-tests/definitely-not-a-cached-model"
    with pytest.raises(ValueError, match=name) as info:
        HFClipEncoder(name)
    assert "offline use needs a local directory" in str(info.value)


def test_works_inside_callers_inference_mode(encoder: HFClipEncoder, images: list) -> None:
    expected = encoder.encode_texts(TEXTS)
    with torch.inference_mode():
        np.testing.assert_array_equal(encoder.encode_texts(TEXTS), expected)
        assert encoder.encode_images(images).shape == (len(images), encoder.dim)
