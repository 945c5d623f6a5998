"""MobileNetV2 (Sandler et al. 2018), CIFAR variant: stride-1 stem and first stride-2 stage
set to stride 1, so 32x32 inputs are not downsampled to 1x1 too early."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# (expansion, out channels, blocks, stride), with the CIFAR change in the second row.
CIFAR_STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))


class InvertedResidual(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, expansion: int, stride: int):
        super().__init__()
        hidden = in_planes * expansion
        self.use_residual = stride == 1 and in_planes == out_planes
        self.block = nn.Sequential(
            nn.Conv2d(in_planes, hidden, 1, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, out_planes, 1, bias=False), nn.BatchNorm2d(out_planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32),
                                  nn.ReLU6(inplace=True))
        layers, in_planes = [], 32
        for expansion, out_planes, blocks, stride in CIFAR_STAGES:
            for index in range(blocks):
                layers.append(InvertedResidual(in_planes, out_planes, expansion,
                                               stride if index == 0 else 1))
                in_planes = out_planes
        self.layers = nn.Sequential(*layers)
        self.last = nn.Sequential(nn.Conv2d(in_planes, 1280, 1, bias=False),
                                  nn.BatchNorm2d(1280), nn.ReLU6(inplace=True))
        self.head = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.last(self.layers(self.stem(x)))
        return self.head(F.adaptive_avg_pool2d(out, 1).flatten(1))
