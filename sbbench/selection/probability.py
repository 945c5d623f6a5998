"""The keep decision of SB and Random: one Bernoulli draw per example, precomputed in blocks.

SB keeps an example with probability P = max(p_min, F ** beta), F its percentile in the loss
window: kept when U < P for its own uniform U. For beta > 0 that is the same event as
U < p_min or F > U ** (1 / beta), so each draw becomes a threshold on F, computed for a whole
block of uniforms at once; beta = 0 gives P = 0 ** 0 = 1 (keep everything). Random keeps with
P = max(p_min, V ** beta), V a second uniform, so its decisions need no loss at all and are
precomputed outright.

Why blocks: right after a forward pass each distinct library call costs 5-20 us on this 2-core
CPU (cold caches; 1-2 us in a tight loop), and SB makes one selection per forward batch. A
forward batch now costs one comparison and one nonzero instead of a power, a clip, a random
draw, a comparison and a nonzero (docs/performance.md).

Everything works on NumPy arrays (the CPU path) and torch tensors (the device path) alike,
using only operators both define (`**`, `.clip`, `<`, `-`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

# Draws per block: 16,384 decisions (64 KiB of uniforms) serve ~128 forward batches of 128.
DRAW_BLOCK = 16384
ALWAYS = -1.0  # a threshold below every percentile (F >= 0): kept whatever the loss


def sb_keep_thresholds(uniforms, beta: float, p_min: float = 0.0):
    """Per draw, the percentile an example must exceed to be kept: F > t <=> U < max(p_min,
    F ** beta)."""
    if beta == 0:
        return uniforms * 0.0 + ALWAYS
    thresholds = uniforms ** (1.0 / beta)
    if p_min > 0:
        # U < p_min keeps whatever F is: push those thresholds below 0 (t - 2 <= -1).
        thresholds = thresholds - 2.0 * (uniforms < p_min)
    return thresholds


def random_keeps(uniforms, second_uniforms, beta: float, p_min: float = 0.0):
    """Random control: kept when U < max(p_min, V ** beta), with V independent of the loss.

    Same distribution of P (hence the same expected keep rate 1/(beta+1)) as SB on a stationary
    loss stream, but blind to which examples are hard.
    """
    probability = second_uniforms ** beta
    if p_min > 0:
        probability = probability.clip(min=p_min)
    return uniforms < probability


def kept_positions(keep) -> torch.Tensor:
    """The positions of the kept examples, in order. A NumPy mask gives CPU positions; a tensor
    mask stays on its device, at one host synchronisation on CUDA (the number kept)."""
    if isinstance(keep, np.ndarray):
        return torch.from_numpy(np.flatnonzero(keep))
    return keep.nonzero().squeeze(1)


class DrawStream:
    """Per-example draws made from one seeded generator, `block_size` at a time.

    `per_block` turns `uniforms_per_draw` arrays of uniforms (each `block_size` long) into one
    array of draws (thresholds, or keep decisions). Every uniform comes from the method's own
    generator, in order, so the seed fixes every decision; NumPy arrays on the CPU, tensors on
    other devices.
    """

    def __init__(self, generator: torch.Generator, device: torch.device | str,
                 per_block: Callable, uniforms_per_draw: int = 1,
                 block_size: int = DRAW_BLOCK):
        if block_size < 1:
            raise ValueError(f"block_size={block_size}; allowed: an integer >= 1")
        self.generator = generator
        self.device = torch.device(device)
        self.per_block = per_block
        self.uniforms_per_draw = uniforms_per_draw
        self.block_size = block_size
        self._on_cpu = self.device.type == "cpu"
        self._block = self._draw(0)
        self._next = 0

    def _draw(self, n: int):
        uniforms = torch.rand(n * self.uniforms_per_draw, generator=self.generator,
                              device=self.device)
        if self._on_cpu:
            uniforms = uniforms.numpy()
        return self.per_block(*(uniforms[i * n:(i + 1) * n]
                                for i in range(self.uniforms_per_draw)))

    def take(self, n: int):
        """The next n draws."""
        end = self._next + n
        if end > len(self._block):
            leftover = self._block[self._next:]
            fresh = self._draw(max(self.block_size, n - len(leftover)))
            self._block = (np.concatenate((leftover, fresh)) if self._on_cpu
                           else torch.cat((leftover, fresh)))
            self._next, end = 0, n
        draws = self._block[self._next:end]
        self._next = end
        return draws
