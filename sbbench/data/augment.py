"""Device-side, batch-vectorised image augmentation driven by a seeded torch.Generator.

The paper's recipes: CIFAR random crop (4-pixel zero padding) + horizontal flip + Cutout
(16 px CIFAR-10, 8 px CIFAR-100); SVHN Cutout 20 only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Augmenter:
    crop_padding_px: int = 0
    flip: bool = False
    cutout_px: int = 0

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.crop_padding_px:
            images = random_crop(images, self.crop_padding_px, generator)
        if self.flip:
            images = random_flip(images, generator)
        if self.cutout_px:
            images = cutout(images, self.cutout_px, generator)
        return images


def _randint(high: int, n: int, generator: torch.Generator, device) -> torch.Tensor:
    return torch.randint(0, high, (n,), generator=generator, device=device)


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    n, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    dy = _randint(2 * padding + 1, n, generator, images.device)
    dx = _randint(2 * padding + 1, n, generator, images.device)
    rows = (dy[:, None] + torch.arange(height, device=images.device)[None, :])  # n, H
    cols = (dx[:, None] + torch.arange(width, device=images.device)[None, :])   # n, W
    batch = torch.arange(n, device=images.device)[:, None, None]
    # Gather per-example windows: index (n, H, W) -> (n, H, W, C) then back to NCHW.
    windows = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return windows.permute(0, 3, 1, 2).contiguous()


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = torch.rand(images.shape[0], generator=generator, device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def cutout(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero a size x size square centred uniformly in the image (clipped at the borders)."""
    n, _, height, width = images.shape
    cy = _randint(height, n, generator, images.device)
    cx = _randint(width, n, generator, images.device)
    ys = torch.arange(height, device=images.device)[None, :]
    xs = torch.arange(width, device=images.device)[None, :]
    inside_y = (ys >= (cy - size // 2)[:, None]) & (ys < (cy - size // 2 + size)[:, None])
    inside_x = (xs >= (cx - size // 2)[:, None]) & (xs < (cx - size // 2 + size)[:, None])
    mask = inside_y[:, :, None] & inside_x[:, None, :]
    return images.masked_fill(mask[:, None], 0)
