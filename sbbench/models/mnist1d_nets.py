"""Small networks for MNIST-1D (input (C, L) = (1, 40)).

Both normalise every hidden layer with BatchNorm: an un-normalised CNN diverged under
Selective-Backprop in a prototype (batches made only of the highest-loss examples give larger,
more correlated gradients), so normalisation is part of the stable default, not an option.
"""

from __future__ import annotations

import torch
from torch import nn

CNN1D_CHANNELS = 64
CNN1D_KERNEL = 5                      # samples; padding 2 keeps the length at stride 1
# The first layer keeps full resolution; the next two halve it (40 -> 20 -> 10 samples): a
# training step costs about 2/3 of an all-stride-1 stack's on CPU, and the net still reaches
# 1-3% MNIST-1D test error within 10 epochs of SGD (lr 0.05-0.1, momentum 0.9, batch 128).
CNN1D_STRIDES = (1, 2, 2)
MLP1D_HIDDEN = 256


class ConvNet1d(nn.Module):
    """Three conv-BN-ReLU layers, global average pooling over length, linear head.

    Global average pooling keeps the head independent of the sequence length L.
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = CNN1D_CHANNELS):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for stride in CNN1D_STRIDES:
            # No conv bias: the following BatchNorm's shift makes it redundant.
            layers += [nn.Conv1d(channels, width, CNN1D_KERNEL, stride=stride,
                                 padding=CNN1D_KERNEL // 2, bias=False),
                       nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=2))


class Mlp1d(nn.Module):
    """Flatten, two hidden Linear-BN-ReLU layers, linear head."""

    def __init__(self, in_features: int, num_classes: int, width: int = MLP1D_HIDDEN):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
            nn.Linear(width, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
            nn.Linear(width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
