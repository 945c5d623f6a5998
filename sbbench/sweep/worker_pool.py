"""The local worker processes of a sweep: at most `size` trials at once, each in its own process
(forked from the trial fork server), with its output in `<log_dir>/trial-N.log`.

With devices (`--devices cuda:0,cuda:1`) the pool has one slot per device: a trial takes a free
slot's device and keeps it until it exits, so no two trials share a GPU."""

from __future__ import annotations

import multiprocessing.connection
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from sbbench.sweep.trial_process import TrialProcess

WORKER_STOP_GRACE_S = 30.0  # a stopped trial ends its run KILLED and tells Optuna in this time


def device_settings(device: str, inherited: str | None = None) -> tuple[dict[str, str], str]:
    """(environment, config device) of a worker given `device`: it sees only that GPU, as
    cuda:0 (CUDA_VISIBLE_DEVICES); a cpu worker sees none. `inherited`: the coordinator's own
    CUDA_VISIBLE_DEVICES (a scheduler's, e.g. Slurm's "3,5"), which cuda:N indexes into."""
    from sbbench.sweep.trial_records import ENV_DEVICE

    if device == "cpu":
        return {"CUDA_VISIBLE_DEVICES": "", ENV_DEVICE: device}, "cpu"
    index = int(device[len("cuda:"):])
    visible = [d.strip() for d in (inherited or "").split(",") if d.strip()]
    if inherited is not None and index >= len(visible):
        from sbbench.sweep.study import StudyError
        raise StudyError("--devices", "devices", device,
                         f"one of the {len(visible)} GPU(s) CUDA_VISIBLE_DEVICES={inherited!r} "
                         "leaves visible (cuda:0 ...)")
    physical = visible[index] if inherited is not None else str(index)
    return {"CUDA_VISIBLE_DEVICES": physical, ENV_DEVICE: device}, "cuda:0"


@dataclass
class EndedWorker:
    trial_number: int
    returncode: int
    log_path: str


class WorkerPool:
    def __init__(self, size: int, log_dir: Path, devices: list[str] | None = None):
        self.devices = list(devices or [])
        self.size = len(self.devices) or size
        self.log_dir = log_dir
        self._running: dict[int, tuple[TrialProcess, str]] = {}
        self._slots: dict[int, int] = {}  # trial number -> index into `devices`

    def next_device(self) -> str | None:
        """The device the next trial gets (None without --devices)."""
        if not self.devices:
            return None
        return self.devices[self._free_slot()]

    def _free_slot(self) -> int:
        return min(set(range(len(self.devices))) - set(self._slots.values()))

    def __len__(self) -> int:
        return len(self._running)

    @property
    def trial_numbers(self) -> set[int]:
        return set(self._running)

    @property
    def has_room(self) -> bool:
        return len(self._running) < self.size

    def launch(self, trial_number: int, job_json: str, env: Mapping[str, str]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = str(self.log_dir / f"trial-{trial_number}.log")
        if self.devices:
            self._slots[trial_number] = self._free_slot()
        self._running[trial_number] = (TrialProcess(job_json, log_path, env), log_path)

    def collect_ended(self) -> list[EndedWorker]:
        """The workers that exited since the last call (removed from the pool)."""
        ended = []
        for number, (process, log_path) in list(self._running.items()):
            if process.poll() is not None:
                del self._running[number]
                self._slots.pop(number, None)
                ended.append(EndedWorker(number, process.returncode, log_path))
        return ended

    def wait_for_an_exit(self, timeout_s: float) -> None:
        """Sleep until a worker exits or `timeout_s` passes (no fixed poll between trials)."""
        sentinels = [process.sentinel for process, _ in self._running.values()]
        if sentinels:
            multiprocessing.connection.wait(sentinels, timeout_s)
        else:
            time.sleep(timeout_s)

    def stop_all(self, grace_s: float = WORKER_STOP_GRACE_S) -> None:
        """SIGTERM every worker; SIGKILL what is still alive after `grace_s`."""
        for process, _ in self._running.values():
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for process, _ in self._running.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
