"""Optuna heartbeats. Database storages fail a RUNNING trial whose heartbeats stopped (its worker
died: another machine's coordinator re-runs it). Heartbeats are automatic only inside
`Study.optimize`; sbbench asks and tells itself, so it records them: a worker for its trial, the
coordinator for the finished trials that wait for their target."""

from __future__ import annotations

import threading
import time

from sbbench.sweep import trial_records as names
from sbbench.sweep.context import SweepContext


def start_trial_heartbeat(storage, trial_id: int) -> None:
    """In a worker: prove the trial's process is alive, from a daemon thread, until it exits."""
    interval_s = storage.get_heartbeat_interval() if hasattr(storage, "get_heartbeat_interval") \
        else None
    if not interval_s:
        return

    def beat() -> None:
        while True:
            try:
                storage.record_heartbeat(trial_id)
            except Exception:  # noqa: BLE001  (a database hiccup must not end the heartbeats)
                pass
            time.sleep(interval_s)

    threading.Thread(target=beat, name="optuna-heartbeat", daemon=True).start()


class AwaitingHeartbeat:
    """In the coordinator: keep the trials that wait for their target alive."""

    def __init__(self, context: SweepContext):
        self.context = context
        self._last_heartbeat = 0.0

    def beat(self) -> None:
        """Database storages fail trials without heartbeats: keep waiting trials alive."""
        interval = getattr(self.context.storage, "get_heartbeat_interval", lambda: None)()
        if not interval or time.monotonic() - self._last_heartbeat < interval:
            return
        from optuna.trial import TrialState

        self._last_heartbeat = time.monotonic()
        for trial in self.context.trials():
            if trial.state == TrialState.RUNNING and trial.user_attrs.get(names.ATTR_AWAITING):
                self.context.storage.record_heartbeat(trial._trial_id)
