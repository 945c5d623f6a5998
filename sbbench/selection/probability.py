"""Backprop probabilities: pure functions, easy to test in isolation."""

from __future__ import annotations

import torch


def sb_probability(fraction_below: torch.Tensor, beta: float, p_min: float = 0.0) -> torch.Tensor:
    """Selective-Backprop: P = max(p_min, percentile ** beta)."""
    return torch.clamp(fraction_below.pow(beta), min=p_min)


def random_probability(n: int, beta: float, p_min: float, generator: torch.Generator,
                       device: torch.device) -> torch.Tensor:
    """Random control: P = max(p_min, U ** beta), U ~ Uniform(0, 1) independent of the loss.

    Same distribution of P (hence the same expected keep rate 1/(beta+1)) as SB on a
    stationary loss stream, but blind to which examples are hard.
    """
    uniform = torch.rand(n, generator=generator, device=device)
    return torch.clamp(uniform.pow(beta), min=p_min)


def bernoulli_keep(probability: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One seeded Bernoulli draw per example: True = backprop it."""
    draws = torch.rand(probability.shape, generator=generator, device=probability.device)
    return draws < probability
