"""A worker that died without a word (its machine with it): its trial is failed once its
heartbeat is older than the grace period, its point is re-queued for another worker, and a point
whose workers keep dying is given up after MAX_RETRIES re-runs."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = [pytest.mark.db, pytest.mark.timeout(120)]


def test_a_silent_worker_is_failed_and_its_point_requeued(new_database, monkeypatch, tmp_path,
                                                          data_dir, tracking_uri):
    import optuna
    from mlflow import MlflowClient

    from sbbench.sweep import storage as storage_module
    from sbbench.sweep import trial_records as names
    from sbbench.sweep.context import SweepContext
    from sbbench.sweep.recovery import Recovery
    from sbbench.sweep.study import load_study, point_key
    from tests.sweep.tiny_study import write_study

    monkeypatch.setattr(storage_module, "HEARTBEAT_INTERVAL_S", 1)
    monkeypatch.setattr(storage_module, "HEARTBEAT_GRACE_S", 1)
    url = new_database("stale")
    storage = storage_module.open_storage(url)
    spec = load_study(write_study(tmp_path, data_dir, grid={"method": ["traditional"]},
                                  seeds=[0]))
    (point,) = spec.grid_points()
    key = point_key(point)
    study = optuna.create_study(study_name="tiny", storage=storage)
    context = SweepContext(spec=spec, study=study, storage=storage, storage_url=url,
                           study_name="tiny", client=MlflowClient(tracking_uri=tracking_uri),
                           experiment="sbbench")
    recovery = Recovery(context)

    def a_worker_dies(trial) -> None:
        storage.record_heartbeat(trial._trial_id)  # it was alive once, then went silent
        time.sleep(2.5)
        recovery.recover_interrupted(set())

    study.enqueue_trial(point, user_attrs={names.ATTR_POINT: key})
    for attempt in range(storage_module.MAX_RETRIES + 1):
        trial = study.ask()  # the point itself, then its re-queued copies
        assert json.loads(trial.user_attrs[names.ATTR_POINT]) == point
        a_worker_dies(trial)
        states = [t.state.name for t in study.get_trials()]
        assert states[attempt] == "FAIL" and context.is_interrupted(study.get_trials()[attempt])
        if attempt < storage_module.MAX_RETRIES:
            # Re-queued for any worker on any machine, and not pending twice.
            assert states[-1] == "WAITING" and context.pending_points() == []
    # The point's workers died MAX_RETRIES + 1 times: no copy is queued, and it is given up.
    assert "WAITING" not in [t.state.name for t in study.get_trials()]
    assert context.pending_points() == []
