"""`sbbench sweep`: run (or resume) an Optuna study of tracked training runs."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from sbbench.tracking import TrackingOptions
from sbbench.urls import mask_url

DEFAULT_STUDY = "studies/smoke.yaml"


def _positive_int_or_zero(text: str) -> int:
    # MLflow project parameters of type float arrive as "2.0".
    value = float(text)
    if value < 0 or not value.is_integer():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return int(value)


AUTO = "auto"


def _workers(text: str) -> str | int:
    """`auto` or a whole number >= 1 (MLflow project parameters of type float arrive as "2.0")."""
    if text.strip().lower() == AUTO:
        return AUTO
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 1 or not value.is_integer():
        raise argparse.ArgumentTypeError(f"{text!r} is neither auto nor a whole number >= 1")
    return int(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", default=DEFAULT_STUDY, help="study YAML file "
                        f"(default: {DEFAULT_STUDY})")
    parser.add_argument("--storage", default=None, help="Optuna storage: local (a journal file "
                        "under .sbbench/optuna/; the default unless $SBBENCH_STORAGE is set), "
                        "journal:PATH, postgresql://USER@HOST/DB (several machines), mysql://...")
    parser.add_argument("--workers", type=_workers, default=AUTO,
                        help="local worker processes, or auto (the default): one per GPU when "
                        "the study trains on CUDA, else one per CPU core this process may use "
                        "(each trial then trains on one thread), never more than the trials")
    parser.add_argument("--devices", default=None, help="one worker per listed device, each "
                        "seeing only its own: e.g. cuda:0,cuda:1,cuda:2,cuda:3 (or cpu,cpu); "
                        "replaces --workers")
    parser.add_argument("--join", action="store_true", help="add this machine's workers to a "
                        "study another machine created (same --storage, --tracking-uri and study "
                        "file); never creates or changes the study")
    parser.add_argument("--join-timeout", type=float, default=300.0, help="seconds a --join "
                        "waits for the study and its parent run to appear (default: 300)")
    parser.add_argument("--n-trials", type=_positive_int_or_zero, default=0,
                        help="trials to run (0: the study's own count / the whole grid)")
    parser.add_argument("--study-name", default=None, help="override the study's name")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI")
    parser.add_argument("--experiment", default=None, help="MLflow experiment")
    parser.add_argument("--out", default=None, help="analysis output folder "
                        "(default: sbbench-out/<study>)")
    parser.add_argument("--no-analyze", action="store_true", help="skip the analysis at the end")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    from sbbench import stop_signals
    from sbbench.sweep.coordinator import Coordinator, SweepOptions
    from sbbench.sweep.study import load_study

    spec = load_study(args.study)
    devices = parse_devices(args.devices)
    if not devices and args.workers == AUTO:
        devices, workers = auto_workers(spec, args.n_trials or spec.total_trials)
    else:
        workers = len(devices) if devices else args.workers
    options = SweepOptions(storage=args.storage or None, workers=workers, devices=devices,
                           join=args.join, join_timeout_s=args.join_timeout,
                           n_trials=args.n_trials or None, study_name=args.study_name,
                           tracking=TrackingOptions(args.tracking_uri, args.experiment),
                           progress=not args.no_progress)
    coordinator = Coordinator(spec, options)
    result = coordinator.run()
    stop_signals.raise_if_requested()
    if not args.no_analyze and not args.join:  # the machine that created the study analyses
        _analyze(result, spec, args)
        stop_signals.raise_if_requested()  # a Ctrl-C during the analysis is not a success
    print(f"MLflow UI: mlflow ui --backend-store-uri {mask_url(result.tracking_uri)}")
    print(closing_line(result, time.monotonic() - started, workers))
    return 0


def auto_workers(spec, trials: int) -> tuple[list[str], int]:
    """(devices, workers) for `--workers auto`: a study that trains on CUDA gets one worker per
    visible GPU, each seeing only its own; otherwise one worker per usable CPU core (taskset,
    a Slurm or container cpuset), each trial then on one thread. Never more workers than trials.
    Concurrent trials share the machine's caches and memory bandwidth; `--workers 1` measures
    each run with nothing of the sweep beside it (docs/performance.md, sweep throughput)."""
    device = str(spec.base.get("device", "auto"))
    wanted = max(1, trials)
    if device.startswith("cuda:"):      # the study pins one GPU: one worker on it
        return [], 1
    if device in ("auto", "cuda"):
        import torch

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if gpus:
            count = min(gpus, wanted)
            return [f"cuda:{i}" for i in range(count)], count
        if device == "cuda":            # no GPU here: the run says so, on one worker
            return [], 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)
    return [], max(1, min(usable, wanted))


def parse_devices(text: str | None) -> list[str]:
    """`cuda:0,cuda:1` -> ["cuda:0", "cuda:1"]; each entry cpu or cuda:N, no CUDA index twice."""
    from sbbench.sweep.study import StudyError

    if not text:
        return []
    devices = [d.strip() for d in text.split(",") if d.strip()]
    allowed = "a comma-separated list of cpu or cuda:N, e.g. cuda:0,cuda:1"
    for device in devices:
        if device != "cpu" and not (device.startswith("cuda:") and device[5:].isdigit()):
            raise StudyError("--devices", "devices", text, allowed)
    cuda = [d for d in devices if d != "cpu"]
    if len(set(cuda)) != len(cuda) or not devices:
        raise StudyError("--devices", "devices", text, allowed + ", each GPU once")
    from sbbench.sweep.worker_pool import device_settings

    for device in cuda:  # each must exist among the GPUs this process may use
        device_settings(device, os.environ.get("CUDA_VISIBLE_DEVICES"))
    return devices


def closing_line(result, wall_s: float, workers: int) -> str:
    """What ran, and how much of the user's wait was the training being measured: the trials'
    training clocks against the command's wall time (times the workers sharing it)."""
    counts = ", ".join(f"{v} {k}" for k, v in result.counts.items())
    line = (f"sweep {result.study_name}: {counts} in {wall_s:.0f} s "
            f"(parent run {result.parent_run_id}, storage {mask_url(result.storage_url)})")
    if result.trials_run:
        share = result.train_clock_s / max(1e-9, wall_s * workers)
        per_worker = f" x {workers} workers" if workers > 1 else ""
        line += (f"; training clock {result.train_clock_s:.0f} s over {result.trials_run} "
                 f"trial(s) = {share:.0%} of the wall time{per_worker}")
    return line


def _analyze(result, spec, args: argparse.Namespace) -> None:
    """The analysis of this study's runs, when the analysis package is installed."""
    try:
        from sbbench.analysis import AnalyzeOptions, analyze
        from sbbench.analysis.api import DEFAULT_TARGET_FACTOR, factors_with_primary
    except ImportError:
        print("(analysis not available in this installation: skipped)", file=sys.stderr)
        return
    out = args.out or f"sbbench-out/{result.study_name}"
    # The paper's rule (or the study's own factor) as the primary target, the tight default
    # beside it, plus the study's absolute target when it has one: conclusions often flip
    # with the threshold (docs/analysis.md).
    objective = spec.objective
    factor = objective.target_factor or DEFAULT_TARGET_FACTOR
    targets = dict(target_factors=factors_with_primary(factor), factor_with_absolute=True,
                   target_errors=(() if objective.target_error is None else (objective.target_error,)))
    if result.all_trials_under_parent:
        # The analysis run becomes one more child of the sweep's parent.
        options = AnalyzeOptions(experiment=None, parent_run_id=result.parent_run_id,
                                 tracking_uri=result.tracking_uri, out_dir=out, **targets)
    else:
        # Resumed under another `mlflow run` (a new parent): find the trials by study tag.
        options = AnalyzeOptions(experiment=result.experiment_name, study=result.study_name,
                                 tracking_uri=result.tracking_uri, out_dir=out, **targets)
    print(f"sbbench sweep: analysing the runs of {result.study_name} ...", file=sys.stderr,
          flush=True)
    try:
        analysis = analyze(options)
    except Exception as err:  # the sweep's runs are safe; the analysis can be re-run alone
        print(f"sbbench sweep: analysis failed ({type(err).__name__}: "
              f"{str(err).splitlines()[0] if str(err) else ''}); re-run it with "
              f"`sbbench analyze --parent-run {result.parent_run_id}`", file=sys.stderr)
        return
    print(analysis.table_text)
    for path in analysis.report_paths:
        print(f"report: {Path(path).resolve()}")
    _describe_parent(result, analysis)


def _describe_parent(result, analysis) -> None:
    """The verdict where a user first looks in the MLflow UI: the parent run's description."""
    from sbbench.analysis.headline import NOTE_TAG, parent_note
    from sbbench.tracking import get_client

    client = get_client(result.tracking_uri)
    experiment_id = client.get_run(result.parent_run_id).info.experiment_id
    note = parent_note(analysis.summary, result.study_name, analysis.analysis_run_id,
                       experiment_id)
    client.set_tag(result.parent_run_id, NOTE_TAG, note[:MAX_NOTE_CHARS])


MAX_NOTE_CHARS = 7500  # MLflow's tag value limit is 8000
