"""The model registry: every network the harness can train, by name. Torch only.

Every model maps a batch (N, *input_shape) to raw logits (N, num_classes). Model init draws from
torch's global RNG: seed it (torch.manual_seed) before build_model for a reproducible init.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from sbbench.models.fastnet import FastNet
from sbbench.models.mnist1d_nets import ConvNet1d, Mlp1d
from sbbench.models.mobilenet import MobileNetV2
from sbbench.models.resnet import ResNet18
from sbbench.models.wideresnet import WideResNet

# Input kinds: "1d" is a (channels, length) sequence, "image" a 3-channel 32x32 image.
IMAGE_SHAPE = (3, 32, 32)
DATASETS_BY_INPUT_KIND = {"1d": ("mnist1d",), "image": ("cifar10", "cifar100", "svhn")}


@dataclass(frozen=True)
class ModelSpec:
    # builder(num_classes, input_shape, **options) -> module; build_model passes only the
    # options named in `options` ("dropout", "width") and only when they are not None.
    builder: Callable[..., torch.nn.Module]
    input_kinds: tuple[str, ...]
    description: str
    options: tuple[str, ...] = ()

    @property
    def datasets(self) -> tuple[str, ...]:
        """The datasets whose inputs this model takes (config validation checks against it)."""
        return tuple(name for kind in self.input_kinds for name in DATASETS_BY_INPUT_KIND[kind])


def input_kind_of(input_shape: tuple[int, ...]) -> str | None:
    """ "1d" for (C, L), "image" for (3, 32, 32), None for anything else."""
    if len(input_shape) == 2 and all(size >= 1 for size in input_shape):
        return "1d"
    if tuple(input_shape) == IMAGE_SHAPE:
        return "image"
    return None


def _cnn1d(num_classes: int, input_shape: tuple[int, ...], **options) -> torch.nn.Module:
    return ConvNet1d(input_shape[0], num_classes, **options)


def _mlp1d(num_classes: int, input_shape: tuple[int, ...], **options) -> torch.nn.Module:
    channels, length = input_shape
    return Mlp1d(channels * length, num_classes, **options)


def _resnet18(num_classes: int, input_shape: tuple[int, ...], **options) -> torch.nn.Module:
    return ResNet18(num_classes, **options)


def _wideresnet(depth: int, default_widen: int, default_dropout: float):
    def build(num_classes: int, input_shape: tuple[int, ...], *, dropout: float | None = None,
              width: int | None = None) -> torch.nn.Module:
        return WideResNet(depth, default_widen if width is None else width, num_classes,
                          default_dropout if dropout is None else dropout)
    return build


def _mobilenetv2(num_classes: int, input_shape: tuple[int, ...]) -> torch.nn.Module:
    return MobileNetV2(num_classes)


def _fastnet(num_classes: int, input_shape: tuple[int, ...], **options) -> torch.nn.Module:
    return FastNet(num_classes, **options)


MODELS: dict[str, ModelSpec] = {
    "cnn1d": ModelSpec(_cnn1d, ("1d",), "1-D CNN: 3 conv(k=5)-BN-ReLU layers of 64 channels "
                       "(width), global average pool, linear", ("width",)),
    "mlp1d": ModelSpec(_mlp1d, ("1d",), "MLP: 2 hidden Linear-BN-ReLU layers of 256 (width)",
                       ("width",)),
    "resnet18": ModelSpec(_resnet18, ("image",), "ResNet-18, CIFAR variant (3x3 stride-1 stem, "
                          "no max-pool), 11.2M parameters; width = stem channels (64)",
                          ("width",)),
    "wrn28_10": ModelSpec(_wideresnet(28, 10, 0.3), ("image",), "WideResNet-28-10, dropout 0.3, "
                          "36.5M parameters; width = widen factor", ("dropout", "width")),
    "wrn16_8": ModelSpec(_wideresnet(16, 8, 0.4), ("image",), "WideResNet-16-8, dropout 0.4, "
                         "11.0M parameters; width = widen factor", ("dropout", "width")),
    "mobilenetv2": ModelSpec(_mobilenetv2, ("image",), "MobileNetV2, CIFAR variant (stride-1 "
                             "stem and second stage), 2.2M parameters"),
    "fastnet": ModelSpec(_fastnet, ("image",), "ResNet-9 (DAWNBench) style fast CIFAR net, 6.6M "
                         "parameters; width = first conv channels (64)", ("width",)),
}

DEFAULT_MODEL_FOR_DATASET = {"mnist1d": "cnn1d", "cifar10": "resnet18", "cifar100": "resnet18",
                             "svhn": "wrn16_8"}


def build_model(name: str, num_classes: int, input_shape: tuple[int, ...], *,
                dropout: float | None = None, width: int | None = None) -> torch.nn.Module:
    """A freshly initialised model; None options take the model's default.

    Raises ValueError for an unknown name, an input shape the model does not take, an option the
    model does not have, or an out-of-range value.
    """
    if name not in MODELS:
        raise ValueError(f"model {name!r} unknown; allowed: {', '.join(sorted(MODELS))}")
    spec = MODELS[name]
    input_shape = tuple(int(size) for size in input_shape)
    kind = input_kind_of(input_shape)
    if kind not in spec.input_kinds:
        raise ValueError(f"model {name!r} takes {_describe_kinds(spec.input_kinds)}; "
                         f"got input_shape {input_shape}")
    if num_classes < 1:
        raise ValueError(f"num_classes={num_classes}; allowed: >= 1")
    options = {key: value for key, value in (("dropout", dropout), ("width", width))
               if value is not None}
    unsupported = sorted(set(options) - set(spec.options))
    if unsupported:
        raise ValueError(f"model {name!r} has no {' or '.join(unsupported)} option; it takes: "
                         f"{', '.join(spec.options) or 'none'}")
    if dropout is not None and not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout={dropout}; allowed: 0 <= dropout < 1")
    if width is not None and width < 1:
        raise ValueError(f"width={width}; allowed: >= 1")
    return spec.builder(num_classes, input_shape, **options)


def _describe_kinds(kinds: tuple[str, ...]) -> str:
    shapes = {"1d": "1d inputs of shape (channels, length)",
              "image": f"image inputs of shape {IMAGE_SHAPE}"}
    return " or ".join(shapes[kind] for kind in kinds)


def count_parameters(model: torch.nn.Module) -> int:
    """All parameters, trainable or not (the published counts include BatchNorm affine)."""
    return sum(parameter.numel() for parameter in model.parameters())


__all__ = ["DATASETS_BY_INPUT_KIND", "DEFAULT_MODEL_FOR_DATASET", "IMAGE_SHAPE", "MODELS",
           "ModelSpec", "build_model", "count_parameters", "input_kind_of"]
