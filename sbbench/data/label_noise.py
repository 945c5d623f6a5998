"""Label noise: permute the labels of a seeded random subset among themselves.

The label histogram is preserved exactly; about 1/C of the chosen examples keep their true label.
"""

from __future__ import annotations

import math

import torch


def split_label_noise(labels: torch.Tensor, fraction: float,
                      generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(noisy labels, sorted ids of the examples whose labels were permuted)."""
    if not 0.0 <= fraction < 1.0 or math.isnan(fraction):
        raise ValueError(f"label_noise={fraction!r}; allowed: a number >= 0 and < 1")
    n = labels.shape[0]
    count = math.floor(fraction * n)
    if count == 0:
        return labels.clone(), torch.empty(0, dtype=torch.int64)
    chosen = torch.randperm(n, generator=generator)[:count]
    permuted = chosen[torch.randperm(count, generator=generator)]
    noisy = labels.clone()
    noisy[chosen] = labels[permuted]
    return noisy, torch.sort(chosen).values
