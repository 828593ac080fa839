"""A :class:`~semclust.methods.spec.FeatureSet` over a feature store: its views, plus lazy
access to the encoder's text tower, the noun vocabulary, the classifier's probabilities and
the source's pixels, each loaded only when a method asks for it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from semclust.cache import default_cache_dir
from semclust.data.base import ImageSource
from semclust.encoders.base import Encoder
from semclust.encoders.registry import encoder_from_config
from semclust.methods.spec import FeatureSet
from semclust.store.feature_store import FeatureStore

ProgressFactory = Callable[[str, int], Callable[[int], None]]


def feature_set_from_store(
    store: FeatureStore,
    *,
    device: str = "cpu",
    vocabulary: str | None = None,
    noun_templates: str | Sequence[str] = "single",
    progress: ProgressFactory | None = None,
    source: ImageSource | None = None,
    threads: int | None = None,
    timings: dict[str, float] | None = None,
) -> FeatureSet:
    """The views of a store, plus lazy access to its encoder's text tower and noun vocabulary.

    With ``source`` (the source the store was built from), ``images`` lazily returns its uint8
    images aligned with the store's ids (folders resized to 32 px), for methods such as asd.

    ``vocabulary`` is a file with one noun per line, ``wordnet-all`` (every WordNet noun
    synset) or ``wordnet-concrete`` (the default: artifacts, animals, plants, foods, natural
    objects, body parts, substances, people). Their text embeddings are cached under
    ``$SEMCLUST_CACHE/texts`` per encoder and templates. The time
    they took goes into ``timings["nouns"]`` when a ``timings`` dict is given.
    """
    lazy: dict[str, Any] = {}

    def encoder() -> Encoder:
        # The text tower loads only when a method needs it (zero-shot, naming, TAC, LAIC).
        if "encoder" not in lazy:
            lazy["encoder"] = encoder_from_config(store.encoder_config, device=device, threads=threads)
        return lazy["encoder"]

    def encode_texts(texts: Sequence[str]) -> np.ndarray:
        return encoder().encode_texts(list(texts))

    def vocab() -> Any:
        if "vocab" not in lazy:
            from semclust.vocab.nouns import load_vocabulary

            lazy["vocab"] = load_vocabulary(vocabulary)
        return lazy["vocab"]

    def noun_synset_ids() -> list[str]:
        return list(vocab().synset_ids)

    def class_probabilities() -> np.ndarray:
        if "probabilities" not in lazy:
            from semclust.naming.evidence import class_probabilities as from_visual
            from semclust.naming.evidence import classifier_head, softmax_logits

            if "logits" in store.views:
                lazy["probabilities"] = softmax_logits(store.load("logits"))
            else:
                head = classifier_head(encoder())
                assert head is not None
                lazy["probabilities"] = from_visual(store.load("visual"), *head)
        return lazy["probabilities"]

    # Only the offline encoder's visual view ends in an ImageNet classifier (synsets = classes).
    has_classifier = store.encoder_config.get("name") == "offline" and "visual" in store.views

    def nouns() -> tuple[list[str], np.ndarray]:
        if "nouns" not in lazy:
            from semclust.encoders.text_cache import embed_texts_cached
            from semclust.vocab.templates import get_templates

            started = time.perf_counter()
            vocab_ = vocab()
            on_progress = progress("embedding noun vocabulary", len(set(vocab_.names))) if progress else None
            embeddings = embed_texts_cached(
                encoder(),
                vocab_.names,
                get_templates(noun_templates),
                default_cache_dir() / "texts",
                progress=on_progress,
            )
            lazy["nouns"] = (list(vocab_.names), embeddings)
            if timings is not None:
                timings["nouns"] = time.perf_counter() - started
        return lazy["nouns"]

    def images() -> tuple[np.ndarray, list[str]]:
        if "images" not in lazy:
            from semclust.data.pixels import source_images

            lazy["images"] = source_images(source, store.ids)
        return lazy["images"]

    return FeatureSet(
        joint=store.load("joint"),
        visual=store.load("visual") if "visual" in store.views else None,
        labels=store.labels,
        class_names=store.class_names,
        encode_texts=encode_texts,
        nouns=nouns,
        encoder=encoder,
        progress=progress,
        images=images if source is not None else None,
        noun_synset_ids=noun_synset_ids,
        class_probabilities=class_probabilities if has_classifier else None,
    )
