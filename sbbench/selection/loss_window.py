"""Sliding window of the most recent R losses with O(log R) vectorised percentile look-ups.

Two views of the same R values are kept: a ring buffer in arrival order (to know which values
leave the window) and a sorted copy (to rank new losses with `torch.searchsorted`). Updating the
sorted copy is a vectorised merge, O(R + m log R) per batch of m losses, with no host-device
synchronisation and no Python loop over the window.

On the CPU the same merge runs in compiled kernels on NumPy arrays (`cpu_kernels`): a torch
operator costs a few microseconds of dispatch, and SB's bookkeeping is a dozen tiny operators
per batch, which made it 3% of a training step with torch ops (docs/performance.md).
"""

from __future__ import annotations

import numpy as np
import torch

from sbbench.selection import cpu_kernels


class LossWindow:
    def __new__(cls, capacity: int, device: torch.device | str = "cpu", backend: str = "auto"):
        if cls is LossWindow:
            use_numpy = backend == "numpy" or (backend == "auto" and
                                                torch.device(device).type == "cpu")
            cls = NumpyLossWindow if use_numpy else TorchLossWindow
        return super().__new__(cls)

    def __init__(self, capacity: int, device: torch.device | str = "cpu", backend: str = "auto"):
        if capacity < 1:
            raise ValueError(f"history_size={capacity}; allowed: an integer >= 1")
        self.capacity = capacity
        self.device = torch.device(device)
        self._size = 0  # values currently held (host int: sizes never need a device sync)
        self._next = 0  # ring position of the next write

    def __len__(self) -> int:
        return self._size


class TorchLossWindow(LossWindow):
    """Device tensors throughout: no host-device synchronisation on CUDA."""

    def __init__(self, capacity: int, device: torch.device | str = "cpu", backend: str = "auto"):
        super().__init__(capacity, device)
        self._ring = torch.empty(capacity, dtype=torch.float32, device=self.device)
        self._sorted = torch.empty(0, dtype=torch.float32, device=self.device)

    def sorted_values(self) -> torch.Tensor:
        return self._sorted

    def add(self, losses: torch.Tensor) -> None:
        """Append a batch of losses, evicting the oldest ones beyond the capacity."""
        # NaN would break the sorted order; rank it as the largest loss instead. The training step
        # itself detects non-finite losses and fails the run.
        new = torch.nan_to_num(losses.detach().reshape(-1).float(), nan=float("inf"))
        if new.numel() >= self.capacity:
            new = new[-self.capacity:]
            self._ring.copy_(new)
            self._sorted = torch.sort(new).values
            self._size, self._next = self.capacity, 0
            return
        m = new.numel()
        if m == 0:
            return
        positions = (self._next + torch.arange(m, device=self.device)) % self.capacity
        n_evict = max(0, self._size + m - self.capacity)
        remaining = self._sorted
        if n_evict:
            # Free slots come first from `_next`, then the writes wrap onto the oldest values.
            evicted = self._ring[positions[m - n_evict:]]
            remaining = _remove_values(self._sorted, evicted)
        self._ring[positions] = new
        self._sorted = _merge_sorted(remaining, torch.sort(new).values)
        self._size = min(self.capacity, self._size + m)
        self._next = (self._next + m) % self.capacity

    def add_and_rank(self, losses: torch.Tensor) -> torch.Tensor:
        """Append a forward batch's losses, then rank them against the window (docs/methods.md).

        float64 fractions, as the compiled CPU kernel computes them: k / R in float32 can round
        across a float32 threshold, and the two backends must decide alike."""
        self.add(losses)
        if self._size == 0:
            return torch.zeros(losses.shape, dtype=torch.float64, device=self.device)
        query = torch.nan_to_num(losses.detach().reshape(-1).float(), nan=float("inf"))
        below = torch.searchsorted(self._sorted, query, side="left")
        return below.double() * (1.0 / self._size)

    def fraction_below(self, losses: torch.Tensor) -> torch.Tensor:
        """Fraction of the window strictly below each loss (0 for an empty window)."""
        if self._size == 0:
            return torch.zeros_like(losses, dtype=torch.float32)
        query = torch.nan_to_num(losses.detach().float(), nan=float("inf"))
        below = torch.searchsorted(self._sorted, query, side="left")
        return below.float() / self._size


class NumpyLossWindow(LossWindow):
    """The same window on NumPy arrays updated in place by compiled kernels (`cpu_kernels`), for
    CPU tensors. SB's fused CPU step (`select_step.FusedCpuStep`) updates these same arrays."""

    def __init__(self, capacity: int, device: torch.device | str = "cpu", backend: str = "auto"):
        super().__init__(capacity, device)
        self.ring = np.zeros(capacity, dtype=np.float32)
        self.sorted_buffers = np.zeros((cpu_kernels.SORTED_ROWS, capacity), dtype=np.float32)
        # [size, next ring position, current sorted row, radix counters]: see cpu_kernels
        self.state = np.zeros(cpu_kernels.WINDOW_STATE_LENGTH, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.state[cpu_kernels.SIZE])

    def sorted_values(self) -> torch.Tensor:
        current = self.sorted_buffers[self.state[cpu_kernels.CURRENT]]
        return torch.from_numpy(current[:len(self)].copy())

    def add(self, losses: torch.Tensor) -> None:
        cpu_kernels.window_add(self.ring, self.sorted_buffers, self.state, _as_numpy(losses))

    def add_and_rank(self, losses: torch.Tensor) -> np.ndarray:
        """Append a forward batch's losses, then rank them against the window (docs/methods.md);
        the fractions come back as a float64 NumPy array."""
        values = _as_numpy(losses)
        cpu_kernels.window_add(self.ring, self.sorted_buffers, self.state, values)
        return self._fraction_below(values)

    def fraction_below(self, losses: torch.Tensor) -> torch.Tensor:
        fractions = self._fraction_below(_as_numpy(losses))
        return torch.from_numpy(fractions.astype(np.float32)).reshape(losses.shape)

    def _fraction_below(self, values: np.ndarray) -> np.ndarray:
        out = np.empty(values.shape[0], dtype=np.float64)
        cpu_kernels.window_fraction_below(self.sorted_buffers, self.state, values, out)
        return out


def _as_numpy(losses: torch.Tensor) -> np.ndarray:
    """A flat NumPy view (or copy) of the losses; the kernels store them as float32."""
    try:
        values = losses.numpy()
    except (RuntimeError, TypeError):  # requires grad, or lives on a device
        values = losses.detach().float().cpu().numpy()
    return values.reshape(-1)


def _remove_values(sorted_values: torch.Tensor, evicted: torch.Tensor) -> torch.Tensor:
    """Remove one occurrence of each evicted value from a sorted tensor (values are present)."""
    evicted_sorted = torch.sort(evicted).values
    k = evicted_sorted.numel()
    # The j-th copy of a repeated value removes the j-th equal entry of the window.
    first_equal = torch.searchsorted(sorted_values, evicted_sorted, side="left")
    copy_index = torch.arange(k, device=evicted.device) - torch.searchsorted(
        evicted_sorted, evicted_sorted, side="left")
    drop = first_equal + copy_index
    keep = torch.ones_like(sorted_values, dtype=torch.bool)
    keep[drop] = False
    # Compact by scattering kept values to their rank among the kept; dropped ones go to a spare
    # slot at the end. No boolean indexing, so no device sync for the output size.
    n_keep = sorted_values.numel() - k
    destination = torch.where(keep, torch.cumsum(keep, 0) - 1,
                              torch.full_like(drop[:1], n_keep).expand_as(keep))
    out = torch.empty(n_keep + 1, dtype=sorted_values.dtype, device=sorted_values.device)
    out.scatter_(0, destination, sorted_values)
    return out[:n_keep]


def _merge_sorted(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Merge two sorted tensors in O(n + m log n) with searchsorted, no host sync."""
    n, m = left.numel(), right.numel()
    out = torch.empty(n + m, dtype=left.dtype, device=left.device)
    right_pos = torch.searchsorted(left, right, side="left") + torch.arange(m, device=left.device)
    left_pos = torch.searchsorted(right, left, side="right") + torch.arange(n, device=left.device)
    out[right_pos] = right
    out[left_pos] = left
    return out
