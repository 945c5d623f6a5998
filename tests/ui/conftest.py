"""One tiny sweep tracked by a real `mlflow server` on 127.0.0.1, shared by the UI tests."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sbbench.cli import main
from tests.sweep.tiny_study import write_study
from tests.ui import mlflow_server

STUDY = "uitiny"
EXPERIMENT = "sbbench-ui"


@dataclass
class ServedSweep:
    url: str  # the server (tracking URI and UI)
    experiment: str
    study: str
    server: mlflow_server.MlflowServer


@pytest.fixture(scope="session")
def served_sweep(tmp_path_factory, data_dir):
    """A two-method, two-seed sweep with its analysis, written through the server's REST API
    (the way a team shares one tracking server), the server still running for the tests."""
    folder = tmp_path_factory.mktemp("mlflow-ui")
    server = mlflow_server.start(folder / "server")
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_TRACKING_URI",
                         "MLFLOW_EXPERIMENT_NAME"):
                patch.delenv(name, raising=False)
            patch.chdir(folder)  # the sweep's .sbbench/ and report folder stay in tmp
            study_file = write_study(folder, data_dir, name=STUDY)
            code = main(["sweep", "--study", str(study_file), "--tracking-uri", server.url,
                         "--experiment", EXPERIMENT, "--storage",
                         f"journal:{folder / 'optuna.journal'}", "--out",
                         str(folder / "report"), "--no-progress"])
        assert code == 0, server.log_tail()
        yield ServedSweep(server.url, EXPERIMENT, STUDY, server)
    finally:
        mlflow_server.stop(server)
