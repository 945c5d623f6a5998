"""The keep decision of SB and Random: one Bernoulli draw per example, precomputed in blocks.

SB keeps an example with probability P = max(p_min, F ** beta), F its percentile in the loss
window: kept when U < P for its own uniform U. For beta > 0 that is the same event as
U < p_min or F > U ** (1 / beta), so each draw becomes a threshold on F, computed for a whole
block of uniforms at once; beta = 0 gives P = 0 ** 0 = 1 (keep everything). Random keeps with
P = max(p_min, V ** beta), V a second uniform, so its decisions need no loss at all and are
precomputed outright.

Why blocks: right after a forward pass each distinct library call costs 5-20 us on this 2-core
CPU (cold caches; 1-2 us in a tight loop), and SB makes one selection per forward batch. A
forward batch then costs one comparison against precomputed thresholds (inside the compiled
kernel on the CPU) instead of a power, a clip, a random draw and a comparison.

The formulas use only operators NumPy and torch both define (`**`, `.clip`, `<`, `-`); the
tests check them on both.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

# Draws per block: 16,384 decisions (64 KiB of uniforms) serve ~128 forward batches of 128.
DRAW_BLOCK = 16384
ALWAYS = -1.0  # a threshold below every percentile (F >= 0): kept whatever the loss
NEVER = 2.0    # a threshold above every percentile (F <= 1): dropped whatever the loss


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


def random_keep_thresholds(uniforms, second_uniforms, beta: float, p_min: float = 0.0):
    """Random's decisions as thresholds: ALWAYS where kept, NEVER where dropped."""
    return NEVER + (ALWAYS - NEVER) * random_keeps(uniforms, second_uniforms, beta, p_min)


def kept_positions(keep: torch.Tensor) -> torch.Tensor:
    """The positions of the kept examples, in order, on the mask's device (one host
    synchronisation on CUDA: the number kept)."""
    return keep.nonzero().squeeze(1)


class DrawStream:
    """Per-example draws made from one seeded generator, `block_size` at a time.

    `per_block` turns `uniforms_per_draw` tensors of uniforms (each `block_size` long) into one
    tensor of draws (thresholds). Every uniform comes from the method's own generator, in order,
    so the seed fixes every decision. Blocks are computed with torch operators whatever the
    backend, so both backends see bit-identical draws; `as_numpy` hands them out as float32
    NumPy arrays (for the compiled CPU kernels: thresholds lie in [-2, -1] or [0, 1], where
    float32 decides exactly as float64 against a percentile).
    """

    def __init__(self, generator: torch.Generator, device: torch.device | str,
                 per_block: Callable, uniforms_per_draw: int = 1,
                 block_size: int = DRAW_BLOCK, as_numpy: bool = False):
        if block_size < 1:
            raise ValueError(f"block_size={block_size}; allowed: an integer >= 1")
        if as_numpy and torch.device(device).type != "cpu":
            raise ValueError(f"as_numpy=True with device={device}; allowed: the CPU only")
        self.generator = generator
        self.device = torch.device(device)
        self.per_block = per_block
        self.uniforms_per_draw = uniforms_per_draw
        self.block_size = block_size
        self.as_numpy = as_numpy
        self._block = self._draw(0)
        self._next = 0

    def _draw(self, n: int):
        uniforms = torch.rand(n * self.uniforms_per_draw, generator=self.generator,
                              device=self.device)
        block = self.per_block(*(uniforms[i * n:(i + 1) * n]
                                 for i in range(self.uniforms_per_draw)))
        return block.float().numpy() if self.as_numpy else block

    def take(self, n: int):
        """The next n draws. Always whole blocks of `block_size`, in order: a take of n hands
        out the same draws as any sequence of smaller takes adding up to n."""
        end = self._next + n
        if end > len(self._block):
            pieces = [self._block[self._next:]]
            available = len(pieces[0])
            while available < n:
                pieces.append(self._draw(self.block_size))
                available += self.block_size
            self._block = np.concatenate(pieces) if self.as_numpy else torch.cat(pieces)
            self._next, end = 0, n
        draws = self._block[self._next:end]
        self._next = end
        return draws
