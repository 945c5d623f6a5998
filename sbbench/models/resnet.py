"""ResNet-18, CIFAR variant (He et al. 2016, as in the common CIFAR implementations).

For 32x32 inputs the ImageNet stem (7x7 stride-2 conv + max-pool) is replaced by one 3x3
stride-1 conv, so the four stages run at 32, 16, 8 and 4 pixels. 11,173,962 parameters for 10
classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

RESNET18_WIDTH = 64                       # channels of the stem and first stage
# (channel multiplier of the stem width, stride of the stage's first block); 2 blocks per stage
RESNET18_STAGES = ((1, 1), (2, 2), (4, 2), (8, 2))
BLOCKS_PER_STAGE = 2


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers; a 1x1 conv-BN projection when the shape changes."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, num_classes: int, width: int = RESNET18_WIDTH):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        blocks: list[nn.Module] = []
        in_planes = width
        for multiplier, stride in RESNET18_STAGES:
            planes = width * multiplier
            for index in range(BLOCKS_PER_STAGE):
                blocks.append(BasicBlock(in_planes, planes, stride if index == 0 else 1))
                in_planes = planes
        self.stages = nn.Sequential(*blocks)
        self.head = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stages(self.stem(x))
        return self.head(F.adaptive_avg_pool2d(out, 1).flatten(1))
