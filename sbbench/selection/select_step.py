"""SB's step after the scores: window update, percentile, keep decision, queue. Two backends.

- `DeviceStep` (torch operators): works on any device without a host synchronisation beyond
  one per forward batch (the number kept, on CUDA).
- `FusedCpuStep` (the default on the CPU): one compiled kernel call per forward batch
  (`cpu_kernels.rank_select_enqueue`) on NumPy views of the same tensors. Right after a forward
  pass each distinct library call costs 5-20 us on a small CPU; the device backend makes about
  fifteen of them (docs/performance.md, step 7).

Both make exactly the same decisions from the same thresholds (tests/selection/
test_select_backends.py checks them batch for batch).
"""

from __future__ import annotations

import numpy as np
import torch

from sbbench.selection import cpu_kernels
from sbbench.selection.backprop_queue import BackpropQueue, CpuBackpropQueue
from sbbench.selection.loss_window import LossWindow, NumpyLossWindow
from sbbench.selection.probability import kept_positions
from sbbench.selection.types import BackwardBatch

BACKENDS = ("auto", "torch")  # auto: compiled kernels on the CPU, torch operators elsewhere


def use_cpu_kernels(device: torch.device | str, backend: str) -> bool:
    if backend not in BACKENDS:
        raise ValueError(f"selection backend={backend!r}; allowed: {', '.join(BACKENDS)}")
    return backend == "auto" and torch.device(device).type == "cpu"


class DeviceStep:
    def __init__(self, history: LossWindow, queue: BackpropQueue):
        self.history, self.queue = history, queue

    def __call__(self, losses: torch.Tensor, thresholds, ids: torch.Tensor, x: torch.Tensor,
                 y: torch.Tensor) -> list[BackwardBatch]:
        # The batch enters the window, then is ranked against it.
        fraction_below = self.history.add_and_rank(losses)
        # One set of kept positions (one host sync on CUDA) shared by the three gathers.
        kept = kept_positions(fraction_below > thresholds)
        return self.queue.push(ids.index_select(0, kept), x.index_select(0, kept),
                               y.index_select(0, kept))

    def plan(self, losses: torch.Tensor, thresholds, forward_batch: int) -> torch.Tensor:
        """Positions kept among losses known in advance, decided forward batch by forward
        batch as `__call__` would (the window is updated the same way); nothing is queued."""
        keep = [self.history.add_and_rank(losses[start:start + forward_batch])
                > thresholds[start:start + forward_batch]
                for start in range(0, int(losses.shape[0]), forward_batch)]
        if not keep:
            return torch.empty(0, dtype=torch.int64, device=losses.device)
        return kept_positions(torch.cat(keep))  # one host sync on CUDA for the whole epoch

    def warm_up(self, ids: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
        """Nothing to compile."""


class FusedCpuStep:
    def __init__(self, history: NumpyLossWindow, queue: CpuBackpropQueue):
        self.history, self.queue = history, queue

    def __call__(self, losses: torch.Tensor, thresholds: np.ndarray, ids: torch.Tensor,
                 x: torch.Tensor, y: torch.Tensor) -> list[BackwardBatch]:
        ids_np, x_np, y_np = ids.numpy(), x.numpy(), y.numpy()
        queue, history = self.queue, self.history
        if queue.x is None:
            queue.reserve(ids_np, x_np, y_np)
        arguments = (history.ring, history.sorted_buffers, history.state, losses.numpy(),
                     thresholds, ids_np, x_np, y_np)
        count = cpu_kernels.rank_select_enqueue(*arguments, queue.ids, queue.x, queue.y,
                                                queue.state)
        if count < 0:  # not enough free rows (checked in the kernel: no Python on this path)
            queue.reserve(ids_np, x_np, y_np)
            count = cpu_kernels.rank_select_enqueue(*arguments, queue.ids, queue.x, queue.y,
                                                    queue.state)
        return queue.pop_full(count) if count >= queue.batch_size else []

    def plan(self, losses: torch.Tensor, thresholds: np.ndarray,
             forward_batch: int) -> torch.Tensor:
        """Positions kept among losses known in advance: one compiled call for all of them,
        deciding forward batch by forward batch as `__call__` would; nothing is queued."""
        kept = np.empty(int(losses.shape[0]), dtype=np.int64)
        history = self.history
        n_kept = cpu_kernels.plan_kept(history.ring, history.sorted_buffers, history.state,
                                       losses.numpy(), thresholds, forward_batch, kept)
        return torch.from_numpy(kept[:n_kept])

    def warm_up(self, ids: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> None:
        """Compile (or load from numba's cache) the kernels for these dtypes and shapes, on a
        throwaway window and queue: outside the training clock, and no state is touched."""
        n = int(ids.shape[0])
        scratch = FusedCpuStep(NumpyLossWindow(max(2, n)), CpuBackpropQueue(max(1, n)))
        losses = torch.zeros(n)
        scratch.plan(losses, np.zeros(n, dtype=np.float32), n)
        scratch(losses, np.full(n, -1.0, dtype=np.float32), ids, x, y)  # keeps all: one batch
        scratch.queue.push(ids, x, y)
        scratch.queue.push(ids[:1], x[:1], y[:1])
        scratch.queue.flush()


def make_step(history: LossWindow, queue) -> DeviceStep | FusedCpuStep:
    if isinstance(history, NumpyLossWindow) and isinstance(queue, CpuBackpropQueue):
        return FusedCpuStep(history, queue)
    return DeviceStep(history, queue)
