"""Queue of selected examples that emits backward batches of exactly `batch_size` examples.

`BackpropQueue` holds device tensors (any device); `CpuBackpropQueue` holds NumPy rows that
SB's fused CPU step fills in place.
"""

from __future__ import annotations

import numpy as np
import torch

from sbbench.selection import cpu_kernels
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


class CpuBackpropQueue:
    """The same FIFO queue in preallocated NumPy rows, filled and emptied by compiled kernels
    (`cpu_kernels`). SB's fused CPU step appends its kept examples to these rows directly, so a
    forward batch costs no gathers and no concatenation; a backward batch is copied out once.
    """

    def __init__(self, batch_size: int):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}; allowed: an integer >= 1")
        self.batch_size = batch_size
        self.state = np.zeros(1, dtype=np.int64)  # [count]
        self.ids = self.x = self.y = None         # allocated for the first examples pushed

    def __len__(self) -> int:
        return int(self.state[cpu_kernels.COUNT])

    def reserve(self, ids: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
        """Make room for len(ids) more rows shaped like these (queued rows are kept)."""
        count, needed = len(self), len(self) + ids.shape[0]
        if self.x is not None and (self.x.shape[1:], self.x.dtype, self.y.dtype) != \
                (x.shape[1:], x.dtype, y.dtype):
            if count:
                raise ValueError(f"queue holds examples of shape {self.x.shape[1:]} "
                                 f"({self.x.dtype}); got {x.shape[1:]} ({x.dtype})")
            self.ids = self.x = self.y = None
        if self.x is not None and self.x.shape[0] >= needed:
            return
        rows = max(needed, 2 * self.batch_size)
        grown = (np.empty(rows, dtype=np.int64), np.empty((rows, *x.shape[1:]), dtype=x.dtype),
                 np.empty(rows, dtype=y.dtype))
        if count:
            for new, old in zip(grown, (self.ids, self.x, self.y)):
                new[:count] = old[:count]
        self.ids, self.x, self.y = grown

    def push(self, ids: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> list[BackwardBatch]:
        """Add examples; return every full backward batch now available (FIFO)."""
        n = int(ids.shape[0])
        if n == self.batch_size and not len(self):
            return [BackwardBatch(ids, x, y)]  # exactly one batch: no copy
        ids_np, x_np, y_np = ids.numpy(), x.numpy(), y.numpy()
        self.reserve(ids_np, x_np, y_np)
        count = cpu_kernels.queue_append(self.ids, self.x, self.y, self.state, ids_np, x_np, y_np)
        return self.pop_full(count)

    def pop_full(self, count: int) -> list[BackwardBatch]:
        """Every full backward batch among the `count` queued rows."""
        batches = []
        while count >= self.batch_size:
            batches.append(self._pop(self.batch_size))
            count -= self.batch_size
        return batches

    def flush(self) -> BackwardBatch | None:
        """Emit whatever is queued as one smaller final batch (None when empty)."""
        return self._pop(len(self)) if len(self) else None

    def _pop(self, n: int) -> BackwardBatch:
        ids, x, y = cpu_kernels.queue_pop_front(self.ids, self.x, self.y, self.state, n)
        return BackwardBatch(torch.from_numpy(ids), torch.from_numpy(x), torch.from_numpy(y))
