"""Shared fixtures: a tiny MNIST-1D workload and a throwaway MLflow store."""

from __future__ import annotations


import pytest
import torch

# Two cores: keep test processes from oversubscribing them.
torch.set_num_threads(1)

TINY_WORKLOAD = {
    "dataset": "mnist1d",
    "train_size": 600,
    "val_size": 200,
    "test_size": 200,
    "epochs": 2,
    "eval_every_examples": 200,
    "batch_size": 50,
    "device": "cpu",
    "num_threads": 1,
}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> str:
    """One mnist1d cache for the whole session (generation is the slow part)."""
    return str(tmp_path_factory.mktemp("data"))


@pytest.fixture
def tiny(data_dir) -> dict:
    return {**TINY_WORKLOAD, "data_dir": data_dir}


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch) -> str:
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    # MLflow puts a sqlite store's artifacts in ./mlruns and sweeps their state in ./.sbbench:
    # keep both out of the checkout.
    monkeypatch.chdir(tmp_path)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def all_runs(uri: str, experiment: str = "sbbench"):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id])
