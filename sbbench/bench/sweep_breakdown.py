"""`sbbench bench --sweep`: where a sweep's wall time goes.

Runs a study exactly as a user would (`python -m sbbench.cli sweep`, in a fresh folder with its
own tracking store and Optuna journal, so nothing is cached but the dataset), then reads back what
the run left: each trial's training clock and loop wall time (MLflow), each trial's launch,
start and end times (the trial's `timing` attribute), and the closing analysis run. The parts:

- training clock: what the harness measures (sum over trials);
- evaluation and in-loop logging: each run's loop wall time minus its training clock;
- trial process start: from the coordinator's launch to the trial's first line of code;
- run setup, tracking and artifacts: the rest of each trial's process life (data, model, MLflow
  run, per-example table, figure, Optuna);
- coordinator: the sweep's own work between and around trials (recovery, asking, polling);
- command start: interpreter, imports, store checks, parent run, up to the first launch;
- closing analysis: the analysis child run and the report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

PARTS = ("training clock", "evaluation and in-loop logging", "trial process start",
         "run setup, tracking and artifacts", "coordinator between trials", "command start",
         "closing analysis", "exit and the rest")


@dataclass
class SweepBreakdown:
    study: str
    workers: int
    trials: int
    wall_s: float
    parts_s: dict[str, float] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)

    @property
    def training_share(self) -> float:
        return self.parts_s["training clock"] / max(1e-9, self.wall_s * self.workers)

    def to_dict(self) -> dict:
        return {"study": self.study, "workers": self.workers, "trials": self.trials,
                "wall_s": self.wall_s, "parts_s": self.parts_s,
                "training_share": self.training_share, "command": self.command}


def run_sweep_breakdown(study: str, workers: int = 1, data_dir: str | None = None,
                        keep_dir: str | None = None,
                        workers_flag: str | None = None) -> SweepBreakdown:
    """Run `study` in a fresh folder (the dataset cache in `data_dir` is reused when given) and
    break its wall time down. `workers`: how many ran (the shares divide by it); `workers_flag`:
    what `--workers` says on the sweep's command line (default: that number; `auto` resolves
    to it, and on GPUs also gives each worker its own device)."""
    study_path = Path(study).resolve()
    folder = Path(keep_dir or tempfile.mkdtemp(prefix="sbbench-bench-sweep-")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    if data_dir:
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        link = folder / "data"
        if not link.exists():
            link.symlink_to(Path(data_dir).resolve())
    tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
    command = [sys.executable, "-m", "sbbench.cli", "sweep", "--study", str(study_path),
               "--workers", workers_flag or str(workers), "--tracking-uri", tracking_uri, "--no-progress"]
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_TRACKING_URI")}
    started = time.time()
    completed = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
    ended = time.time()
    if completed.returncode != 0:
        raise RuntimeError(f"the sweep failed (exit {completed.returncode}):\n"
                           f"{completed.stderr[-3000:]}")
    return breakdown_from_store(folder, tracking_uri, started, ended, workers, command)


def breakdown_from_store(folder: Path, tracking_uri: str, started: float, ended: float,
                         workers: int, command: list[str]) -> SweepBreakdown:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("sbbench")
    runs = client.search_runs([experiment.experiment_id], max_results=5000)
    sweep_run = next(r for r in runs if r.data.tags.get("sbbench.kind") == "sweep")
    study_name = sweep_run.data.tags["sbbench.study"]
    trial_runs = [r for r in runs if "sbbench.trial" in r.data.tags]
    analysis_runs = [r for r in runs if r.data.tags.get("sbbench.kind") == "analysis"]
    timings = _trial_timings(folder, study_name)

    train_clock = sum(r.data.metrics.get("total_train_time_s", 0.0) for r in trial_runs)
    loop_wall = sum(r.data.metrics.get("total_wall_time_s", 0.0) for r in trial_runs)
    process_start = sum(t["entered_at"] - t["launched_at"] for t in timings)
    trial_life = sum(t["ended_at"] - t["entered_at"] for t in timings)
    first_launch = min((t["launched_at"] for t in timings), default=started)
    last_end = max((t["ended_at"] for t in timings), default=started)
    # The analysis computes before it creates its run: count from the last trial's end to the
    # analysis run's end (the sweep's own closing bookkeeping is in there too, a few ms).
    analysis_end = max((r.info.end_time / 1000 for r in analysis_runs if r.info.end_time),
                       default=None)
    wall = ended - started
    last_trial_end = max((r.info.end_time / 1000 for r in trial_runs if r.info.end_time),
                         default=started)
    analysis = (analysis_end - last_trial_end) if analysis_end else 0.0
    if not timings:  # a sweep from before trials recorded their timing: fewer, coarser parts
        outside = wall - loop_wall - analysis
        parts = {"training clock": train_clock,
                 "evaluation and in-loop logging": loop_wall - train_clock,
                 "outside the training loop (start, setup, tracking, coordinator)": outside,
                 "closing analysis": analysis}
        return SweepBreakdown(study_name, workers, len(trial_runs), wall, parts, command)
    # With several workers trials overlap: the coordinator's share is the sweep phase's
    # worker-seconds not spent inside a trial process.
    trial_seconds = process_start + trial_life
    parts = {
        "training clock": train_clock,
        "evaluation and in-loop logging": loop_wall - train_clock,
        "trial process start": process_start,
        "run setup, tracking and artifacts": trial_life - loop_wall,
        "coordinator between trials": max(0.0, (last_end - first_launch) * workers
                                          - trial_seconds) / workers,
        "command start": first_launch - started,
        "closing analysis": analysis,
    }
    parts["exit and the rest"] = (ended - last_end) - analysis
    if not analysis_end:
        parts["closing analysis"] = 0.0
    return SweepBreakdown(study_name, workers, len(trial_runs), wall, parts, command)


def _trial_timings(folder: Path, study_name: str) -> list[dict]:
    import optuna

    from sbbench.sweep.storage import open_storage

    journal = folder / ".sbbench" / "optuna" / f"{study_name}.journal"
    study = optuna.load_study(study_name=study_name, storage=open_storage(f"journal:{journal}"))
    return [t.user_attrs["timing"] for t in study.get_trials()
            if isinstance(t.user_attrs.get("timing"), dict)
            and t.user_attrs["timing"].get("launched_at") is not None]


def format_breakdown(result: SweepBreakdown) -> str:
    per_worker = f" x {result.workers} workers" if result.workers > 1 else ""
    lines = [f"sweep {result.study}: {result.trials} trials, {result.workers} worker(s), "
             f"wall {result.wall_s:.1f} s",
             f"{'part':<38} {'seconds':>9} {'share of wall' + per_worker:>18}",
             f"{'-' * 38} {'-' * 9} {'-' * 18}"]
    for name, seconds in result.parts_s.items():
        share = seconds / max(1e-9, result.wall_s * (result.workers if name in PARTS[:4]
                                                      else 1))
        lines.append(f"{name:<38} {seconds:>9.1f} {share:>17.1%}")
    lines.append(f"{'wall (the command, end to end)':<38} {result.wall_s:>9.1f} {1:>17.1%}")
    lines.append(f"training clock / wall{per_worker}: {result.training_share:.1%}")
    return "\n".join(lines)


def write_breakdown_json(result: SweepBreakdown, path: str) -> None:
    Path(path).write_text(json.dumps(result.to_dict(), indent=2))
