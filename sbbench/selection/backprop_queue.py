"""Queue of selected examples that emits backward batches of exactly `batch_size` examples."""

from __future__ import annotations

import torch

from sbbench.selection.types import BackwardBatch


class BackpropQueue:
    def __init__(self, batch_size: int):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}; allowed: an integer >= 1")
        self.batch_size = batch_size
        self._chunks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def push(self, ids: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> list[BackwardBatch]:
        """Add selected examples; return every full backward batch now available (FIFO)."""
        n = int(ids.shape[0])
        if n:
            self._chunks.append((ids, x, y))
            self._count += n
        batches = []
        while self._count >= self.batch_size:
            ids_all, x_all, y_all = self._concatenated()
            b = self.batch_size
            batches.append(BackwardBatch(ids_all[:b], x_all[:b], y_all[:b]))
            self._chunks = [(ids_all[b:], x_all[b:], y_all[b:])] if self._count > b else []
            self._count -= b
        return batches

    def flush(self) -> BackwardBatch | None:
        """Emit whatever is queued as one smaller final batch (None when empty)."""
        if not self._count:
            return None
        ids, x, y = self._concatenated()
        self._chunks, self._count = [], 0
        return BackwardBatch(ids, x, y)

    def _concatenated(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if len(self._chunks) == 1:
            return self._chunks[0]
        ids, xs, ys = zip(*self._chunks)
        merged = (torch.cat(ids), torch.cat(xs), torch.cat(ys))
        self._chunks = [merged]
        return merged
