"""Write tiny study files for the sweep tests."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.conftest import TINY_WORKLOAD


def write_study(directory: Path, data_dir: str, name: str = "tiny", **overrides) -> Path:
    workload = {k: v for k, v in TINY_WORKLOAD.items() if k not in ("num_threads",)}
    study = {
        "name": name,
        "sampler": "grid",
        "workload": {**workload, "data_dir": data_dir, "epochs": 1},
        "grid": {"method": ["traditional", "sb"], "beta": [2]},
        "seeds": [0, 1],
        "objective": {"kind": "time_to_target", "target_error": 0.8},
    }
    study.update(overrides)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def longer_workload(data_dir: str) -> dict:
    """Trials long enough (several seconds) to interrupt one mid-run."""
    return {"dataset": "mnist1d", "train_size": 3000, "val_size": 200, "test_size": 200,
            "epochs": 4, "eval_every_examples": 1000, "batch_size": 50, "device": "cpu",
            "data_dir": data_dir}


def sweep_args(study: Path, tracking_uri: str, storage: Path, *extra: str) -> list[str]:
    # One worker unless a test asks for more: these tests count runs and orders, and the
    # default (--workers auto) would depend on the test machine's cores.
    workers = [] if "--workers" in extra else ["--workers", "1"]
    return ["sweep", "--study", str(study), "--tracking-uri", tracking_uri,
            "--storage", f"journal:{storage}", "--no-analyze", "--no-progress", *workers, *extra]
