"""Planted studies for `sbbench verdict`: sweep parent runs with child training runs written
straight into a temporary sqlite MLflow store (the helpers of tests/analysis/conftest.py), with
known truths per scenario."""

from __future__ import annotations

import functools
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sbbench import record_names as N
from tests.analysis.conftest import base_params, log_run, traditional_curve


def per_example(seed: int, *, selective: bool, noise: float = 0.0, n: int = 400) -> pd.DataFrame:
    """A per-example table: `selective` backprops high-loss examples more (SB); otherwise the
    count is independent of the loss (Random)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    noisy = np.zeros(n, dtype=bool)
    noisy[rng.choice(n, int(noise * n), replace=False)] = True
    loss = rng.exponential(1.0, n) + 2.0 * noisy
    if selective:
        rank = pd.Series(loss).rank().to_numpy() / n
        backpropped = 1 + np.round(4 * rank ** 2).astype(int) + rng.integers(0, 2, n)
    else:
        backpropped = 1 + rng.integers(0, 3, n)
    return pd.DataFrame({"id": np.arange(n), "label": labels, "clean_label": labels,
                         "is_noisy": noisy, "times_scored": 8, "times_backpropped": backpropped,
                         "last_loss": loss})


def sweep_parent(client, experiment_id: str, study: str) -> str:
    run = client.create_run(experiment_id, run_name=f"sweep-{study}",
                            tags={N.TAG_KIND: "sweep", N.TAG_STUDY: study})
    return run.info.run_id


def plant_study(client, experiment_id: str, root: Path, study: str, arms: dict,
                *, seeds: int = 8, noise: float = 0.0, tuned: dict | None = None) -> dict:
    """arms: {method: compress} (the Traditional curve run `compress` x faster; seeds offset
    per method so that arms are independent samples). Returns the parent and child run ids."""
    parent = sweep_parent(client, experiment_id, study)
    ids: dict[str, list[str]] = {}
    for offset, (method, compress) in enumerate(arms.items()):
        for seed in range(seeds):
            tags = {N.TAG_PARENT: parent, N.TAG_STUDY: study, N.TAG_STAGE: N.STAGE_TIMING}
            if tuned and method in tuned:
                tags[N.TAG_TUNED_VALUES] = tuned[method]
                tags[N.TAG_TUNED_FROM] = "tuning stage: best median final validation error"
            table = None
            if method in ("sb", "random"):
                table = per_example(100 * offset + seed, selective=method == "sb", noise=noise)
            curve_seed = seed + 37 * offset
            ids.setdefault(method, []).append(log_run(
                client, experiment_id, method=method, seed=seed, tags=tags,
                curve=traditional_curve(curve_seed, compress=compress,
                                        keep=1.0 if method == "traditional" else 1 / 3,
                                        select_forwards=method != "traditional"),
                params=base_params(method, seed, label_noise=noise, num_threads=1),
                per_example=table, tmp=root / "artifacts-src"))
    client.set_terminated(parent)
    return {"parent": parent, "ids": ids}


def new_store(root: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    return uri, client


def experiment(client, root: Path, name: str) -> str:
    return client.create_experiment(name, artifact_location=(root / f"artifacts-{name}").as_uri())


FIVE = ("traditional", "random", "sb", "stale_sb", "kath18")


@pytest.fixture(scope="session")
def planted(tmp_path_factory) -> dict:
    """Three experiments in one store, 8 seeds per arm:
    - 'fast': SB 2x and StaleSB 4x faster than Traditional, Katharopoulos18 and Random as fast
      as Traditional; SB backprops high-loss examples more, Random does not; plus a
      label_noise study (0% and 10%, 5 seeds) where SB is 2x faster;
    - 'equal': Traditional, SB, StaleSB and Katharopoulos18 all as fast (independent seeds);
    - 'slower': SB 2x slower than Traditional and Katharopoulos18.
    """
    root = tmp_path_factory.mktemp("verdict-store")
    uri, client = new_store(root)
    out = {"uri": uri, "root": root}
    exp = experiment(client, root, "fast")
    out["fast"] = {"mnist1d": plant_study(
        client, exp, root, "mnist1d",
        {"traditional": 1.0, "random": 1.0, "sb": 2.0, "stale_sb": 4.0, "kath18": 1.0},
        tuned={"sb": '{"lr": 0.1}', "stale_sb": '{"lr": 0.2}'})}
    noise_parent = sweep_parent(client, exp, "label_noise")
    noise_ids = []
    arms = {0.0: (("traditional", 1.0), ("sb", 2.0)),
            0.1: (("traditional", 1.0), ("sb", 2.0), ("random", 1.0))}
    for noise, methods in arms.items():
        for offset, (method, compress) in enumerate(methods):
            for seed in range(5):
                noise_ids.append(log_run(
                    client, exp, method=method, seed=seed,
                    tags={N.TAG_PARENT: noise_parent, N.TAG_STUDY: "label_noise"},
                    curve=traditional_curve(seed + 11 * offset, compress=compress,
                                            keep=1.0 if method == "traditional" else 1 / 3,
                                            select_forwards=method != "traditional"),
                    params=base_params(method, seed, label_noise=noise),
                    per_example=None if method == "traditional" else per_example(
                        seed + 50 * offset, selective=method == "sb", noise=noise),
                    tmp=root / "artifacts-src"))
    client.set_terminated(noise_parent)
    out["fast"]["label_noise"] = {"parent": noise_parent, "ids": {"all": noise_ids}}
    exp = experiment(client, root, "equal")
    out["equal"] = {"mnist1d": plant_study(
        client, exp, root, "mnist1d",
        {"traditional": 1.0, "sb": 1.0, "stale_sb": 1.0, "kath18": 1.0})}
    exp = experiment(client, root, "slower")
    out["slower"] = {"mnist1d": plant_study(
        client, exp, root, "mnist1d", {"traditional": 1.0, "sb": 0.5, "kath18": 1.0})}
    return out


@contextmanager
def quick_figures():
    """The analysis' error-curve figures with 20 bootstrap resamples for their bands instead of
    1,000 (their medians, and every number the verdict reads, are unchanged): the bands are
    most of an analysis' time."""
    from sbbench.analysis import figures as F

    with pytest.MonkeyPatch.context() as patch:
        for name in ("error_vs_time", "error_vs_examples_backpropped"):
            patch.setattr(F, name, functools.partial(getattr(F, name), n_boot=20))
        yield


@pytest.fixture(scope="session")
def verdicts(planted, tmp_path_factory) -> dict:
    """`verdict` on each scenario (199 bootstrap resamples), written to <tmp>/<scenario>/docs/
    results.md."""
    from sbbench.verdict import VerdictOptions, verdict

    out = {}
    with quick_figures():
        for scenario in ("fast", "equal", "slower"):
            root = tmp_path_factory.mktemp(f"verdict-{scenario}")
            out[scenario] = verdict(VerdictOptions(
                tracking_uri=planted["uri"], experiment=scenario,
                out=str(root / "docs" / "results.md"), work_dir=str(root / "work"),
                resamples=199))
    return out
