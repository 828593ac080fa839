"""CoOp-style prompt learning over a frozen text tower: LAIC's adaptive semantic centers.

LAIC (RESEARCH.md section 1) learns K "continuous semantic centers" in the text space by
prompt learning: learnable context vectors are fed, together with a fixed class-name token
sequence, through the FROZEN text encoder, and the pooled output is the center. The paper
gives neither context length nor initialisation; the choices made here (interpretations):

- class-specific contexts (CoOp's CSC variant), shape ``[K, n_ctx, hidden]``: every center
  gets its own context, so centers can move independently;
- every context starts from the word embeddings of a neutral phrase, ``"a photo of a"`` by
  default (CoOp's own initialisation). When the phrase has more tokens than ``n_ctx`` its last
  ``n_ctx`` tokens are used; when it has fewer, the missing leading vectors are drawn from
  N(0, 0.02^2) (CoOp's random init). ``ctx_init=None`` initialises all of them randomly;
- the sequence is ``[BOS] ctx_k name_tokens_k [EOS]`` (BERT: ``[CLS] ... [SEP]``), padded
  after the EOS; position (and token-type) embeddings are added by the model itself.

With the context equal to the phrase's own embeddings the output is exactly the tower's
embedding of ``"a photo of a <name>"``, so training starts from ordinary text embeddings in
the same space as the tower's (tested).

The text module is deliberately NOT registered as a submodule: ``PromptLearner.parameters()``
and ``state_dict()`` hold only the context vectors, ``.train()`` never switches the frozen
encoder out of eval mode (dropout stays off), and the frozen weights never reach an optimizer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

DEFAULT_CTX_INIT = "a photo of a"
DEFAULT_N_CTX = 4
RANDOM_INIT_STD = 0.02  # CoOp's std for randomly initialised context vectors


class FrozenTextModule:
    """What a prompt learner needs from a text tower (the adapters below provide it).

    ``token_embedding``: the frozen word-embedding table; ``bos_id``/``eos_id``/``pad_id``;
    ``word_ids(text)``: token ids of ``text`` without special tokens; ``max_length``;
    ``encode_embeds(inputs_embeds [B, L, h], attention_mask [B, L], eos_index [B])``: the
    tower's (unnormalised) text embedding ``[B, d]`` of each sequence; ``parameters()``.
    """

    token_embedding: nn.Embedding
    bos_id: int
    eos_id: int
    pad_id: int
    max_length: int

    def word_ids(self, text: str) -> list[int]:  # pragma: no cover - interface
        raise NotImplementedError

    def encode_embeds(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, eos_index: torch.Tensor
    ) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def parameters(self) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def freeze(self) -> None:
        for p in self.parameters():
            p.requires_grad_(False)


class BertMeanPoolTextModule(FrozenTextModule):
    """A BERT-style sentence encoder pooled by the mean over real tokens (MiniLM)."""

    def __init__(self, model: Any, tokenizer: Any, max_length: int = 128) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.token_embedding = model.get_input_embeddings()
        self.bos_id = int(tokenizer.cls_token_id)
        self.eos_id = int(tokenizer.sep_token_id)
        self.pad_id = int(tokenizer.pad_token_id)
        self.max_length = int(max_length)
        self.freeze()

    def word_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def parameters(self) -> Any:
        return self.model.parameters()

    def encode_embeds(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, eos_index: torch.Tensor
    ) -> torch.Tensor:
        """Mean-pooled outputs of the padded sequences, computed on their real tokens only.

        The K sequences are packed into one row without their padding, with block-diagonal
        attention (a token sees its own sequence only) and positions restarting per sequence:
        the same numbers as the padded batch (tested), without the work on padding, which is
        every step's cost in prompt learning (a name of 6 tokens pads 9 others by 5).
        """
        real = attention_mask.bool()
        lengths = real.sum(1)
        segment = torch.repeat_interleave(torch.arange(len(lengths), device=lengths.device), lengths)
        packed = inputs_embeds[real].unsqueeze(0)  # [1, T, h], sequence after sequence
        starts = torch.cumsum(lengths, 0) - lengths
        positions = (torch.arange(packed.shape[1], device=packed.device) - starts[segment]).unsqueeze(0)
        embeddings = self.model.embeddings(
            inputs_embeds=packed, position_ids=positions, token_type_ids=torch.zeros_like(positions)
        )
        same = segment[:, None] == segment[None, :]
        additive = (~same).to(embeddings.dtype)[None, None] * torch.finfo(embeddings.dtype).min
        out = self.model.encoder(embeddings, attention_mask=additive)
        last = (out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0])[0]
        sums = torch.zeros(len(lengths), last.shape[1], dtype=last.dtype, device=last.device)
        sums = sums.index_add(0, segment, last)
        return sums / lengths.unsqueeze(1).to(last.dtype)

    def encode_embeds_padded(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, eos_index: torch.Tensor
    ) -> torch.Tensor:
        """The plain padded forward (the reference :meth:`encode_embeds` is tested against)."""
        hidden = self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)


def minilm_text_module(tower: Any) -> BertMeanPoolTextModule:
    """Adapter for :class:`semclust.encoders.minilm.MiniLMTextTower` (freezes its model)."""
    return BertMeanPoolTextModule(tower.model, tower.tokenizer, max_length=tower.max_length)


class ClipEosTextModule(FrozenTextModule):
    """CLIP's text tower driven by input embeddings: causal encoder, EOS pooling, projection.

    ``transformers``' ``CLIPTextModel.forward`` only takes ``input_ids``, so its steps are
    replayed here from its parts (embeddings with ``inputs_embeds``, causal encoder, final
    layer norm, the hidden state at the EOS position, ``text_projection``). Padding comes after
    the EOS and attention is causal, so the pooled state never sees it.
    """

    def __init__(
        self,
        clip_model: Any,
        tokenize: Callable[[str], list[int]],
        *,
        bos_id: int,
        eos_id: int,
        pad_id: int | None = None,
    ) -> None:
        self.model = clip_model.eval()
        self.text_model = clip_model.text_model
        self.projection = clip_model.text_projection
        self.token_embedding = self.text_model.embeddings.token_embedding
        self._tokenize = tokenize
        self.bos_id, self.eos_id = int(bos_id), int(eos_id)
        self.pad_id = int(eos_id if pad_id is None else pad_id)
        self.max_length = int(self.text_model.embeddings.position_embedding.weight.shape[0])
        self.freeze()

    def word_ids(self, text: str) -> list[int]:
        return list(self._tokenize(text))

    def parameters(self) -> Any:
        return self.model.parameters()

    def encode_embeds(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, eos_index: torch.Tensor
    ) -> torch.Tensor:
        from transformers.masking_utils import create_causal_mask

        tm = self.text_model
        hidden = tm.embeddings(inputs_embeds=inputs_embeds)
        mask = create_causal_mask(config=tm.config, inputs_embeds=hidden, attention_mask=attention_mask, cache=None)
        out = tm.encoder(inputs_embeds=hidden, attention_mask=mask, is_causal=True)
        last = tm.final_layer_norm(out.last_hidden_state)
        pooled = last[torch.arange(last.shape[0], device=last.device), eos_index]
        return self.projection(pooled)


def clip_text_module(encoder: Any) -> ClipEosTextModule:
    """Adapter for a CLIP :class:`semclust.encoders.clip.HFClipEncoder` (not SigLIP)."""
    model = encoder._model
    if getattr(encoder, "model_type", "clip") != "clip":
        raise ValueError(f"prompt learning supports CLIP text towers only, got {encoder.model_type!r}")
    tok = encoder._tokenizer
    return ClipEosTextModule(
        model,
        lambda text: tok(text, add_special_tokens=False)["input_ids"],
        bos_id=tok.bos_token_id,
        eos_id=tok.eos_token_id,
        pad_id=tok.pad_token_id,
    )


def as_text_module(tower: Any) -> FrozenTextModule:
    """A :class:`FrozenTextModule` for a MiniLM tower, a CLIP encoder, or one already built."""
    if isinstance(tower, FrozenTextModule):
        return tower
    if hasattr(tower, "pool") and hasattr(tower, "tokenizer") and hasattr(tower, "model"):
        return minilm_text_module(tower)
    if hasattr(tower, "_model") and hasattr(tower._model, "text_model"):
        return clip_text_module(tower)
    raise TypeError(f"no prompt-learning adapter for a {type(tower).__name__}")


class PromptLearner(nn.Module):
    """K centers ``w_k = normalise(T([BOS] ctx_k name_k [EOS]))`` with learnable ``ctx_k``.

    Only ``self.ctx`` (``[K, n_ctx, hidden]``) is a parameter. ``forward()`` returns the
    L2-normalised centers ``[K, d]`` in the tower's text-embedding space.
    """

    text_module: FrozenTextModule
    prefix_embeds: torch.Tensor
    suffix_embeds: torch.Tensor
    attention_mask: torch.Tensor
    eos_index: torch.Tensor

    def __init__(
        self,
        text_module: FrozenTextModule | Any,
        n_ctx: int = DEFAULT_N_CTX,
        init_names: Sequence[str] = (),
        *,
        ctx_init: str | None = DEFAULT_CTX_INIT,
        random_state: int = 0,
    ) -> None:
        super().__init__()
        module = as_text_module(text_module)
        names = [str(n) for n in init_names]
        if not names:
            raise ValueError("init_names must name at least one center")
        if isinstance(n_ctx, bool) or int(n_ctx) != n_ctx or n_ctx < 1:
            raise ValueError(f"n_ctx must be a positive integer, got {n_ctx!r}")
        n_ctx = int(n_ctx)
        # Kept out of the module tree on purpose (see the module docstring).
        object.__setattr__(self, "text_module", module)
        self.names = names
        self.n_ctx = n_ctx
        emb = module.token_embedding
        weight = emb.weight
        hidden = weight.shape[1]
        k = len(names)

        gen = torch.Generator().manual_seed(int(random_state))
        ctx = torch.randn(n_ctx, hidden, generator=gen) * RANDOM_INIT_STD
        if ctx_init:
            ids = module.word_ids(ctx_init)[-n_ctx:]
            if ids:
                with torch.no_grad():
                    ctx[n_ctx - len(ids) :] = emb(torch.tensor(ids, device=weight.device)).float().cpu()
        self.ctx = nn.Parameter(ctx.to(device=weight.device, dtype=weight.dtype).unsqueeze(0).repeat(k, 1, 1))

        # Fixed suffix per center: name tokens, EOS, then padding up to the longest.
        name_ids = [module.word_ids(n) for n in names]
        longest = max(len(ids) for ids in name_ids) + 1
        total = 1 + n_ctx + longest
        if total > module.max_length:
            raise ValueError(f"prompt of {total} tokens exceeds the tower's max length {module.max_length}")
        suffix = torch.full((k, longest), module.pad_id, dtype=torch.long)
        mask = torch.zeros((k, total), dtype=torch.long)
        eos_index = torch.empty(k, dtype=torch.long)
        for i, ids in enumerate(name_ids):
            suffix[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            suffix[i, len(ids)] = module.eos_id
            mask[i, : 1 + n_ctx + len(ids) + 1] = 1
            eos_index[i] = 1 + n_ctx + len(ids)
        with torch.no_grad():
            prefix = emb(torch.tensor([module.bos_id], device=weight.device)).detach()
            suffix_embeds = emb(suffix.to(weight.device)).detach()
        self.register_buffer("prefix_embeds", prefix, persistent=False)  # [1, h]
        self.register_buffer("suffix_embeds", suffix_embeds, persistent=False)  # [K, S, h]
        self.register_buffer("attention_mask", mask.to(weight.device), persistent=False)
        self.register_buffer("eos_index", eos_index.to(weight.device), persistent=False)

    @property
    def n_centers(self) -> int:
        return int(self.ctx.shape[0])

    def inputs_embeds(self) -> torch.Tensor:
        """``[K, L, hidden]``: BOS, the contexts, then each name's fixed tokens."""
        k = self.n_centers
        prefix = self.prefix_embeds.unsqueeze(0).expand(k, -1, -1)
        return torch.cat([prefix, self.ctx, self.suffix_embeds], dim=1)

    def forward(self) -> torch.Tensor:
        out = self.text_module.encode_embeds(self.inputs_embeds(), self.attention_mask, self.eos_index)
        return torch.nn.functional.normalize(out.float(), dim=-1)
