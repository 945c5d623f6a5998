"""`sbbench bench`: the selection core against its theoretical bound, as a printed table."""

from __future__ import annotations

import argparse

from sbbench.commands.config_flags import add_config_arguments, config_from_args
from sbbench.commands.sweep import AUTO, _workers

TTT_METHODS = ("traditional", "sb", "stale_sb", "random", "kath18")
TTT_SEEDS = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="a few minutes: shorter repeats (one epoch), 5 to 40 of them until "
                        "the 95%% CIs are within +-3 points or the time budget is spent")
    parser.add_argument("--json", metavar="FILE", default=None, help="also write JSON here")
    parser.add_argument("--ttt", action="store_true",
                        help="also measure time-to-target speedups over 5 seeds per method "
                        "(tracked runs + the analysis; tens of minutes on a CPU)")
    parser.add_argument("--gap-probe", action="store_true",
                        help="also measure how much slower a training step runs after a pause "
                        "(Traditional, pauses of 0-20 ms; about 2 minutes on the default workload)")
    parser.add_argument("--sweep", metavar="STUDY", nargs="?", const="studies/smoke.yaml",
                        default=None, help="instead: run a study as `sbbench sweep` does, in a "
                        "fresh folder, and print where its wall time goes (default study: "
                        "studies/smoke.yaml)")
    parser.add_argument("--sweep-workers", type=_workers, default="auto", metavar="K",
                        help="workers for --sweep: a number, or auto (the default, as `sbbench "
                        "sweep`: one per usable CPU core, or per GPU)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow store for --ttt runs (default: sqlite:///mlflow.db)")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from sbbench.bench.runner import FULL, QUICK, format_table, log_to_stderr, run_bench, \
        write_json

    config = config_from_args(args)
    if args.sweep:
        return _sweep_breakdown(args, config)
    result = run_bench(config, QUICK if args.quick else FULL, log=log_to_stderr)
    print(format_table(result))
    if args.gap_probe:
        from sbbench.bench.gap_probe import format_gap_table, measure_gap_penalty, \
            predicted_sb_step_excess_s
        from sbbench.bench.measure import load_bench_data

        data = load_bench_data(config)
        # As many no-grad forwards before each step as SB runs between its steps (~1 / s).
        forwards = max(1, round(1 / result["keep_rate"]))
        result["gap_probe"] = measure_gap_penalty(config, data, forwards=forwards,
                                                  progress=log_to_stderr)
        steps = -(-data.num_train // config.batch_size)
        predicted = predicted_sb_step_excess_s(result["gap_probe"], result["keep_rate"], steps)
        result["gap_probe_predicted_sb_step_excess_s"] = predicted
        print(format_gap_table(result["gap_probe"]))
        print(f"  SB's training steps beyond the bound: {predicted:+.3f} s per epoch predicted "
              f"from the {forwards}-forwards row, "
              f"{result['sb_excess_s_per_epoch']['training_steps']:+.3f} s measured")
    if args.ttt:
        result["ttt"] = _time_to_target(config, args.tracking_uri)
    if args.json:
        write_json(result, args.json)
        print(f"JSON: {args.json}")
    return 0


def _sweep_breakdown(args: argparse.Namespace, config) -> int:
    from sbbench.bench.sweep_breakdown import format_breakdown, run_sweep_breakdown, \
        write_breakdown_json

    # The dataset cache is reused (generating MNIST-1D is a one-time cost of a fresh clone);
    # the tracking store, the journal and every process are new.
    workers = args.sweep_workers
    if workers == AUTO:  # resolved here, as the sweep would, so the shares divide by it
        from sbbench.commands.sweep import auto_workers
        from sbbench.sweep.study import load_study

        spec = load_study(args.sweep)
        _, workers = auto_workers(spec, spec.total_trials)
    result = run_sweep_breakdown(args.sweep, workers, data_dir=config.data_dir,
                                 workers_flag=str(args.sweep_workers))
    print(format_breakdown(result))
    if args.json:
        write_breakdown_json(result, args.json)
        print(f"JSON: {args.json}")
    return 0


def _time_to_target(config, tracking_uri: str | None) -> list[dict]:
    """Five seeds per method as child runs of one parent, then the analysis on them."""
    from sbbench import tracking
    from sbbench.analysis import AnalyzeOptions, analyze
    from sbbench.train.errors import RunDiverged
    from sbbench.train.run import execute_run

    options = tracking.TrackingOptions(tracking_uri, "sbbench-bench")
    with tracking.tracked_run(options, run_name="bench-ttt",
                              tags={tracking.TAG_KIND: tracking.KIND_BENCH}) as parent:
        for seed in range(TTT_SEEDS):
            for method in TTT_METHODS:
                try:
                    execute_run(config.replace(method=method, seed=seed), options,
                                parent_run_id=parent.run_id, progress=True)
                except RunDiverged:
                    pass  # recorded FAILED/diverged; the analysis counts it as censored
    analysis = analyze(AnalyzeOptions(experiment="sbbench-bench", parent_run_id=parent.run_id,
                                      tracking_uri=tracking.resolve_tracking_uri(tracking_uri),
                                      out_dir="sbbench-out/bench-ttt"))
    print(analysis.table_text)
    return analysis.summary.get("comparisons", [])
