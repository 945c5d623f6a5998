"""Batches by indexing device-resident tensors: no DataLoader, no worker processes."""

from __future__ import annotations

from typing import Iterator

import torch

from sbbench.data.splits import DatasetSplits


# Batches gathered per index_select: 16 x 128 MNIST-1D examples is 320 KiB, 16 x 128 CIFAR
# images 6 MiB (uint8: 1.5 MiB); memory stays bounded whatever the dataset size.
GATHER_CHUNK_BATCHES = 16


class TrainBatcher:
    """Epoch-wise shuffled (ids, x, y) batches; x is prepared and augmented on the device."""

    def __init__(self, splits: DatasetSplits, batch_size: int, generator: torch.Generator,
                 drop_last: bool = False, augment_generator: torch.Generator | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}; allowed: an integer >= 1")
        self.splits = splits
        self.batch_size = batch_size
        self.generator = generator  # the data order
        # Augmentation draws (default: the order's generator; runs pass their own stream).
        self.augment_generator = augment_generator if augment_generator is not None else generator
        self.drop_last = drop_last

    def __len__(self) -> int:
        n = self.splits.num_train
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def sample_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch shaped, typed and laid out like `epoch_batches`' (the first examples; a
        throwaway generator for augmentation): for warm-ups, without touching the data order."""
        splits = self.splits
        ids = torch.arange(min(self.batch_size, splits.num_train), device=splits.train_x.device)
        throwaway = torch.Generator(device=self.generator.device).manual_seed(0)
        x = self._ready(splits.train_x.index_select(0, ids), throwaway)
        return ids, x, splits.train_y.index_select(0, ids)

    def epoch_order(self) -> torch.Tensor:
        """The next epoch's candidate order (on the data's device): a fresh permutation, cut to
        whole batches under drop_last. Draws from the batcher's generator."""
        splits = self.splits
        order = torch.randperm(splits.num_train, generator=self.generator,
                               device=self.generator.device).to(splits.train_x.device)
        return order[:len(self) * self.batch_size]  # drop_last: no partial batch at the end

    def epoch_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        return self.batches(self.epoch_order())

    def batches(self, order: torch.Tensor,
                batch_size: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor,
                                                                 torch.Tensor]]:
        """(ids, x, y) for consecutive batches of `order` (of `batch_size`, default the
        batcher's), x prepared and augmented."""
        splits = self.splits
        b = batch_size or self.batch_size
        # One gather per chunk of batches, cut into views: per batch, no library call at all
        # (each one costs 5-20 us right after a forward pass on a small CPU). index_select:
        # about half the cost of advanced indexing (x[ids]) on the CPU.
        for chunk in order.split(b * GATHER_CHUNK_BATCHES):
            xs = splits.train_x.index_select(0, chunk).split(b)
            ys = splits.train_y.index_select(0, chunk).split(b)
            for ids, x, y in zip(chunk.split(b), xs, ys):
                yield ids, self._ready(x, self.augment_generator), y

    def _ready(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Prepared (e.g. uint8 -> normalised float) and augmented, on the data's device."""
        splits = self.splits
        if splits.prepare is not None:
            x = splits.prepare(x)
        if splits.augmenter is not None:
            x = splits.augmenter(x, generator)
        return x


def eval_batches(x: torch.Tensor, y: torch.Tensor,
                 batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, x.shape[0], batch_size):
        yield x[start:start + batch_size], y[start:start + batch_size]
