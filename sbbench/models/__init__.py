"""Registry of models. Each returns raw logits (N, num_classes). Torch only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from sbbench.models.fastnet import FastNet
from sbbench.models.mnist1d_nets import ConvNet1d, Mlp1d
from sbbench.models.mobilenet import MobileNetV2
from sbbench.models.resnet import ResNet18
from sbbench.models.wideresnet import WideResNet

IMAGE_DATASETS = ("cifar10", "cifar100", "svhn")


@dataclass(frozen=True)
class ModelSpec:
    # builder(num_classes, input_shape, dropout, width) -> module
    builder: Callable[[int, tuple[int, ...], float | None, int | None], torch.nn.Module]
    datasets: tuple[str, ...]
    description: str


def _cnn1d(num_classes, shape, dropout, width):
    return ConvNet1d(shape[0], num_classes, **({"width": width} if width else {}))


def _mlp1d(num_classes, shape, dropout, width):
    in_features = 1
    for size in shape:
        in_features *= size
    return Mlp1d(in_features, num_classes, **({"width": width} if width else {}))


def _wrn(depth: int, default_widen: int, default_dropout: float):
    def build(num_classes, shape, dropout, width):
        return WideResNet(depth, width or default_widen, num_classes,
                          default_dropout if dropout is None else dropout)
    return build


MODELS: dict[str, ModelSpec] = {
    "cnn1d": ModelSpec(_cnn1d, ("mnist1d",), "1-D CNN, 3 conv-BN-ReLU layers of 64 channels"),
    "mlp1d": ModelSpec(_mlp1d, ("mnist1d",), "MLP, 2 hidden layers of 256 with BatchNorm"),
    "resnet18": ModelSpec(lambda c, s, d, w: ResNet18(c, w or 64), IMAGE_DATASETS,
                          "ResNet-18, CIFAR variant (11.2M parameters)"),
    "wrn28_10": ModelSpec(_wrn(28, 10, 0.3), IMAGE_DATASETS, "WideResNet-28-10, dropout 0.3"),
    "wrn16_8": ModelSpec(_wrn(16, 8, 0.4), IMAGE_DATASETS, "WideResNet-16-8, dropout 0.4"),
    "mobilenetv2": ModelSpec(lambda c, s, d, w: MobileNetV2(c), IMAGE_DATASETS,
                             "MobileNetV2, CIFAR variant"),
    "fastnet": ModelSpec(lambda c, s, d, w: FastNet(c, w or 64), IMAGE_DATASETS,
                         "small fast ResNet-9-style CIFAR net"),
}

DEFAULT_MODEL_FOR_DATASET = {"mnist1d": "cnn1d", "cifar10": "resnet18", "cifar100": "resnet18",
                             "svhn": "wrn16_8"}


def build_model(name: str, num_classes: int, input_shape: tuple[int, ...], *,
                dropout: float | None = None, width: int | None = None) -> torch.nn.Module:
    if name not in MODELS:
        raise ValueError(f"model={name!r}; allowed: {', '.join(sorted(MODELS))}")
    expects_image = name not in ("cnn1d", "mlp1d")
    if expects_image != (len(input_shape) == 3):
        raise ValueError(f"model={name!r} does not fit input shape {tuple(input_shape)}; "
                         f"allowed datasets: {', '.join(MODELS[name].datasets)}")
    return MODELS[name].builder(num_classes, tuple(input_shape), dropout, width)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["MODELS", "DEFAULT_MODEL_FOR_DATASET", "ModelSpec", "build_model", "count_parameters"]
