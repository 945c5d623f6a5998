"""The training clock and its phase breakdown.

The clock counts training only: it is paused during evaluation and logging. Three phases are
measured explicitly (forward selecting, forward training, backward); "other" is the rest of the
clock (data, optimizer steps, bookkeeping), so the four always add up to the total.

On CUDA every phase boundary synchronises the device: a host clock read around asynchronous
kernels would measure the launch, not the work.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

import torch

PHASES = ("forward_select", "forward_train", "backward")


class PhaseClock:
    def __init__(self, device: torch.device):
        self._sync = device.type == "cuda"
        self._device = device
        self._running_since: float | None = None
        self._accumulated_s = 0.0
        self.phase_s = {name: 0.0 for name in PHASES}

    def _now(self) -> float:
        if self._sync:
            torch.cuda.synchronize(self._device)
        return time.perf_counter()

    def start(self) -> None:
        if self._running_since is None:
            self._running_since = self._now()

    def pause(self) -> None:
        if self._running_since is not None:
            self._accumulated_s += self._now() - self._running_since
            self._running_since = None

    @property
    def running(self) -> bool:
        return self._running_since is not None

    def elapsed_s(self) -> float:
        """Training-clock seconds so far (no device sync when paused)."""
        if self._running_since is None:
            return self._accumulated_s
        return self._accumulated_s + self._now() - self._running_since

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = self._now()
        try:
            yield
        finally:
            self.phase_s[name] += self._now() - start

    @contextmanager
    def paused(self) -> Iterator[None]:
        was_running = self.running
        self.pause()
        try:
            yield
        finally:
            if was_running:
                self.start()

    def breakdown(self) -> dict[str, float]:
        total = self.elapsed_s()
        explicit = sum(self.phase_s.values())
        return {
            "time_forward_select_s": self.phase_s["forward_select"],
            "time_forward_train_s": self.phase_s["forward_train"],
            "time_backward_s": self.phase_s["backward"],
            "time_other_s": max(0.0, total - explicit),
        }
