"""A synthetic MLflow store with known truths, written straight through MlflowClient.

Workload A (mnist1d/cnn, no label noise), 8 seeds per arm unless said otherwise:
- traditional: val_error(t) = 0.02 + 0.5 exp(-t / tau_seed), 20 evaluations, 1 s apart (jittered)
- sb:         the same curves with the training clock compressed 2x -> true speedup exactly 2
- stale_sb:   never gets below 0.3 (never reaches the target); 2 of its 8 runs DIVERGED (FAILED,
              failure_kind=diverged, curve cut short) -> success 0/8, n = 8
- kath18:     4 seeds, the Traditional curves compressed 1.25x
- plus: one crashed sb run (error: excluded), one pruned sb trial (censored), one analysis run and
  one sweep-parent run (both ignored).
Workload B (label_noise 0.1): 3 traditional vs 3 sb (compressed 2x) -> underpowered, with
per_example.csv.gz artifacts in which noisy examples are backpropped 3x as often: each example is
scored 8 times and backpropped 1-2 times (clean) or 3-6 times (noisy), so its selection
probability is 1.5/8 on average when clean and 4.5/8 when noisy, and noisy examples have higher
losses.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

EVALS = 20
EVAL_EVERY = 10_000
TRAIN_SIZE = 50_000


def base_params(method: str, seed: int, **overrides) -> dict[str, str]:
    params = {
        "method": method, "dataset": "mnist1d", "model": "mnist1d_cnn", "beta": "3.0",
        "staleness": "3", "batch_size": "128", "lr": "0.05", "epochs": "4.0",
        "time_budget_s": "None", "label_noise": "0.0", "seed": str(seed),
        "eval_every_examples": str(EVAL_EVERY), "prime_epochs": "1", "history_size": "1024",
        "p_min": "0.0", "score_mode": "eval", "kath_presample_ratio": "3", "kath_score": "gnorm",
        "kath_weighting": "reweighted", "kath_tau_momentum": "0.9", "momentum": "0.9",
        "weight_decay": "0.0005", "nesterov": "True", "lr_milestones": "", "lr_gamma": "0.1",
        "lr_schedule_unit": "examples_seen", "train_size": "None", "val_size": "None",
        "test_size": "None", "amp": "False", "device": "cpu", "data_dir": "data",
        "download": "False", "num_threads": "None", "partial_batch": "flush",
        "forward_batch_size": "None", "target_val_error": "None",
    }
    params.update({k: str(v) for k, v in overrides.items()})
    return params


def traditional_curve(seed: int, *, compress: float = 1.0, floor: float = 0.02,
                      keep: float = 1.0, select_forwards: bool = False,
                      evals: int = EVALS) -> list[dict[str, float]]:
    rng = np.random.default_rng(1000 + seed)
    tau = 3.0 * float(rng.lognormal(0.0, 0.15))
    dt = 1.0 * float(rng.lognormal(0.0, 0.03))
    rows = []
    for k in range(1, evals + 1):
        t = k * dt
        seen = k * EVAL_EVERY
        backpropped = int(seen * keep)
        val = floor + 0.5 * math.exp(-t / tau) + float(rng.normal(0, 0.0005))
        test = val + 0.001
        time_s = t / compress
        fwd_sel = 0.15 * time_s if select_forwards else 0.0
        rows.append({"val_error": val, "test_error": test, "train_loss": val * 3,
                     "train_time_s": time_s, "examples_seen": seen,
                     "examples_backpropped": backpropped,
                     "selection_forwards": seen if select_forwards else 0,
                     "optimizer_steps": backpropped // 128, "keep_rate": keep,
                     "time_forward_select_s": fwd_sel,
                     "time_forward_train_s": 0.3 * (time_s - fwd_sel),
                     "time_backward_s": 0.5 * (time_s - fwd_sel),
                     "time_other_s": 0.2 * (time_s - fwd_sel)})
    return rows


def log_run(client, experiment_id: str, *, method: str, seed: int, curve: list[dict],
            status: str = "FINISHED", tags: dict | None = None, params: dict | None = None,
            final: bool = True, per_example: pd.DataFrame | None = None,
            tmp: Path | None = None) -> str:
    from mlflow.entities import Metric, Param

    run_tags = {"sbbench.method": method, "sbbench.dataset": "mnist1d",
                "sbbench.model": "mnist1d_cnn", **(tags or {})}
    run = client.create_run(experiment_id, run_name=f"{method}-s{seed}", tags=run_tags)
    run_id = run.info.run_id
    p = params or base_params(method, seed)
    client.log_batch(run_id, params=[Param(k, v) for k, v in p.items()])
    metrics = []
    for i, row in enumerate(curve):
        step = int(row["examples_seen"])
        metrics += [Metric(k, float(v), 1_700_000_000_000 + i, step) for k, v in row.items()]
    if final and curve:
        last = curve[-1]
        for key, value in {"final_val_error": last["val_error"],
                           "final_test_error": last["test_error"],
                           "total_train_time_s": last["train_time_s"],
                           "total_examples_backpropped": last["examples_backpropped"],
                           "total_selection_forwards": last["selection_forwards"],
                           "total_examples_seen": last["examples_seen"]}.items():
            metrics.append(Metric(key, float(value), 1_700_000_100_000, 0))
    for start in range(0, len(metrics), 900):
        client.log_batch(run_id, metrics=metrics[start:start + 900])
    if per_example is not None and tmp is not None:
        directory = tmp / run_id
        directory.mkdir(parents=True)
        per_example.to_csv(directory / "per_example.csv.gz", index=False, compression="gzip")
        client.log_artifact(run_id, str(directory / "per_example.csv.gz"))
    client.set_terminated(run_id, status=status)
    return run_id


def per_example_table(seed: int, n: int = 400, noise: float = 0.1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    noisy = np.zeros(n, dtype=bool)
    noisy[rng.choice(n, int(noise * n), replace=False)] = True
    backpropped = np.where(noisy, 3, 1) * rng.integers(1, 3, n)
    return pd.DataFrame({"id": np.arange(n), "label": labels, "clean_label": labels,
                         "is_noisy": noisy, "times_scored": 8, "times_backpropped": backpropped,
                         "last_loss": rng.exponential(1.0, n) + 2.0 * noisy})


def build_store(root: Path) -> dict:
    from mlflow import MlflowClient

    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("sbbench", artifact_location=(root / "artifacts").as_uri())
    ids: dict[str, list[str]] = {}

    def add(key, run_id):
        ids.setdefault(key, []).append(run_id)

    for seed in range(8):
        add("traditional", log_run(client, exp, method="traditional", seed=seed,
                                   curve=traditional_curve(seed)))
        add("sb", log_run(client, exp, method="sb", seed=seed,
                          curve=traditional_curve(seed, compress=2.0, keep=1 / 3,
                                                  select_forwards=True)))
        never = traditional_curve(seed, floor=0.3, keep=0.25, select_forwards=True,
                                  compress=1.5)
        if seed < 2:
            add("stale_diverged", log_run(
                client, exp, method="stale_sb", seed=seed, curve=never[:5], status="FAILED",
                final=False, tags={"sbbench.failure_kind": "diverged",
                                   "sbbench.failure_reason": "RunDiverged: non-finite loss"}))
        else:
            add("stale_sb", log_run(client, exp, method="stale_sb", seed=seed, curve=never))
    for seed in range(4):
        add("kath18", log_run(client, exp, method="kath18", seed=seed,
                              curve=traditional_curve(seed, compress=1.25, keep=1 / 3,
                                                      select_forwards=True)))
    add("error", log_run(client, exp, method="sb", seed=50, curve=traditional_curve(50)[:3],
                         status="FAILED", final=False,
                         tags={"sbbench.failure_kind": "error",
                               "sbbench.failure_reason": "RuntimeError: boom"}))
    add("pruned", log_run(client, exp, method="sb", seed=51,
                          curve=traditional_curve(51, compress=2.0, keep=1 / 3,
                                                  select_forwards=True)[:4],
                          status="KILLED", final=False, tags={"sbbench.pruned": "true"}))
    # Bookkeeping runs the analysis must not load.
    client.set_terminated(client.create_run(exp, run_name="sweep-parent").info.run_id)
    client.set_terminated(client.create_run(exp, run_name="analysis",
                                            tags={"sbbench.kind": "analysis"}).info.run_id)
    # Workload B: label noise 0.1, 3 vs 3.
    for seed in range(3):
        add("noisy_traditional", log_run(
            client, exp, method="traditional", seed=seed, curve=traditional_curve(seed + 20),
            params=base_params("traditional", seed, label_noise=0.1)))
        add("noisy_sb", log_run(
            client, exp, method="sb", seed=seed,
            curve=traditional_curve(seed + 20, compress=2.0, keep=1 / 3, select_forwards=True),
            params=base_params("sb", seed, label_noise=0.1),
            per_example=per_example_table(seed), tmp=root / "artifacts-src"))
    return {"uri": uri, "experiment_id": exp, "ids": ids}


@pytest.fixture(scope="session")
def synthetic_store(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("store")
    return build_store(root)


@pytest.fixture(scope="session")
def analysed(synthetic_store, tmp_path_factory):
    from sbbench.analysis import AnalyzeOptions, analyze

    out = tmp_path_factory.mktemp("analysis-out")
    options = AnalyzeOptions(tracking_uri=synthetic_store["uri"], out_dir=str(out),
                             bootstrap_resamples=999, seed=0, log_to_mlflow=True)
    return analyze(options)


@pytest.fixture(autouse=True)
def _no_mlflow_env(monkeypatch):
    """An outer `mlflow run` must not redirect these tests to another store or experiment."""
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_TRACKING_URI",
                 "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
