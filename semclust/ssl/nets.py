"""Networks for the semi-supervised engine.

Two backbones share one interface:

* ``forward(x)`` returns logits ``[B, num_classes]``;
* ``forward_features(x)`` returns ``{"taps": [...], "feature_map": h, "features": f, "logits": z}``
  where the taps are globally average pooled intermediate features, ``feature_map`` the last
  feature map ``[B, D, H, W]`` and ``features = GAP(feature_map)`` the vector fed to
  ``self.classifier`` (an ``nn.Linear``), ``logits`` its output;
* attributes ``feature_dim``, ``num_classes`` and ``tap_dims``.

``SmallCNN`` is a fast CPU network for 28-32 px images; ``WideResNet`` is WRN-28-2 as used
by FixMatch / USB (LeakyReLU 0.1, BatchNorm momentum 0.001 in PyTorch convention, eps 1e-3 on
the final BN and a biased first conv as in USB's ``wrn.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SmallCNN", "WideResNet", "build_network", "NETWORKS"]


def _gap(h: torch.Tensor) -> torch.Tensor:
    return h.mean(dim=(2, 3))


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU-maxpool blocks (width, 2 width, 4 width channels), GAP, linear.

    Taps are the pooled outputs of the three blocks (dims ``width, 2 width, 4 width``);
    ``features`` is the last tap.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, width: int = 32):
        super().__init__()
        if num_classes < 1 or in_channels < 1 or width < 1:
            raise ValueError("num_classes, in_channels and width must be positive")
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        chans = [width, 2 * width, 4 * width]
        blocks = []
        c_in = in_channels
        for c in chans:
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c, kernel_size=3, padding=1, bias=False),
                    nn.BatchNorm2d(c),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(2),
                )
            )
            c_in = c
        self.blocks = nn.ModuleList(blocks)
        self.tap_dims = list(chans)
        self.feature_dim = chans[-1]
        self.classifier = nn.Linear(self.feature_dim, self.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> dict:
        taps = []
        h = x
        for block in self.blocks:
            h = block(h)
            taps.append(_gap(h))
        features = taps[-1]
        return {"taps": taps, "feature_map": h, "features": features, "logits": self.classifier(features)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)["logits"]


class _Unit(nn.Module):
    """Pre-activation residual unit of the FixMatch WRN (TensorFlow reference semantics).

    ``pre = LReLU(BN(x))`` always feeds the first conv; the shortcut takes ``pre`` when
    ``activate_before_residual`` (first unit of the first stage) and the raw ``x`` otherwise,
    through a 1x1 conv when the shape changes.
    """

    def __init__(self, c_in, c_out, stride, bn_momentum, slope, dropout, activate_before_residual):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in, momentum=bn_momentum)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out, momentum=bn_momentum)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.shortcut = (
            None if (c_in == c_out and stride == 1) else nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
        )
        self.slope = slope
        self.dropout = dropout
        self.activate_before_residual = activate_before_residual

    def preact(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.bn1(x), self.slope)

    def forward(self, x: torch.Tensor, pre: torch.Tensor | None = None) -> torch.Tensor:
        if pre is None:
            pre = self.preact(x)
        out = F.leaky_relu(self.bn2(self.conv1(pre)), self.slope)
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        out = self.conv2(out)
        skip = pre if self.activate_before_residual else x
        if self.shortcut is not None:
            skip = self.shortcut(skip)
        return skip + out


class WideResNet(nn.Module):
    """WRN-depth-widen_factor (default WRN-28-2, 1.47M parameters for 10 classes).

    Taps ``v1..v4 = GAP(LReLU(BN(stage output)))`` of conv1 and the three stages
    (dims 16, 16 k, 32 k, 64 k). By default the BN applied to a stage output is the first BN of
    the next stage (or the final BN), exactly as in the forward pass, so taps cost only the
    pooling, and ``features`` = v4. :meth:`enable_own_tap_bns` gives the taps their own BNs
    instead, as Meta-Expert's ``wrn_28_2_metaexpert`` does (bn1-bn4, eps 1e-3, momentum 0.001;
    the classifier path keeps the final BN, its bn5).
    """

    def __init__(
        self,
        num_classes: int,
        depth: int = 28,
        widen_factor: int = 2,
        in_channels: int = 3,
        bn_momentum: float = 0.001,
        leaky_slope: float = 0.1,
        dropout: float = 0.0,
    ):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        chans = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.slope = leaky_slope
        self.conv1 = nn.Conv2d(in_channels, chans[0], 3, stride=1, padding=1, bias=True)
        stages = []
        for s in range(3):
            units = []
            for i in range(n):
                units.append(
                    _Unit(
                        chans[s] if i == 0 else chans[s + 1],
                        chans[s + 1],
                        stride=(1 if s == 0 else 2) if i == 0 else 1,
                        bn_momentum=bn_momentum,
                        slope=leaky_slope,
                        dropout=dropout,
                        activate_before_residual=(s == 0 and i == 0),
                    )
                )
            stages.append(nn.ModuleList(units))
        self.stages = nn.ModuleList(stages)
        self.bn_final = nn.BatchNorm2d(chans[3], momentum=bn_momentum, eps=1e-3)
        self.bn_momentum = bn_momentum
        self.tap_bns: nn.ModuleList | None = None
        self.tap_dims = list(chans)
        self.feature_dim = chans[3]
        self.classifier = nn.Linear(self.feature_dim, self.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def enable_own_tap_bns(self) -> None:
        """Give the four taps their own BatchNorm2d (eps 1e-3), as Meta-Expert's WRN does."""
        if self.tap_bns is None:
            device = self.bn_final.weight.device
            self.tap_bns = nn.ModuleList(
                [nn.BatchNorm2d(d, momentum=self.bn_momentum, eps=1e-3) for d in self.tap_dims]
            ).to(device)

    def _tap(self, i: int, h: torch.Tensor, shared_pre: torch.Tensor) -> torch.Tensor:
        if self.tap_bns is None:
            return _gap(shared_pre)
        return _gap(F.leaky_relu(self.tap_bns[i](h), self.slope))

    def forward_features(self, x: torch.Tensor) -> dict:
        h = self.conv1(x)
        taps = []
        for i, stage in enumerate(cast(Iterable[nn.ModuleList], self.stages)):
            first = cast(_Unit, stage[0])
            pre = first.preact(h)
            taps.append(self._tap(i, h, pre))
            h = first(h, pre)
            for unit in stage[1:]:
                h = unit(h)
        pre = F.leaky_relu(self.bn_final(h), self.slope)
        features = _gap(pre)
        taps.append(self._tap(3, h, pre))
        return {"taps": taps, "feature_map": pre, "features": features, "logits": self.classifier(features)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)["logits"]


NETWORKS = {
    "cnn": lambda num_classes, in_channels: SmallCNN(num_classes, in_channels=in_channels),
    "wrn-28-2": lambda num_classes, in_channels: WideResNet(
        num_classes, depth=28, widen_factor=2, in_channels=in_channels
    ),
}


def build_network(name: str, num_classes: int, in_channels: int) -> nn.Module:
    """Build a registered network by name ("cnn", "wrn-28-2")."""
    try:
        factory = NETWORKS[name]
    except KeyError:
        raise ValueError(f"unknown network {name!r}; choose one of {sorted(NETWORKS)}") from None
    return factory(num_classes, in_channels)
