"""A small fast CIFAR net: the ResNet-9 of the DAWNBench / "How to train your ResNet" line
(D. Page, 2018), the ancestor of airbench.

conv-BN-ReLU blocks with max-pooling (32 -> 16 -> 8 -> 4 pixels), a residual block after the
first and the last pooling stage, global max-pool, a bias-free linear head, and logits scaled by
1/8. With its own recipe (one-cycle SGD, label smoothing, flip + crop + cutout) this network
reached 94% on CIFAR-10 in 24 epochs; 6,573,120 parameters for 10 classes at width 64.
"""

from __future__ import annotations

import torch
from torch import nn

FASTNET_WIDTH = 64          # channels of the first conv; the stages use 2x, 4x and 8x this
# Page's fixed output scale: smaller initial logits keep the early, high-learning-rate steps
# stable without a learning-rate warm-up on the head.
FASTNET_LOGIT_SCALE = 0.125


def conv_bn(in_planes: int, planes: int, pool: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_planes, planes, 3, 1, 1, bias=False),
                               nn.BatchNorm2d(planes), nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    def __init__(self, planes: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(planes, planes), conv_bn(planes, planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class FastNet(nn.Module):
    def __init__(self, num_classes: int, width: int = FASTNET_WIDTH):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(3, width),
            conv_bn(width, 2 * width, pool=True), Residual(2 * width),
            conv_bn(2 * width, 4 * width, pool=True),
            conv_bn(4 * width, 8 * width, pool=True), Residual(8 * width),
            nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.head = nn.Linear(8 * width, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)) * FASTNET_LOGIT_SCALE
