"""Sliding window of the most recent R losses with O(log R) vectorised percentile look-ups.

Two views of the same R values are kept: a ring buffer in arrival order (to know which values
leave the window) and a sorted copy (to rank new losses with `torch.searchsorted`). Updating the
sorted copy is a vectorised merge, O(R + m log R) per batch of m losses, with no host-device
synchronisation and no Python loop over the window.

On the CPU the same algorithm runs on NumPy views of the tensors: a torch operator costs a few
microseconds of dispatch, and SB's bookkeeping is a dozen tiny operators per batch, which made it
3% of a training step with torch ops and well under 1% with NumPy (docs/performance.md).
"""

from __future__ import annotations

import numpy as np
import torch


FULL_SORT_MAX_CAPACITY = 4096  # values; above it the O(R + m log R) merge is cheaper


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
        """Append a forward batch's losses, then rank them against the window (SPEC order)."""
        self.add(losses)
        return self.fraction_below(losses)

    def fraction_below(self, losses: torch.Tensor) -> torch.Tensor:
        """Fraction of the window strictly below each loss (0 for an empty window)."""
        if self._size == 0:
            return torch.zeros_like(losses, dtype=torch.float32)
        query = torch.nan_to_num(losses.detach().float(), nan=float("inf"))
        below = torch.searchsorted(self._sorted, query, side="left")
        return below.float() / self._size


class NumpyLossWindow(LossWindow):
    """The same window on NumPy arrays, for CPU tensors (far less per-operator overhead)."""

    def __init__(self, capacity: int, device: torch.device | str = "cpu", backend: str = "auto"):
        super().__init__(capacity, device)
        self._ring = np.empty(capacity, dtype=np.float32)
        self._sorted = np.empty(0, dtype=np.float32)

    def sorted_values(self) -> torch.Tensor:
        return torch.from_numpy(self._sorted)

    def add(self, losses: torch.Tensor) -> None:
        self._add_values(_as_numpy(losses))

    def add_and_rank(self, losses: torch.Tensor) -> np.ndarray:
        """Append a forward batch's losses, then rank them against the window (SPEC order).

        One tensor-to-NumPy conversion for both; the fractions come back as a float64 NumPy
        array for the NumPy probability path."""
        values = _as_numpy(losses)
        self._add_values(values)
        if self._size == 0:  # an empty batch into an empty window
            return np.zeros(values.shape)
        return np.searchsorted(self._sorted, values, side="left") * (1.0 / self._size)

    def _add_values(self, new: np.ndarray) -> None:
        if new.size >= self.capacity:
            new = new[-self.capacity:]
            self._ring[:] = new
            self._sorted = np.sort(new)
            self._size, self._next = self.capacity, 0
            return
        m = new.size
        if m == 0:
            return
        if self.capacity <= FULL_SORT_MAX_CAPACITY:
            # Small windows: one contiguous write and one sort of <= 4,096 floats (~10 us)
            # beat the half-dozen NumPy calls of the merge.
            end = self._next + m
            if end <= self.capacity:
                self._ring[self._next:end] = new
            else:
                split = self.capacity - self._next
                self._ring[self._next:] = new[:split]
                self._ring[:end - self.capacity] = new[split:]
            self._size = min(self.capacity, self._size + m)
            self._next = end % self.capacity
            held = self._ring if self._size == self.capacity else self._ring[:self._size]
            self._sorted = np.sort(held)
            return
        positions = (self._next + np.arange(m)) % self.capacity
        n_evict = max(0, self._size + m - self.capacity)
        remaining = self._sorted
        if n_evict:
            evicted = np.sort(self._ring[positions[m - n_evict:]])
            first_equal = np.searchsorted(remaining, evicted, side="left")
            copy_index = np.arange(n_evict) - np.searchsorted(evicted, evicted, side="left")
            remaining = np.delete(remaining, first_equal + copy_index)
        self._ring[positions] = new
        new_sorted = np.sort(new)
        self._sorted = np.insert(remaining, np.searchsorted(remaining, new_sorted), new_sorted)
        self._size = min(self.capacity, self._size + m)
        self._next = (self._next + m) % self.capacity

    def fraction_below(self, losses: torch.Tensor) -> torch.Tensor:
        if self._size == 0:
            return torch.zeros(losses.shape, dtype=torch.float32)
        below = np.searchsorted(self._sorted, _as_numpy(losses), side="left")
        return torch.from_numpy((below / self._size).astype(np.float32)).reshape(losses.shape)


def _as_numpy(losses: torch.Tensor) -> np.ndarray:
    """A flat float32 NumPy copy of the losses with NaN as +inf (NaN ranks as the largest).

    Two library calls in the common case (a CPU float32 tensor without grad): right after a
    forward pass each distinct call costs 5-20 us on this CPU, so calls are what to save.
    np.fmin returns its non-NaN argument: fmin(NaN, inf) = inf, fmin(x, inf) = x.
    """
    try:
        values = losses.numpy()
    except (RuntimeError, TypeError):  # requires grad, or lives on a device
        values = losses.detach().float().cpu().numpy()
    return np.fmin(values.reshape(-1), np.inf, dtype=np.float32)


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
