"""`sbbench nightly [run] | accept RUN_ID | history`: the pinned suite against its history.

Exit codes of `run`: 0 nothing regressed (or the baseline night, or an unconfirmed failure),
1 a confirmed regression, 2 the night could not measure (crash, missing dependency, empty or
partial suite, interrupted, another nightly holding the lock).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from sbbench.nightly.history import DEFAULT_EXPERIMENT, DEFAULT_HISTORY, NightlyInputError
from sbbench.nightly.suite import DEFAULT_SUITE

ACTIONS = ("run", "accept", "history")


def _whole(text: str) -> int:
    value = float(text)   # MLflow project parameters of type float arrive as "30.0"
    if value < 1 or not value.is_integer():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(value)


def _fraction(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", default="run", choices=ACTIONS,
                        help="run (default): tonight's night; accept RUN_ID: mark a night as "
                             "the start of a new normal; history: print and plot the series")
    parser.add_argument("run_id", nargs="?", default=None, help="the night to accept")
    parser.add_argument("--suite", default=DEFAULT_SUITE,
                        help=f"suite file, a grid study (default {DEFAULT_SUITE}; "
                             "studies/nightly_gpu.yaml for CUDA)")
    parser.add_argument("--history", type=_whole, default=DEFAULT_HISTORY,
                        help=f"earlier nights compared with (default {DEFAULT_HISTORY})")
    parser.add_argument("--tolerance", type=_fraction, default=0.05,
                        help="minimum relative worsening that can alarm (default 0.05)")
    parser.add_argument("--level", type=_fraction, default=0.999,
                        help="one-sided prediction interval level per metric (default 0.999)")
    parser.add_argument("--cv-factor", type=_fraction, default=3.0,
                        help="... or this many history CVs, if larger (default 3)")
    parser.add_argument("--max-change", type=_fraction, default=None,
                        help="cap of that minimum worsening (default 0.25, or the tolerance if "
                             "larger); a history noisier than the cap is reported as too "
                             "noisy")
    parser.add_argument("--keep-rate-tolerance", type=_fraction, default=0.03,
                        help="SB/Random keep rate after priming: allowed distance from "
                             "1/(beta+1) (default 0.03)")
    parser.add_argument("--confirm", action=argparse.BooleanOptionalAction, default=True,
                        help="re-run the configurations of a failing metric once before "
                             "alarming (default on; --no-confirm alarms at once)")
    parser.add_argument("--workers", type=_whole, default=1, help="worker processes (default 1)")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI")
    parser.add_argument("--experiment", default=None,
                        help=f"MLflow experiment (default {DEFAULT_EXPERIMENT}, or the one of "
                             "`mlflow run`)")
    parser.add_argument("--out", default="sbbench-out/nightly",
                        help="report folder (default sbbench-out/nightly/<night>)")
    parser.add_argument("--fingerprint", default=None,
                        help="history: the series of this fingerprint (default: this machine's)")
    parser.add_argument("--all-fingerprints", action="store_true",
                        help="history: every fingerprint of the suite")
    parser.add_argument("--max-age-hours", type=_fraction, default=None,
                        help="history: exit 2 when the latest measured night is older than "
                             "this (a watchdog for a schedule that silently stopped)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    _underscore_aliases(parser)


def _underscore_aliases(parser: argparse.ArgumentParser) -> None:
    """`mlflow run -e nightly` passes undeclared -P values as `--name_with_underscores VALUE`:
    accept that spelling of every dashed option too, hidden from the help (as `sbbench train`
    does for its config flags)."""
    for action in list(parser._actions):
        for flag in action.option_strings:
            if not flag.startswith("--") or "-" not in flag[2:]:
                continue
            alias = "--" + flag[2:].replace("-", "_")
            if isinstance(action, argparse._StoreTrueAction):
                parser.add_argument(alias, dest=action.dest, action="store_true",
                                    default=argparse.SUPPRESS, help=argparse.SUPPRESS)
            elif isinstance(action, argparse._StoreAction):
                parser.add_argument(alias, dest=action.dest, type=action.type,
                                    default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    if args.action == "accept":
        return _accept(args)
    if args.run_id is not None:
        raise NightlyInputError(f"invalid argument {args.run_id!r}: only `accept` takes a "
                                "run id")
    if args.action == "history":
        return _history(args)
    return _run(args)


def _gate(args: argparse.Namespace):
    from sbbench.nightly.gate import GateSettings

    cap = args.max_change if args.max_change is not None else \
        max(GateSettings.max_threshold, args.tolerance)
    settings = GateSettings(level=args.level, tolerance=args.tolerance,
                            cv_factor=args.cv_factor, max_threshold=cap)
    try:
        settings.validate()
    except ValueError as err:
        raise NightlyInputError(str(err)) from None
    if not 0 <= args.keep_rate_tolerance < 1:
        raise NightlyInputError(f"invalid keep_rate_tolerance={args.keep_rate_tolerance!r}; "
                                "allowed: a number in [0, 1)")
    return settings


def _run(args: argparse.Namespace) -> int:
    settings = _gate(args)
    try:
        from sbbench.nightly.night import NightOptions, run_night
    except ImportError as err:   # a missing dependency: the night cannot measure
        print(f"sbbench nightly: could not measure: missing dependency ({err})", file=sys.stderr)
        return 2
    options = NightOptions(suite_path=args.suite, tracking_uri=args.tracking_uri,
                           experiment=args.experiment, history=args.history, gate=settings,
                           confirm=args.confirm, out_dir=args.out, workers=args.workers,
                           keep_rate_tolerance=args.keep_rate_tolerance,
                           progress=not args.no_progress)
    return run_night(options)


def _client(args: argparse.Namespace):
    from sbbench import tracking

    uri = tracking.resolve_tracking_uri(args.tracking_uri)
    tracking.check_tracking_reachable(uri)
    return tracking.get_client(uri), uri


def _accept(args: argparse.Namespace) -> int:
    from sbbench.nightly.history import accept

    if not args.run_id:
        raise NightlyInputError("invalid run_id=None; allowed: `sbbench nightly accept RUN_ID`"
                                " with the id of a nightly parent run")
    client, _ = _client(args)
    night = accept(client, args.run_id)
    print(f"accepted night {night.run_id} ({night.when}, suite "
          f"{night.tags.get('sbbench.suite')}, verdict {night.verdict}) as the start of a new "
          "normal: later nights compare with it and the nights after it only")
    return 0


def _history(args: argparse.Namespace) -> int:
    from sbbench.nightly import history as H
    from sbbench.nightly.fingerprint import TAG_FINGERPRINT
    from sbbench.nightly.suite import load_suite

    suite = load_suite(args.suite)
    client, _ = _client(args)
    ids = H.experiment_ids(client, args.experiment)
    fingerprint = None
    if not args.all_fingerprints:
        if args.fingerprint:
            fingerprint = args.fingerprint
        else:
            from sbbench.nightly.night import identity_for
            fingerprint = identity_for(suite).fingerprint
    nights = H.find_nights(client, ids, suite.name, fingerprint) if ids else []
    if not nights:
        where = f"fingerprint {fingerprint}" if fingerprint else "any fingerprint"
        print(f"no nights of suite {suite.name} ({where}) in experiment "
              f"{args.experiment or DEFAULT_EXPERIMENT}")
        return 2 if args.max_age_hours is not None else 0
    kinds = ("throughput", "time_to_target_s", "speedup", "final_test_error", "efficiency")
    metrics = sorted({m for n in nights for m in n.metrics if m.split("/", 1)[0] in kinds})
    chosen = [m for m in metrics if m.startswith("throughput/")] or metrics[:5]
    selected = H.select_history([n for n in nights if n.tags.get(TAG_FINGERPRINT) ==
                                 (fingerprint or nights[-1].tags.get(TAG_FINGERPRINT))],
                                limit=args.history)
    in_history = {n.run_id for n in selected.nights}
    headers = ["night (UTC)", "run id", "fingerprint", "verdict", "status", "hist", "commit"] + \
        [m.split("/", 1)[1] + " ex/s" for m in chosen]
    rows = []
    for n in nights:
        mark = "*" if n.run_id in in_history else ""
        if n.accepted:
            mark += " accepted"
        rows.append([n.when, n.run_id[:12], n.tags.get(TAG_FINGERPRINT, "?"),
                     n.verdict or "-", n.status, mark.strip(),
                     n.tags.get("sbbench.git_commit", "?")[:10]]
                    + [f"{n.metrics[m]:.4g}" if m in n.metrics else "-" for m in chosen])
    from sbbench.nightly.report import fixed_width
    print(fixed_width(headers, rows))
    print("hist: * = in the history the next night compares with (after the latest accept, "
          f"last {args.history} good nights)")
    out = Path(args.out) / f"history-{suite.name}"
    path = _history_figure(nights, metrics, out, suite.name)
    print(f"figure: {path.resolve()}")
    return _age_check(nights, args.max_age_hours)


def _age_check(nights, max_age_hours: float | None) -> int:
    import time as _time

    from sbbench.nightly import history as H

    measured = [n for n in nights if n.verdict in H.MEASURED_VERDICTS]
    latest = measured[-1] if measured else None
    if latest is None:
        print("no night has measured yet")
        return 2 if max_age_hours is not None else 0
    age_h = (_time.time() * 1000 - latest.start_time) / 3.6e6
    print(f"latest measured night: {latest.when} UTC ({age_h:.1f} h ago, {latest.verdict})")
    if max_age_hours is not None and age_h > max_age_hours:
        print(f"STALE: no measured night for {age_h:.1f} h (> {max_age_hours:g} h): has the "
              "schedule stopped?", file=sys.stderr)
        return 2
    return 0


def _history_figure(nights, metrics: list[str], out: Path, suite_name: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    kinds = sorted({m.split("/", 1)[0] for m in metrics})
    fig, axes = plt.subplots(len(kinds), 1, figsize=(9, 2.6 * max(1, len(kinds))), squeeze=False)
    for ax, kind in zip(axes.flat, kinds):
        for metric in [m for m in metrics if m.startswith(kind + "/")]:
            points = [(i, n.metrics[metric]) for i, n in enumerate(nights) if metric in n.metrics]
            ax.plot([p[0] for p in points], [p[1] for p in points], "o-", ms=3, lw=1,
                    label=metric.split("/", 1)[1])
        for i, n in enumerate(nights):
            if n.accepted:
                ax.axvline(i, color="k", ls=":", lw=1)
            if n.verdict == "regression":
                ax.axvline(i, color="tab:red", alpha=0.2, lw=6)
        ax.set_ylabel(kind, fontsize=8)
        ax.legend(fontsize=7, ncol=3)
    ticks = list(range(len(nights)))
    step = max(1, len(ticks) // 10)
    axes.flat[-1].set_xticks(ticks[::step])
    axes.flat[-1].set_xticklabels([nights[i].when for i in ticks[::step]], rotation=30,
                                  ha="right", fontsize=7)
    fig.suptitle(f"nightly {suite_name}: dotted = accepted new normal, red = regression night",
                 fontsize=10)
    fig.tight_layout()
    path = out / "history.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
