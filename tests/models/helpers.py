"""Shared helpers for the model tests."""

from __future__ import annotations

import torch

from sbbench.models import IMAGE_SHAPE, MODELS, build_model

MNIST1D_SHAPE = (1, 40)
# Not 10: a head hard-wired to 10 classes would still pass with 10.
ODD_NUM_CLASSES = 7


def input_shape_for(name: str) -> tuple[int, ...]:
    return MNIST1D_SHAPE if "1d" in MODELS[name].input_kinds else IMAGE_SHAPE


def seeded_build(name: str, seed: int = 0, num_classes: int = ODD_NUM_CLASSES,
                 **options) -> torch.nn.Module:
    """build_model under torch.manual_seed(seed), without leaking the seed to other tests."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(name, num_classes, input_shape_for(name), **options)


def random_batch(name: str, size: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(size, *input_shape_for(name), generator=generator)
