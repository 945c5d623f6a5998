"""MobileNetV2 (Sandler et al. 2018), CIFAR variant.

As in the common CIFAR implementations, the stem conv and the second stage use stride 1 instead
of 2, so a 32x32 input reaches the last stages at 4x4 instead of 1x1. Blocks otherwise follow
the paper (no expansion conv when the expansion factor is 1, linear bottleneck, residual only
when shapes match): 2,236,682 parameters for 10 classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STEM_CHANNELS = 32
LAST_CHANNELS = 1280
# (expansion factor, output channels, blocks, stride of the first block); the paper's table 2
# with the second row's stride 2 -> 1 for 32x32 inputs.
CIFAR_STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))


def conv_bn_relu6(in_planes: int, out_planes: int, kernel: int, stride: int = 1,
                  groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(in_planes, out_planes, kernel, stride, kernel // 2, groups=groups,
                      bias=False),
            nn.BatchNorm2d(out_planes), nn.ReLU6(inplace=True)]


class InvertedResidual(nn.Module):
    """1x1 expand, 3x3 depthwise, 1x1 linear projection (no activation after it)."""

    def __init__(self, in_planes: int, out_planes: int, expansion: int, stride: int):
        super().__init__()
        hidden = in_planes * expansion
        self.use_residual = stride == 1 and in_planes == out_planes
        layers = conv_bn_relu6(in_planes, hidden, 1) if expansion != 1 else []
        layers += conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden)
        layers += [nn.Conv2d(hidden, out_planes, 1, bias=False), nn.BatchNorm2d(out_planes)]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn_relu6(3, STEM_CHANNELS, 3, stride=1))
        blocks: list[nn.Module] = []
        in_planes = STEM_CHANNELS
        for expansion, out_planes, count, stride in CIFAR_STAGES:
            for index in range(count):
                blocks.append(InvertedResidual(in_planes, out_planes, expansion,
                                               stride if index == 0 else 1))
                in_planes = out_planes
        self.stages = nn.Sequential(*blocks)
        self.last = nn.Sequential(*conv_bn_relu6(in_planes, LAST_CHANNELS, 1))
        self.head = nn.Linear(LAST_CHANNELS, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.last(self.stages(self.stem(x)))
        return self.head(F.adaptive_avg_pool2d(out, 1).flatten(1))
