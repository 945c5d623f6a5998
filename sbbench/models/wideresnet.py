"""WideResNet (Zagoruyko & Komodakis 2016) with pre-activation blocks, as used on CIFAR and SVHN.

The Selective-Backprop paper trains WRN-28-10 (dropout 0.3) on CIFAR-10/100 and WRN-16-8
(dropout 0.4) on SVHN. 36,479,194 and 10,961,370 parameters for 10 classes.
Initialisation follows the reference code: Kaiming-normal convs (fan_out), BatchNorm weight 1
and bias 0, linear bias 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

WRN_BASE_WIDTHS = (16, 32, 64)      # channels per group before multiplying by the widen factor
WRN_STEM_CHANNELS = 16
WRN_GROUP_STRIDES = (1, 2, 2)       # 32 -> 32 -> 16 -> 8 pixels


class WideBlock(nn.Module):
    """BN-ReLU-conv3x3, BN-ReLU-(dropout)-conv3x3, plus the (projected) input."""

    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = F.relu(self.bn2(self.conv1(pre)))
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        out = self.conv2(out)
        # The projection shortcut takes the pre-activated input, as in the reference code.
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(nn.Module):
    def __init__(self, depth: int, widen: int, num_classes: int, dropout: float):
        super().__init__()
        if (depth - 4) % 6 != 0 or depth < 10:
            raise ValueError(f"WideResNet depth={depth}; allowed: 6n+4, n >= 1 (10, 16, 28, ...)")
        blocks_per_group = (depth - 4) // 6
        self.stem = nn.Conv2d(3, WRN_STEM_CHANNELS, 3, 1, 1, bias=False)
        blocks: list[nn.Module] = []
        in_planes = WRN_STEM_CHANNELS
        for base, stride in zip(WRN_BASE_WIDTHS, WRN_GROUP_STRIDES):
            planes = base * widen
            for index in range(blocks_per_group):
                blocks.append(WideBlock(in_planes, planes, stride if index == 0 else 1, dropout))
                in_planes = planes
        self.groups = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(in_planes)   # the last block ends un-normalised (pre-activation)
        self.head = nn.Linear(in_planes, num_classes)
        self._init_like_reference()

    def _init_like_reference(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.groups(self.stem(x))))
        return self.head(F.adaptive_avg_pool2d(out, 1).flatten(1))
