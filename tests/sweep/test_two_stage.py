"""Two-stage studies: tune each method on seeds that are never timed, time it at its choice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from sbbench.analysis import AnalyzeOptions, analyze
from sbbench.cli import main
from sbbench.sweep.storage import open_storage
from sbbench.sweep.study import StudyError, load_study
from tests.conftest import all_runs
from tests.sweep.tiny_study import longer_workload, sweep_args, write_study

# A learning rate that cannot learn anything in two epochs against one that can: the planted
# best value every method must choose.
HOPELESS_LR, GOOD_LR = 1e-5, 0.1
TUNING_SEEDS, TIMING_SEEDS = [100], [0, 1]


def two_stage_study(tmp_path: Path, data_dir: str, workload: dict | None = None, **tuning):
    return write_study(
        tmp_path, data_dir, name="two",
        workload=workload or {**longer_workload(data_dir), "train_size": 600, "epochs": 2,
                              "eval_every_examples": 200},
        grid={"method": ["traditional", "sb"], "beta": [2]}, seeds=TIMING_SEEDS,
        objective={"kind": "time_to_target", "target_factor": 1.4},
        tuning={"grid": {"lr": [HOPELESS_LR, GOOD_LR]}, "seeds": TUNING_SEEDS, **tuning})


def load(storage: Path):
    return optuna.load_study(study_name="two", storage=open_storage(f"journal:{storage}"))


def points_of(trials, state="COMPLETE"):
    return [json.loads(t.user_attrs["sbbench_point"]) for t in trials if t.state.name == state]


def test_tuning_picks_the_planted_best_and_timing_uses_it_on_fresh_seeds(tmp_path, data_dir,
                                                                       tracking_uri):
    study_file = two_stage_study(tmp_path, data_dir)
    storage = tmp_path / "two.journal"
    assert main(sweep_args(study_file, tracking_uri, storage)) == 0
    study = load(storage)
    trials = study.get_trials()
    points = points_of(trials)
    assert len(points) == len(trials) == 4 + 4  # 2 methods x 2 lrs x 1 seed, then 2 x 2 seeds
    tuning = [p for p in points if p["seed"] in TUNING_SEEDS]
    timing = [p for p in points if p["seed"] in TIMING_SEEDS]
    assert sorted((p["method"], p["lr"]) for p in tuning) == sorted(
        (m, lr) for m in ("traditional", "sb") for lr in (HOPELESS_LR, GOOD_LR))
    # The planted best: every method is timed at the rate that learns, on the timing seeds only.
    assert sorted((p["method"], p["seed"], p["lr"]) for p in timing) == sorted(
        (m, s, GOOD_LR) for m in ("traditional", "sb") for s in TIMING_SEEDS)
    choice = json.loads(study.user_attrs["sbbench_tuning_choice"])
    assert sorted(v["lr"] for v in choice["chosen"].values()) == [GOOD_LR, GOOD_LR]
    for candidates in choice["candidates"].values():
        scores = {c["values"]["lr"]: c["mean"] for c in candidates}
        assert scores[GOOD_LR] < scores[HOPELESS_LR] - 0.1

    # MLflow: the stage, the chosen values and where they came from, the reference runs.
    client = MlflowClient(tracking_uri=tracking_uri)
    by_trial = {t.number: client.get_run(t.user_attrs["mlflow_run_id"]) for t in trials}
    for trial in trials:
        run = by_trial[trial.number]
        point = json.loads(trial.user_attrs["sbbench_point"])
        tags = run.data.tags
        assert float(run.data.params["lr"]) == point["lr"]
        if point["seed"] in TUNING_SEEDS:
            assert tags["sbbench.stage"] == "tuning" and "sbbench.tuned_values" not in tags
            assert "-tune-" in run.info.run_name
            is_reference = point["method"] == "traditional" and point["lr"] == GOOD_LR
            assert (tags.get("sbbench.role") == "reference") == is_reference
        else:
            assert tags["sbbench.stage"] == "timing" and "sbbench.role" not in tags
            assert json.loads(tags["sbbench.tuned_values"]) == {"lr": GOOD_LR}
            assert "tuning stage of study two" in tags["sbbench.tuned_from"]
            assert f"lr={HOPELESS_LR}" in tags["sbbench.tuned_from"]
    # The timing stage's target: 1.4 x the reference run's final validation error (never
    # a timed seed's).
    (reference,) = [by_trial[t.number] for t in trials
                    if by_trial[t.number].data.tags.get("sbbench.role") == "reference"]
    (key,) = [k for k in study.user_attrs if k.startswith("target_error:")]
    assert study.user_attrs[key] == pytest.approx(
        1.4 * reference.data.metrics["final_val_error"])
    for trial in trials:
        if json.loads(trial.user_attrs["sbbench_point"])["seed"] in TIMING_SEEDS:
            assert trial.user_attrs["target_error"] == study.user_attrs[key]

    # The analysis compares the timing runs only, with targets from the reference run.
    parent = by_trial[0].data.tags["mlflow.parentRunId"]
    result = analyze(AnalyzeOptions(parent_run_id=parent, tracking_uri=tracking_uri,
                                    out_dir=str(tmp_path / "analysis"), log_to_mlflow=False,
                                    bootstrap_resamples=200))
    summary = result.summary
    assert summary["runs"]["kept"] == 4 and summary["runs"]["tuning"] == 3
    assert summary["runs"]["reference"] == 1
    assert {m: t["values"] for m, t in summary["tuned_settings"].items()} == {
        "traditional": {"lr": GOOD_LR}, "sb": {"lr": GOOD_LR}}
    assert result.table_text.startswith("tuned settings")
    (tuning_figure,) = [f for f in result.figures if f.path.name == "tuning.png"]
    assert {label: data["chosen"] for label, data in tuning_figure.data.items()} == {
        "Traditional": [GOOD_LR], "SB beta=2": [GOOD_LR]}
    assert all("reference" in w["target_source"] for w in summary["workloads"])
    assert not any(c["baseline_mismatch"] for c in summary["comparisons"])


def test_an_ablation_adopts_each_methods_choice_from_another_study(tmp_path, data_dir,
                                                                   tracking_uri):
    """`tuning: {from_study, adopt}`: each method at the value its timed runs in that study
    carry (here different per method), read before anything runs."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.create_experiment("sbbench")
    chosen = {"traditional": 0.2, "sb": 0.05}
    for method, lr in chosen.items():
        run = client.create_run(experiment, tags={
            "sbbench.study": "source", "sbbench.stage": "timing", "sbbench.method": method,
            "sbbench.tuned_values": json.dumps({"lr": lr})})
        client.log_param(run.info.run_id, "method", method)
        client.set_terminated(run.info.run_id)
    ablation = write_study(tmp_path, data_dir, name="ablation",
                           workload={**longer_workload(data_dir), "train_size": 600,
                                     "epochs": 1, "eval_every_examples": 200},
                           grid={"method": ["traditional", "sb"], "beta": [1, 3]}, seeds=[5, 6],
                           tuning={"from_study": "source", "adopt": ["lr"]})
    assert main(sweep_args(ablation, tracking_uri, tmp_path / "ablation.journal")) == 0
    adopted = [r for r in all_runs(tracking_uri) if r.data.tags.get("sbbench.study") ==
               "ablation" and "sbbench.trial" in r.data.tags]
    assert len(adopted) == 6  # (traditional, sb beta 1, sb beta 3) x 2 seeds
    for run in adopted:
        lr = chosen[run.data.params["method"]]
        assert run.info.status == "FINISHED"
        assert float(run.data.params["lr"]) == lr
        assert run.data.tags["sbbench.stage"] == "timing"
        assert json.loads(run.data.tags["sbbench.tuned_values"]) == {"lr": lr}
        assert run.data.tags["sbbench.tuned_from"] == ("adopted from the tuning stage of study "
                                                       "source")


def _kill_when(process: subprocess.Popen, storage: Path, ready, timeout_s: float = 240) -> set:
    """SIGKILL the whole sweep (coordinator, fork server, trial) once `ready(trials)`; the
    points that had finished by then."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.3)
        try:
            trials = load(storage).get_trials()
        except Exception:  # noqa: BLE001 - the study is not created yet
            continue
        if ready(trials):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
            return {t.user_attrs["sbbench_point"] for t in load(storage).get_trials()
                    if t.state.name == "COMPLETE"}
    process.kill()
    raise AssertionError("the sweep never reached the state to kill it in")


@pytest.mark.parametrize("stage", ["tuning", "timing"])
def test_resume_after_a_kill_in_either_stage_reruns_nothing_finished(tmp_path, data_dir,
                                                                     tracking_uri, stage):
    study_file = two_stage_study(tmp_path, data_dir, workload=longer_workload(data_dir))
    storage = tmp_path / "two.journal"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    sweep = subprocess.Popen([sys.executable, "-m", "sbbench.cli",
                              *sweep_args(study_file, tracking_uri, storage)],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    seeds = TUNING_SEEDS if stage == "tuning" else TIMING_SEEDS

    def ready(trials) -> bool:  # one point of the stage finished, another one running
        return any(p["seed"] in seeds for p in points_of(trials)) and any(
            p["seed"] in seeds for p in points_of(trials, "RUNNING"))

    finished_before = _kill_when(sweep, storage, ready)
    assert main(sweep_args(study_file, tracking_uri, storage)) == 0
    trials = load(storage).get_trials()
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    keys = [t.user_attrs["sbbench_point"] for t in complete]
    assert len(keys) == len(set(keys)) == 8  # every point once
    assert finished_before <= set(keys)
    # The finished points kept their first trial: one FINISHED run per point, none re-ran.
    finished_runs = [r for r in all_runs(tracking_uri) if "sbbench.trial" in r.data.tags
                     and r.info.status == "FINISHED"]
    assert len(finished_runs) == 8
    assert not [r for r in all_runs(tracking_uri) if r.info.status == "RUNNING"]
    timing = [json.loads(k) for k in keys if json.loads(k)["seed"] in TIMING_SEEDS]
    assert {p["lr"] for p in timing} == {GOOD_LR}


@pytest.mark.parametrize("tuning, field", [
    ({"grid": {"lr": [0.1]}, "seeds": [0]}, "tuning.seeds"),          # a timed seed
    ({"grid": {"dataset": ["mnist1d"]}, "seeds": [100]}, "tuning.grid.dataset"),
    ({"grid": {"lr": []}, "seeds": [100]}, "tuning.grid.lr"),
    ({"grid": {"lr": [0.1]}, "seeds": [100], "criterion": "fastest"}, "tuning.criterion"),
    ({"grid": {"lr": [0.1]}, "seeds": [100], "criterion": "time_to_target"},
     "tuning.target_error"),
    ({"grid": {"lr": [0.1]}, "seeds": [100], "budget": 3}, "tuning.budget"),
    ({"grid": {"lr": [0.1]}, "seeds": [100], "methods": {"kath18": {"lr": [0.1]}}},
     "tuning.methods.kath18"),
    ({"grid": {"lr": [0.1]}, "seeds": [100], "epochs": 7}, "tuning.epochs"),  # factor targets
    ({"from_study": "two", "adopt": ["lr"], "seeds": [100]}, "tuning.seeds"),
    ({"from_study": "two", "adopt": ["dataset"]}, "tuning.adopt"),
    ({"from_study": "never-ran", "adopt": ["lr"]}, "tuning.from_study"),  # found at start
])
def test_a_malformed_tuning_section_fails_before_any_run(tmp_path, data_dir, tracking_uri,
                                                         capsys, tuning, field):
    study_file = write_study(tmp_path, data_dir, name="two", seeds=TIMING_SEEDS,
                             objective={"kind": "time_to_target", "target_factor": 1.4},
                             tuning=tuning)
    if tuning.get("from_study") != "never-ran":
        with pytest.raises(StudyError, match=rf"invalid {field}="):
            load_study(study_file)
    assert main(sweep_args(study_file, tracking_uri, tmp_path / "two.journal")) == 2
    # (MLflow's own INFO lines when it creates the empty store are not ours)
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if "INFO mlflow." not in line]
    assert len(err) == 1 and field in err[0] and "allowed" in err[0]
    assert not all_runs(tracking_uri)
    assert not (tmp_path / "two.journal").exists()
