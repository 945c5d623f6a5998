"""`sbbench train`: one tracked training run."""

from __future__ import annotations

import argparse
import sys

from sbbench.commands.config_flags import add_config_arguments, config_from_args
from sbbench.tracking import TrackingOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    tracking = parser.add_argument_group("tracking")
    tracking.add_argument("--tracking-uri", default=None,
                          help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or "
                          "sqlite:///mlflow.db in the working directory)")
    tracking.add_argument("--experiment", default=None,
                          help="MLflow experiment (default: sbbench, or the mlflow run one)")
    tracking.add_argument("--run-name", default=None, help="MLflow run name")
    tracking.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from sbbench.train.errors import RunDiverged
    from sbbench.train.run import execute_run

    config = config_from_args(args)
    options = TrackingOptions(tracking_uri=args.tracking_uri, experiment=args.experiment)
    try:
        result = execute_run(config, options, run_name=args.run_name,
                             progress=not args.no_progress)
    except RunDiverged as err:
        print(f"sbbench train: run diverged and was recorded as FAILED: {err}", file=sys.stderr)
        return 1
    final = result.outcome.final
    print(f"run {result.run_id}: {config.method} on {config.dataset} "
          f"({config.resolved_model}), {final['total_epochs']:.2f} epochs, "
          f"training clock {final['total_train_time_s']:.1f} s, "
          f"keep rate {final['overall_keep_rate']:.3f}, "
          f"final val error {final['final_val_error']:.2%}, "
          f"final test error {final['final_test_error']:.2%} "
          f"(stopped by {result.outcome.stop_reason})")
    return 0
