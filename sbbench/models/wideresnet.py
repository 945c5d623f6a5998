"""WideResNet (Zagoruyko & Komodakis 2016), pre-activation blocks, as used on CIFAR and SVHN.

WRN-28-10 (dropout 0.3) on CIFAR, WRN-16-8 (dropout 0.4) on SVHN, as in the SB paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class WideBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, dropout: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.dropout = dropout
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv1(pre)
        out = F.relu(self.bn2(out))
        if self.dropout:
            out = F.dropout(out, p=self.dropout, training=self.training)
        out = self.conv2(out)
        # The projection shortcut takes the pre-activated input (original WRN code).
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(nn.Module):
    def __init__(self, depth: int, widen: int, num_classes: int, dropout: float):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth={depth}; allowed: 6n+4")
        blocks_per_group = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.stem = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        layers, in_planes = [], widths[0]
        for group, stride in zip(range(1, 4), (1, 2, 2)):
            for index in range(blocks_per_group):
                layers.append(WideBlock(in_planes, widths[group], stride if index == 0 else 1,
                                        dropout))
                in_planes = widths[group]
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(in_planes)
        self.head = nn.Linear(in_planes, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.layers(self.stem(x))))
        return self.head(F.adaptive_avg_pool2d(out, 1).flatten(1))
