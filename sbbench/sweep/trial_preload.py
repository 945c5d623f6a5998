"""Imported once by the trial fork server (`trial_process`), before it forks any trial.

Everything a trial imports anyway, so that each forked trial starts with it in memory: torch,
the training modules (data, models, selection), MLflow's client and SQL store, Optuna's
storages, matplotlib and pandas for the run's artifacts; and SB's compiled selection kernels for the default workload's batches (loading them
from numba's cache costs each SB-family trial ~0.8 s otherwise). Nothing here may start a thread
or touch CUDA: the server forks after this, and a fork copies only the calling thread.

A failure here must never take the server down (every trial would fail): anything that goes
wrong is skipped, and a trial then does that work itself, only later.
"""

import signal

# The server outlives SIGTERM sent to the whole process group (systemd, Kubernetes, a test's
# killpg): if it died, multiprocessing would report its live children as exited (code 255).
# It ignores SIGINT already; it still exits as soon as the coordinator does.
signal.signal(signal.SIGTERM, signal.SIG_IGN)

import matplotlib  # noqa: E402

matplotlib.use("Agg")  # trials draw their error-vs-time figure off-screen

import matplotlib.pyplot  # noqa: E402,F401
import mlflow  # noqa: E402,F401
import mlflow.store.tracking.sqlalchemy_store  # noqa: E402,F401  (sqlite / database store)
import optuna  # noqa: E402,F401
import optuna.storages.journal  # noqa: E402,F401
import pandas  # noqa: E402,F401  (the per-example table)
import torch  # noqa: E402

import sbbench.sweep.worker  # noqa: E402,F401
import sbbench.train.run  # noqa: E402,F401

# MNIST-1D's batches: ids int64, x float32 (batch, 1, 40), y int64.
_WARM_UP_BATCH = 128
_WARM_UP_INPUT_SHAPE = (1, 40)


def _warm_up_selection_kernels() -> None:
    from sbbench.config import RunConfig
    from sbbench.selection import build_method
    from sbbench.train.run import selection_settings

    config = RunConfig(method="sb", device="cpu")
    method = build_method("sb", selection_settings(config, 10 * _WARM_UP_BATCH,
                                                   torch.device("cpu")))
    method.warm_up(torch.arange(_WARM_UP_BATCH),
                   torch.zeros(_WARM_UP_BATCH, *_WARM_UP_INPUT_SHAPE),
                   torch.zeros(_WARM_UP_BATCH, dtype=torch.int64))


def _open_tracking_store() -> None:
    """Create (and cache, per URI, in MLflow's store registry) the sweep's tracking store: its
    schema check costs every trial ~0.25 s otherwise. The pool is emptied before any fork so
    that no child inherits an open database connection; each opens its own."""
    import os

    uri = os.environ.get(TRACKING_URI_VARIABLE)
    if not uri:
        return
    from mlflow import MlflowClient

    store = MlflowClient(tracking_uri=uri)._tracking_client.store
    engine = getattr(store, "engine", None)
    if engine is not None:
        engine.dispose()


TRACKING_URI_VARIABLE = "SBBENCH_FORK_SERVER_TRACKING_URI"

for _step in (_warm_up_selection_kernels, _open_tracking_store):
    try:
        _step()
    except Exception:  # noqa: BLE001  (see the module docstring)
        pass
