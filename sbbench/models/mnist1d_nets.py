"""Models for MNIST-1D (input (1, 40)). Both normalise: an un-normalised CNN diverged under
Selective-Backprop in a prototype (batches of only the highest-loss examples give larger
gradients), so normalisation is part of the stable default."""

from __future__ import annotations

import torch
from torch import nn

CNN1D_CHANNELS = 64
CNN1D_KERNEL = 5
MLP1D_HIDDEN = 256


class ConvNet1d(nn.Module):
    """Three conv-BN-ReLU layers, global average pooling, linear head."""

    def __init__(self, in_channels: int, num_classes: int, width: int = CNN1D_CHANNELS):
        super().__init__()
        layers, channels = [], in_channels
        for stride in (1, 2, 2):
            layers += [nn.Conv1d(channels, width, CNN1D_KERNEL, stride=stride,
                                 padding=CNN1D_KERNEL // 2, bias=False),
                       nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=2))


class Mlp1d(nn.Module):
    def __init__(self, in_features: int, num_classes: int, width: int = MLP1D_HIDDEN):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
            nn.Linear(width, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
            nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
