"""Three machines, one study: a real PostgreSQL storage and a real `mlflow server` whose backend
store is on that PostgreSQL, both on 127.0.0.1. The first coordinator creates the study and the
parent run; two more `--join`. One worker is killed with SIGKILL mid-trial, another is sent
SIGTERM. Every grid point ends complete exactly once, under the one parent, nothing RUNNING, and
the database password appears nowhere."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.db.conftest import password_of
from tests.db import postgres_server

pytestmark = [pytest.mark.db, pytest.mark.timeout(400)]

SEEDS = list(range(6))  # x (traditional, sb) = 12 grid points


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def mlflow_server(new_database, tmp_path):
    """`mlflow server` on 127.0.0.1, backend store on PostgreSQL, artifacts in a local folder."""
    backend = new_database("mlflow").replace("postgresql://", "postgresql+psycopg://", 1)
    port, artifacts = _free_port(), tmp_path / "artifacts"
    log = open(tmp_path / "mlflow-server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
         "--default-artifact-root", str(artifacts), "--no-serve-artifacts",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(uri + "/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        assert server.poll() is None, (tmp_path / "mlflow-server.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "mlflow server did not answer /health in 120 s"
        time.sleep(0.5)
    try:
        yield uri, backend, artifacts
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def _study_file(folder: Path, data_dir: str, **changes) -> Path:
    study = {
        "name": "machines", "sampler": "grid",
        # Trials of a few seconds: long enough to be killed mid-run.
        "workload": {"dataset": "mnist1d", "train_size": 1000, "val_size": 200,
                     "test_size": 200, "epochs": 1, "eval_every_examples": 500,
                     "batch_size": 50, "device": "cpu", "data_dir": data_dir},
        "fixed": {"num_threads": 1},
        "grid": {"method": ["traditional", "sb"], "beta": [2]},
        "seeds": SEEDS,
        "objective": {"kind": "time_to_target", "target_error": 0.8},
        **changes,
    }
    path = folder / "machines.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def _coordinator(machine: Path, study: Path, env: dict, *extra: str) -> subprocess.Popen:
    machine.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "sbbench.cli", "sweep", "--study", str(study), "--no-analyze",
         "--no-progress", "--workers", "1", *extra],
        cwd=machine, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_three_machines_share_one_study(tmp_path, data_dir, new_database, mlflow_server,
                                        postgres_dsn, capsys):
    import optuna
    from mlflow import MlflowClient

    from sbbench.cli import main
    from sbbench.sweep.storage import open_storage

    started = time.monotonic()
    tracking_uri, mlflow_backend, artifacts = mlflow_server
    print(f"mlflow server up after {time.monotonic() - started:.0f} s")
    storage_url = new_database("optuna")
    password = password_of(postgres_dsn)
    study_file = _study_file(tmp_path, data_dir)
    # The URLs come from the environment, as a cluster job would pass them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(SBBENCH_STORAGE=storage_url, MLFLOW_TRACKING_URI=tracking_uri,
               SBBENCH_HEARTBEAT_INTERVAL_S="2", SBBENCH_HEARTBEAT_GRACE_S="20",
               PYTHONPATH=os.pathsep.join(filter(None, [str(Path(__file__).parents[2]),
                                                        os.environ.get("PYTHONPATH")])))
    machines = [tmp_path / f"machine{i}" for i in range(3)]
    first = _coordinator(machines[0], study_file, env)
    storage = open_storage(storage_url)
    deadline = time.monotonic() + 120
    while True:  # the joins start once the study and its parent run exist
        try:
            study = optuna.load_study(study_name="machines", storage=storage)
            if study.user_attrs.get("sbbench_parent_run_id"):
                break
        except KeyError:
            pass
        assert first.poll() is None, first.stdout.read()
        assert time.monotonic() < deadline, "the first machine never created its parent run"
        time.sleep(0.5)
    joins = [_coordinator(m, study_file, env, "--join") for m in machines[1:]]
    coordinators = [first, *joins]

    # One worker killed outright, another told to stop: each just after its run started.
    victims: dict[str, int] = {}
    stopped_points: set[str] = set()  # two different points
    deadline = time.monotonic() + 150
    while len(victims) < 2 and time.monotonic() < deadline:
        time.sleep(0.3)
        for trial in study.get_trials(deepcopy=False):
            if trial.state.name != "RUNNING" or \
                    trial.user_attrs.get("sbbench_point") in stopped_points or \
                    "mlflow_run_id" not in trial.user_attrs or "worker_pid" not in trial.user_attrs:
                continue
            stopped_points.add(trial.user_attrs["sbbench_point"])
            how = "kill" if "kill" not in victims else "term"
            os.kill(trial.user_attrs["worker_pid"],
                    signal.SIGKILL if how == "kill" else signal.SIGTERM)
            victims[how] = trial.number
            break
    assert len(victims) == 2, f"only {victims} of the two workers could be stopped mid-trial"

    outputs = []
    for coordinator in coordinators:
        out, _ = coordinator.communicate(timeout=240)
        outputs.append(out)
        assert coordinator.returncode == 0, out[-3000:]
    printed = "\n".join(outputs)

    trials = optuna.load_study(study_name="machines", storage=storage).get_trials()
    points = [json.loads(t.user_attrs["sbbench_point"]) for t in trials]
    grid = {json.dumps(p, sort_keys=True) for p in points}
    assert len(grid) == 12
    complete = [t.user_attrs["sbbench_point"] for t in trials if t.state.name == "COMPLETE"]
    assert sorted(complete) == sorted(grid)  # every grid point complete exactly once
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    by_number = {t.number: t for t in trials}
    for how, number in victims.items():
        victim = by_number[number]
        assert victim.state.name == "FAIL" and victim.user_attrs["interrupted"], how
        assert victim.user_attrs["sbbench_point"] in complete, f"{how}: not re-run"

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("sbbench")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("sbbench.kind") == "sweep"]
    assert len(parents) == 1
    parent_id = parents[0].info.run_id
    children = [r for r in runs if r.info.run_id != parent_id]
    assert children and all(r.data.tags.get("mlflow.parentRunId") == parent_id
                            for r in children)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    finished = [r for r in children if r.info.status == "FINISHED"]
    finished_trials = [int(r.data.tags["sbbench.trial"]) for r in finished]
    assert len(finished) == 12 and len(set(finished_trials)) == 12
    assert {by_number[n].user_attrs["sbbench_point"] for n in finished_trials} == grid
    for how, number in victims.items():
        run = client.get_run(by_number[number].user_attrs["mlflow_run_id"])
        assert run.info.status == "KILLED", how
        assert run.data.tags["sbbench.failure_kind"] == "interrupted"
    ran_on = [len(list((m / ".sbbench" / "logs" / "machines").glob("trial-*.log")))
              for m in machines]
    assert sum(1 for n in ran_on if n) >= 2, ran_on  # the joins did take trials

    # A join with a study file that differs names the difference (exit 2) and changes nothing.
    changed = _study_file(tmp_path / "machine1", data_dir, grid={"method": ["traditional", "sb"],
                                                                 "beta": [3]})
    code = main(["sweep", "--study", str(changed), "--join", "--storage", storage_url,
                 "--tracking-uri", tracking_uri, "--no-analyze", "--no-progress"])
    error = capsys.readouterr().err
    assert code == 2 and "grid.beta" in error and "[3]" in error and password not in error
    assert len(optuna.load_study(study_name="machines", storage=storage).get_trials()) == \
        len(trials)
    # A join never creates a study: none by that name is an error (exit 2), not a new study.
    code = main(["sweep", "--study", str(study_file), "--join", "--join-timeout", "0",
                 "--study-name", "nosuch", "--storage", storage_url,
                 "--tracking-uri", tracking_uri, "--no-analyze", "--no-progress"])
    error = capsys.readouterr().err
    assert code == 2 and "no study 'nosuch'" in error and password not in error
    assert "nosuch" not in optuna.get_all_study_names(storage)

    # No warning a user cannot act on (sbbench asks and tells with heartbeats on purpose).
    assert "Heartbeat of storage" not in printed and "ExperimentalWarning" not in printed

    # The password is nowhere: printed output, logs, the MLflow store, the Optuna study.
    assert "***@" in printed  # the closing line shows the storage, masked
    texts = {"printed output": printed}
    for path in [*tmp_path.rglob("*.log"), *artifacts.rglob("*")]:
        if path.is_file() and path.name != "mlflow-server.log":
            texts[str(path)] = path.read_text(errors="replace")
    bindir = postgres_server.bin_dir()
    for url in (storage_url, mlflow_backend.replace("+psycopg", "")):
        texts[f"dump of {url.rsplit('/', 1)[1]}"] = subprocess.run(
            [f"{bindir}/pg_dump", "--data-only", url], capture_output=True, text=True,
            check=True).stdout
    leaks = [where for where, text in texts.items() if password in text]
    assert not leaks
    reruns = {how: [t.number for t in trials if t.user_attrs["sbbench_point"] ==
                    by_number[n].user_attrs["sbbench_point"]] for how, n in victims.items()}
    print(f"three machines, 12 points, 2 stopped workers: {time.monotonic() - started:.0f} s; "
          f"victims {victims}, their points' trials {reruns}, trials per machine {ran_on}, "
          f"{len(trials)} trials in all")
