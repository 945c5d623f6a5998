"""Experiments sbbench creates or finds are tagged as model training, so MLflow 3's UI opens
them in its training view (the tag `mlflow.experimentKind`)."""

from __future__ import annotations

from mlflow import MlflowClient

from sbbench import tracking
from sbbench.cli import main
from tests.train.test_mlflow_record import cli_args

KIND = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"


def test_train_creates_an_experiment_tagged_as_model_training(tiny, tracking_uri):
    small = {**tiny, "train_size": 200, "epochs": 1, "eval_every_examples": 200}
    code = main(["train", *cli_args(small, method="traditional"), "--experiment", "kind-test",
                 "--tracking-uri", tracking_uri, "--no-progress"])
    assert code == 0
    experiment = MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name("kind-test")
    assert experiment.tags[KIND] == MODEL_TRAINING
    assert tracking.TAG_EXPERIMENT_KIND == KIND
    assert tracking.EXPERIMENT_KIND_MODEL_TRAINING == MODEL_TRAINING


def test_existing_experiment_without_a_kind_is_tagged(tracking_uri):
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = client.create_experiment("made-elsewhere")
    assert KIND not in client.get_experiment(experiment_id).tags
    assert tracking.ensure_experiment(client, "made-elsewhere") == experiment_id
    assert client.get_experiment(experiment_id).tags[KIND] == MODEL_TRAINING


def test_an_experiment_kind_already_set_is_kept(tracking_uri):
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = client.create_experiment("genai", tags={KIND: "genai_development"})
    assert tracking.ensure_experiment(client, "genai") == experiment_id
    assert client.get_experiment(experiment_id).tags[KIND] == "genai_development"
