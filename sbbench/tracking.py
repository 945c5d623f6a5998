"""MLflow: run lifecycle (attach, child, end with a status), batched metrics, provenance, artifacts.

Everything goes through an explicit `MlflowClient` and an explicit run id, never MLflow's
per-thread active-run stack, so trials, workers and threads cannot resume the wrong run.
The names written here are a contract read by the analysis, the nightly jobs and users' queries.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

# The names of the record (the contract) live in sbbench.record_names; these aliases keep
# `tracking.TAG_...` working for existing callers.
from sbbench.record_names import (  # noqa: E402,F401
    DEFAULT_EXPERIMENT, DEFAULT_TRACKING_URI, FAILURE_DIVERGED, KIND_BENCH, FAILURE_ERROR,
    FAILURE_INTERRUPTED, FAILURE_PRUNED, TAG_DATASET, TAG_DEVICE, TAG_FAILURE_KIND,
    TAG_FAILURE_REASON, TAG_GIT_COMMIT, TAG_HOST, TAG_KIND, TAG_METHOD, TAG_MODEL, TAG_PARENT,
    TAG_PYTHON_VERSION, TAG_SEED_STREAMS, TAG_STOP_REASON, TAG_TORCH_VERSION,
    TAG_EXPERIMENT_KIND, EXPERIMENT_KIND_MODEL_TRAINING, TAG_DEVICE_NAME)
from sbbench.run_failures import RunDiverged, RunPruned  # noqa: E402

from sbbench.urls import mask_url  # noqa: E402

HTTP_REACHABILITY_TIMEOUT_S = 5.0

MAX_TAG_CHARS = 5000  # MLflow's tag value limit is 8000; keep reasons well under it
MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limit
# Evaluations are written at most this often (and at the end): the MLflow UI stays live
# while a fast run pays one ~10 ms sqlite write per interval instead of one per evaluation.
EVALUATION_FLUSH_INTERVAL_S = 10.0


class TrackingUnavailableError(RuntimeError):
    """The tracking store cannot be used; raised before any compute."""


@dataclass(frozen=True)
class TrackingOptions:
    tracking_uri: str | None = None
    experiment: str | None = None  # None: the experiment of `mlflow run`, else "sbbench"


def resolve_tracking_uri(uri: str | None) -> str:
    """The URI to use, with relative sqlite paths made absolute (workers run elsewhere)."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = uri[len("sqlite:///"):]
        uri = "sqlite:///" + str(Path(path).resolve())
    elif "://" not in uri:  # a plain path means a file store directory; refuse clearly
        raise TrackingUnavailableError(
            f"tracking_uri={mask_url(uri)!r}: allowed: sqlite:///FILE.db, http(s)://HOST:PORT, "
            "postgresql://..., mysql://... (the file store is deprecated in MLflow 3)")
    return uri


def check_tracking_reachable(uri: str) -> None:
    """Fail fast, with one line, when the store cannot be reached or written."""
    if uri.startswith("sqlite:///"):
        directory = Path(uri[len("sqlite:///"):]).parent
        if not directory.is_dir():
            raise TrackingUnavailableError(
                f"tracking_uri={mask_url(uri)!r}: directory {directory} does not exist; "
                "allowed: a sqlite "
                "file in an existing, writable directory")
        if not os.access(directory, os.W_OK):
            raise TrackingUnavailableError(
                f"tracking_uri={mask_url(uri)!r}: directory {directory} is not writable")
        return
    if uri.startswith(("http://", "https://")):
        health = uri.rstrip("/") + "/health"
        if "@" in health.split("://", 1)[1].split("/", 1)[0]:  # user:password@ (basic auth):
            scheme, rest = health.split("://", 1)             # /health needs none, and urllib
            health = f"{scheme}://{rest.split('@', 1)[1]}"     # cannot parse it
        try:
            with urllib.request.urlopen(health, timeout=HTTP_REACHABILITY_TIMEOUT_S) as response:
                if response.status >= 400:
                    raise TrackingUnavailableError(
                        f"tracking_uri={mask_url(uri)!r}: server answered HTTP {response.status}")
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise TrackingUnavailableError(
                f"tracking_uri={mask_url(uri)!r}: tracking server unreachable ({reason}); "
                "allowed: a "
                "running MLflow server (mlflow server --host 127.0.0.1 --port 5000)") from None


def get_client(uri: str):
    """A client bound to `uri`. Never mlflow.set_tracking_uri: it also sets the process's
    MLFLOW_TRACKING_URI, so one throwaway store (the benchmark's) would become every later
    run's default."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def ensure_experiment(client, name: str) -> str:
    """Experiment id for `name`, created if needed (also initialises a fresh store's schema),
    and marked as model training (`mark_model_training`)."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        mark_model_training(client, experiment)
        return experiment.experiment_id
    try:
        experiment_id = client.create_experiment(
            name, tags={TAG_EXPERIMENT_KIND: EXPERIMENT_KIND_MODEL_TRAINING})
    except MlflowException:  # another worker created it between our two calls
        experiment = client.get_experiment_by_name(name)
        mark_model_training(client, experiment)
        return experiment.experiment_id
    return experiment_id


def mark_model_training(client, experiment) -> None:
    """Tag an experiment as model training unless it already says what kind it is.

    MLflow 3's UI chooses an experiment's view by this tag, and without it infers the kind or
    asks. An existing kind is left alone: whoever set it knew what the experiment holds.
    """
    from mlflow.exceptions import MlflowException

    if TAG_EXPERIMENT_KIND in experiment.tags:
        return
    try:
        client.set_experiment_tag(experiment.experiment_id, TAG_EXPERIMENT_KIND,
                                  EXPERIMENT_KIND_MODEL_TRAINING)
    except MlflowException:
        # A view hint only: another worker tagging it at the same moment, or a server that lets
        # this user log runs but not edit the experiment, must not stop a run.
        pass


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance_tags(device_name: str) -> dict[str, str]:
    import torch

    return {
        TAG_GIT_COMMIT: git_commit(),
        TAG_TORCH_VERSION: torch.__version__,
        TAG_DEVICE: device_name,  # a sweep's --devices replaces it with the device given (cuda:2)
        TAG_DEVICE_NAME: device_name,
        TAG_PYTHON_VERSION: platform.python_version(),
        TAG_HOST: platform.node(),
    }


class NullTracker:
    """Records nothing: the baseline for the tracking-overhead benchmark and for library use."""

    run_id = None

    def log_evaluation(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        pass

    def set_tags(self, tags: Mapping[str, str]) -> None:
        pass

    def log_artifact_file(self, path: str | Path, artifact_path: str | None = None) -> None:
        pass

    def log_text(self, text: str, name: str) -> None:
        pass


class MlflowTracker:
    """Logs to one run by id: evaluations in batched, synchronous writes, stamped with the time
    each was measured.

    Evaluation metrics are buffered and written together at most every
    `EVALUATION_FLUSH_INTERVAL_S` seconds (and when the run ends): one `log_batch` holds every
    metric of several evaluations, each with its own step and timestamp. Writes are synchronous,
    inside the evaluation, where the training clock is paused. (MLflow's asynchronous logging
    was tried: its writer thread then competes with training for the CPU, and on two cores that
    leaked about 3% into the training clock, the very number the harness measures.)
    """

    def __init__(self, client, run_id: str):
        self.client = client
        self.run_id = run_id
        self._buffered: list = []
        self._last_flush = time.monotonic()

    def log_evaluation(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now_ms = int(time.time() * 1000)
        self._buffered.extend(Metric(key, float(value), now_ms, int(step))
                              for key, value in metrics.items())
        if time.monotonic() - self._last_flush >= EVALUATION_FLUSH_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        """Write the buffered evaluation metrics now."""
        buffered, self._buffered = self._buffered, []
        for start in range(0, len(buffered), MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id,
                                  metrics=buffered[start:start + MAX_METRICS_PER_BATCH],
                                  synchronous=True)
        self._last_flush = time.monotonic()

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        """End-of-run summaries under their own keys (step 0, never part of a curve)."""
        from mlflow.entities import Metric

        now_ms = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now_ms, 0)
                                                    for k, v in metrics.items()],
                              synchronous=True)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)[:MAX_TAG_CHARS])
                                                 for k, v in tags.items()], synchronous=True)

    def log_params(self, params: Mapping[str, str]) -> None:
        """Log params, skipping keys already on the run (`mlflow run` logged its -P values as
        strings; MLflow refuses to log a key twice with another value)."""
        from mlflow.entities import Param

        existing = self.client.get_run(self.run_id).data.params
        fresh = [Param(k, str(v)) for k, v in params.items() if k not in existing]
        for start in range(0, len(fresh), 100):  # MLflow accepts at most 100 params per batch
            self.client.log_batch(self.run_id, params=fresh[start:start + 100], synchronous=True)

    def log_artifact_file(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, name: str) -> None:
        self.client.log_text(self.run_id, text, name)

    def log_dataset(self, name: str, digest: str, source: str, context: str = "training") -> None:
        from mlflow.entities import Dataset, DatasetInput, InputTag

        dataset = Dataset(name=name, digest=digest[:36], source_type="local",
                          source=json.dumps({"source": source}))
        from mlflow.exceptions import MlflowException

        inputs = [DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])]
        for attempt in range(3):
            try:
                self.client.log_inputs(self.run_id, datasets=inputs)
                return
            except MlflowException:
                # Parallel workers insert the same dataset row at once (UNIQUE constraint);
                # the retry finds the row the other worker wrote and links to it.
                if attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def end(self, status: str) -> None:
        try:
            self.flush()
        finally:
            self.client.set_terminated(self.run_id, status=status)


def classify_failure(error: BaseException) -> tuple[str, str, str]:
    """(run status, failure kind, one-line reason) for an exception that ended a run."""
    reason = f"{type(error).__name__}: {error}".splitlines()[0] if str(error) else \
        type(error).__name__
    if isinstance(error, KeyboardInterrupt):
        return "KILLED", FAILURE_INTERRUPTED, "interrupted (KeyboardInterrupt)"
    if isinstance(error, SystemExit):
        return "KILLED", FAILURE_INTERRUPTED, f"terminated (exit {error.code})"
    if isinstance(error, RunDiverged):
        return "FAILED", FAILURE_DIVERGED, reason
    if isinstance(error, RunPruned):
        return "KILLED", FAILURE_PRUNED, reason
    return "FAILED", FAILURE_ERROR, reason


@contextmanager
def tracked_run(tracking: TrackingOptions, *, run_name: str | None = None,
                parent_run_id: str | None = None,
                tags: Mapping[str, str] | None = None,
                params: Mapping[str, str] | None = None,
                resume_run_id: str | None = None) -> Iterator[MlflowTracker]:
    """Create (or resume under `mlflow run`) one run and always end it with a status.

    Under `mlflow run`, MLFLOW_RUN_ID names the project run: it is resumed, not duplicated.
    A child run (parent_run_id given) never resumes MLFLOW_RUN_ID. Any exception, Ctrl-C or
    SIGTERM (turned into SystemExit by the CLI) ends the run FAILED or KILLED with the reason as a
    tag, then propagates.
    """
    uri = resolve_tracking_uri(tracking.tracking_uri)
    client = get_client(uri)
    resume_id = resume_run_id or (os.environ.get("MLFLOW_RUN_ID") if parent_run_id is None
                                  else None)
    if resume_id:
        run = client.get_run(resume_id)
        run_id = run.info.run_id
        client.update_run(run_id, status="RUNNING")
        mark_model_training(client, client.get_experiment(run.info.experiment_id))
    else:
        experiment = tracking.experiment or DEFAULT_EXPERIMENT
        if tracking.experiment is None and os.environ.get("MLFLOW_EXPERIMENT_ID"):
            experiment_id = os.environ["MLFLOW_EXPERIMENT_ID"]  # `mlflow run`'s experiment
            mark_model_training(client, client.get_experiment(experiment_id))
        else:
            experiment_id = ensure_experiment(client, experiment)
        start_tags = dict(tags or {})
        if parent_run_id:
            start_tags[TAG_PARENT] = parent_run_id
        run_id = client.create_run(experiment_id, run_name=run_name,
                                   tags=start_tags).info.run_id
        tags = None
    tracker = MlflowTracker(client, run_id)
    try:
        if tags:
            tracker.set_tags(tags)
        if params:
            tracker.log_params(params)
        yield tracker
    except BaseException as error:
        status, kind, reason = classify_failure(error)
        try:
            tracker.set_tags({TAG_FAILURE_KIND: kind, TAG_FAILURE_REASON: reason})
        finally:
            tracker.end(status)
        raise
    else:
        tracker.end("FINISHED")


def write_temp_json(payload: Any, name: str) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="sbbench-"))
    path = directory / name
    path.write_text(json.dumps(payload, indent=2, sort_keys=True))
    return path
