"""`sbbench bench`: measure, then print a table (and optionally write JSON)."""

from __future__ import annotations

import json
import math
import platform
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from sbbench.bench import bound, measure, precision
from sbbench.config import RunConfig

WINDOWS = (1024, 65536)  # history sizes whose bookkeeping cost is reported


@dataclass(frozen=True)
class BenchPlan:
    epochs: int        # per timed StaleSB run and tracking run (a multiple of the staleness,
                       # so StaleSB is fair)
    repeats: int       # paired, interleaved repeats of every method (the minimum if adaptive)
    step_repeats: int  # timed iterations per micro-benchmark sample
    tracking_pairs: int = 3  # tracked / untracked run pairs, alternating order
    # Adaptive: more repeats, up to `max_repeats` or the `budget_s` of wall time, until the 95%
    # CIs of SB's efficiency and of the selection share are narrower than +-target (`precision`).
    max_repeats: int | None = None
    budget_s: float | None = None
    short_epochs: int | None = None  # per Traditional, SB and free-selection run (None: epochs)
    target_half_width: float = precision.TARGET_HALF_WIDTH

    def repeat_plan(self) -> precision.RepeatPlan:
        return precision.RepeatPlan(self.repeats, max(self.repeats, self.max_repeats or 0),
                                    self.budget_s, self.target_half_width)


# --quick: shorter repeats (one epoch; StaleSB's run stays a multiple of its staleness), so
# that more of them fit: the half-width falls as 1 / sqrt(repeats).
QUICK = BenchPlan(epochs=3, repeats=5, step_repeats=30, tracking_pairs=5, max_repeats=40,
                  budget_s=240, short_epochs=1)
FULL = BenchPlan(epochs=6, repeats=7, step_repeats=100, tracking_pairs=5, max_repeats=60,
                 budget_s=1800)

# The quantities the stop rule waits for, and every quantity reported with a CI.
CONTROLLED = ("efficiency_sb", "selection_share_of_sb_epoch")
LABELS = {"efficiency_sb": "SB's efficiency", "efficiency_stale_sb": "StaleSB's efficiency",
          "efficiency_free_selection": "the free-selection efficiency",
          "selection_share_of_sb_epoch": "the selection share"}
STOPPED = {precision.RESOLVED: "both resolved", precision.MAX_REPEATS: "repeat limit",
           precision.BUDGET: "time budget"}
EFFICIENCY_LABELS = {"sb": "SB", "stale_sb": "StaleSB", "free_selection": "SB, free sel."}


def paired_values(epochs: measure.EpochTimes, staleness: int) -> dict[str, list[float]]:
    """Per repeat, from that repeat's own runs: the three efficiencies (each with the repeat's
    own r and keep rate) and the selection share 1 - free / SB."""
    values = {}
    for method, times in (("sb", epochs.sb_s), ("stale_sb", epochs.stale_sb_s),
                          ("free_selection", epochs.free_selection_s)):
        values[f"efficiency_{method}"] = bound.paired_efficiencies(
            epochs.traditional_s, times, epochs.sb_selection_forward_s, epochs.keep_rates,
            staleness if method == "stale_sb" else 1)
    values["selection_share_of_sb_epoch"] = [1 - free / sb for free, sb in
                                             zip(epochs.free_selection_s, epochs.sb_s)]
    return values


def run_bench(config: RunConfig, plan: BenchPlan, log=print) -> dict:
    device = measure.resolve_device(config.device)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    data = measure.load_bench_data(config)
    log(f"workload: {config.dataset} / {config.resolved_model}, batch {config.batch_size}, "
        f"device {device}, {torch.get_num_threads()} threads, beta {config.beta:g}, "
        f"staleness {config.staleness}")
    costs = measure.measure_step_costs(config, data, plan.step_repeats)
    log(f"r = {costs.forward_nograd_s * 1e3:.3f} ms no-grad forward / "
        f"{costs.training_step_s * 1e3:.3f} ms training step = {costs.r:.3f}")
    repeat_plan = plan.repeat_plan()

    def stop(times: measure.EpochTimes, elapsed_s: float) -> str | None:
        cis = precision.intervals(paired_values(times, config.staleness))
        log(f"  after {times.repeats} repeats ({elapsed_s:.0f} s): " + ", ".join(
            f"{name} {cis[name].estimate:.3f} +-{cis[name].half_width:.3f}"
            for name in CONTROLLED))
        return precision.stop_reason({name: cis[name] for name in CONTROLLED}, times.repeats,
                                     elapsed_s, repeat_plan)

    epochs = measure.measure_epoch_times(config, data, plan.short_epochs or plan.epochs,
                                         plan.repeats, log, stop=stop,
                                         max_repeats=repeat_plan.max_repeats,
                                         stale_epochs=plan.epochs)
    # r as the epoch sees it: SB's selection-forward time per epoch over Traditional's epoch
    # (both N / b batches). The isolated micro-benchmark runs one cached batch in a tight loop
    # and has disagreed with the loop's own step cost by 5-8% here; the in-loop ratio is the
    # one the bound's "r + s of a Traditional epoch" refers to. Both are reported.
    r_in_loop = bound.r_from_epochs(statistics.median(epochs.sb_selection_forward_s),
                                    epochs.traditional_s)
    result = bound.summarise(r_in_loop, epochs.keep_rate, config.staleness,
                             epochs.traditional_s, epochs.sb_s, epochs.stale_sb_s)
    result["r_isolated"] = costs.r
    result.update(bound.selection_ceiling(r_in_loop, epochs.keep_rate, epochs.traditional_s,
                                          epochs.sb_s, epochs.free_selection_s))
    # The headline estimates: means of the paired per-repeat values, with 95% CIs. The
    # ratio of median epoch times is kept as `*_of_medians` (it can fall outside the repeats).
    values = paired_values(epochs, config.staleness)
    for method in EFFICIENCY_LABELS:
        result[f"efficiency_{method}_of_medians"] = result[f"efficiency_{method}"]
        result[f"efficiency_{method}_per_repeat"] = values[f"efficiency_{method}"]
    result["selection_share_median"] = result["selection_share_of_sb_epoch"]
    cis = precision.intervals(values)
    for name, interval in cis.items():
        result[name] = interval.estimate
        result[f"{name}_ci"] = interval.as_dict()
    result["precision"] = {
        "estimator": precision.ESTIMATOR,
        "interval": precision.INTERVAL,
        "target_half_width": repeat_plan.target_half_width,
        "controlled": list(CONTROLLED),
        "stop_reason": epochs.stop_reason,
        "n_repeats": epochs.repeats,
        "min_repeats": repeat_plan.min_repeats,
        "max_repeats": repeat_plan.max_repeats,
        "budget_s": repeat_plan.budget_s,
        "repeats_wall_s": sum(epochs.repeat_wall_s),
        "orders": [list(order) for order in epochs.orders],
    }
    result["phase_s_per_epoch"] = epochs.phases
    result["sb_phase_s_per_epoch"] = epochs.sb_phases
    result["sb_excess_s_per_epoch"] = bound.excess_over_bound(
        epochs.phases["traditional"], epochs.sb_phases, epochs.keep_rate)
    # Fractions are of the loop's own training step (a Traditional epoch over its steps): the
    # isolated micro-benchmark of a step has drifted by up to 40% between runs here.
    loop_step_s = statistics.median(epochs.traditional_s) / -(-data.num_train //
                                                               config.batch_size)
    result["training_step_in_loop_s"] = loop_step_s
    bookkeeping = {}
    for window in WINDOWS:
        seconds = measure.measure_bookkeeping_s(config.replace(history_size=window), window,
                                                plan.step_repeats)
        bookkeeping[str(window)] = {"s_per_batch": seconds,
                                    "s_per_example": seconds / config.batch_size,
                                    "fraction_of_step": seconds / loop_step_s}
    result["bookkeeping"] = bookkeeping
    result["bookkeeping_fraction"] = bookkeeping["1024"]["fraction_of_step"]
    # The same code inside a real loop, at the configured window.
    in_loop_s = measure.measure_bookkeeping_in_loop_s(config, data)
    result["bookkeeping_in_loop"] = {"window": config.history_size, "s_per_batch": in_loop_s,
                                     "fraction_of_step": in_loop_s / loop_step_s}
    tracked = measure.measure_tracking_overhead(
        config.replace(epochs=float(plan.epochs)), data, plan.tracking_pairs)
    result["tracking"] = tracked
    result["tracking_overhead"] = tracked["tracking_overhead"]
    result["forward_nograd_s"] = costs.forward_nograd_s
    result["training_step_s"] = costs.training_step_s  # isolated micro-benchmark
    result["environment"] = {
        "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else platform.processor() or platform.machine()),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "dataset": config.dataset,
        "model": config.resolved_model,
        "batch_size": config.batch_size,
        "epochs_per_run": plan.short_epochs or plan.epochs,
        "stale_sb_epochs_per_run": plan.epochs,
        "repeats": epochs.repeats,
    }
    return result


def _spread(values: list[float]) -> str:
    return f"{min(values):.3f}-{max(values):.3f}" if values else "-"


def _ci(result: dict, name: str) -> precision.Interval | None:
    ci = result.get(f"{name}_ci")
    if not ci:
        return None
    inf = float("inf")
    return precision.Interval(result[name], -inf if ci["ci_low"] is None else ci["ci_low"],
                              inf if ci["ci_high"] is None else ci["ci_high"],
                              inf if ci["half_width"] is None else ci["half_width"],
                              ci["n_repeats"], ci["median"],
                              float("nan") if ci["sd"] is None else ci["sd"])


def _ci_columns(interval: precision.Interval | None) -> str:
    if interval is None:
        return f"{'-':>15}{'-':>8}"
    if not math.isfinite(interval.half_width):
        return f"{'(n < 2)':>15}{'-':>8}"
    return f"{interval.ci_low:>8.3f}-{interval.ci_high:<6.3f}{interval.half_width:>8.3f}"


def precision_lines(result: dict) -> list[str]:
    """Above-bound warnings, then whether the precision target was met (or plainly not)."""
    lines = []
    for method, label in EFFICIENCY_LABELS.items():
        interval = _ci(result, f"efficiency_{method}")
        if interval is None:
            continue
        name = label.replace(", free sel.", " (free selection)")
        warning = precision.bound_warning(name, interval)
        if warning:
            lines.append(warning)
        elif result.get(f"efficiency_{method}_of_medians", 0.0) > 1.0:
            # The speedup column (median epoch times) reads above the bound column.
            bound_key = "bound_sb" if method == "free_selection" else f"bound_{method}"
            lines.append(f"! {name} speedup {result[f'speedup_{method}']:.3f} (median epoch "
                         f"times) is above its bound {result[bound_key]:.3f}: within noise "
                         f"(paired efficiency {interval.estimate:.3f}, 95% CI "
                         f"{interval.ci_low:.3f}-{interval.ci_high:.3f})")
    meta = result.get("precision")
    if not meta:
        return lines
    controlled = {name: _ci(result, name) for name in meta["controlled"]}
    if any(interval is None for interval in controlled.values()):
        return lines
    target = meta["target_half_width"]
    lines.append(f"precision (95% CIs to +-{target * 100:g} points on "
                 + " and ".join(LABELS.get(name, name) for name in controlled) + f"; "
                 f"{meta['n_repeats']} repeats in {meta['repeats_wall_s']:.0f} s, "
                 f"stopped: {STOPPED.get(meta['stop_reason'], meta['stop_reason'])}):")
    lines += precision.resolution_lines(controlled, LABELS, meta["stop_reason"], target,
                                        meta.get("budget_s"))
    return lines


def format_table(result: dict) -> str:
    env = result["environment"]
    stale_epochs = env.get("stale_sb_epochs_per_run", env["epochs_per_run"])
    epochs = env["epochs_per_run"]
    run_length = f"{epochs} epoch{'s' if epochs != 1 else ''}" + (
        f" (StaleSB {stale_epochs})" if stale_epochs != epochs else "")
    lines = [
        f"sbbench bench: {env['dataset']} / {env['model']}, batch {env['batch_size']}, "
        f"{env['device_name']} ({env['threads']} threads), torch {env['torch']}; "
        f"{env['repeats']} paired, interleaved repeats (order rotated) x {run_length}",
        "",
        f"{'quantity':<44}{'value':>12}",
        f"{'-' * 56}",
        f"{'r = selection forward / Traditional step':<44}{result['r']:>12.3f}",
        f"{'  (isolated micro-benchmark: %.3f)' % result.get('r_isolated', float('nan')):<44}",
        f"{'keep rate s (SB, measured)':<44}{result['keep_rate']:>12.3f}",
        f"{'epoch time Traditional (s)':<44}{result['epoch_s_traditional']:>12.3f}",
        f"{'epoch time SB (s)':<44}{result['epoch_s_sb']:>12.3f}",
        f"{'epoch time StaleSB n=%d (s)' % result['staleness']:<44}"
        f"{result['epoch_s_stale_sb']:>12.3f}",
        "",
        f"{'':<14}{'speedup':>10}{'bound':>10}{'efficiency':>12}{'95% CI':>15}{'+-':>8}"
        f"{'per repeat':>16}",
    ]
    for label, key in (("SB", "sb"), ("StaleSB", "stale_sb")):
        lines.append(f"{label:<14}{result[f'speedup_{key}']:>10.3f}{result[f'bound_{key}']:>10.3f}"
                     f"{result[f'efficiency_{key}']:>12.3f}"
                     f"{_ci_columns(_ci(result, f'efficiency_{key}'))}"
                     f"{_spread(result.get(f'efficiency_{key}_per_repeat', [])):>16}")
    if "efficiency_free_selection" in result:
        shares = result.get("selection_share_per_repeat", [])
        share_ci = _ci(result, "selection_share_of_sb_epoch")
        if share_ci is None:
            share_text = (f"{result['selection_share_of_sb_epoch']:.1%} of an SB epoch (median "
                          "of the repeats' 1 - free / SB: ")
        elif not math.isfinite(share_ci.half_width):
            share_text = (f"{share_ci.estimate:.1%} of an SB epoch (one repeat, no CI; "
                          "1 - free / SB: ")
        else:
            share_text = (f"{share_ci.estimate:.1%} of an SB epoch, 95% CI "
                          f"{share_ci.ci_low:+.1%} to {share_ci.ci_high:+.1%} "
                          f"(+-{share_ci.half_width * 100:.1f} points; mean of the repeats' "
                          f"1 - free / SB, median {share_ci.median:.1%}: ")
        per_repeat = (", ".join(f"{share:+.1%}" for share in shares) if len(shares) <= 8 else
                      f"{len(shares)} repeats, {min(shares):+.1%} to {max(shares):+.1%}")
        lines += [
            f"{'SB, free sel.':<14}{result['speedup_free_selection']:>10.3f}"
            f"{result['bound_sb']:>10.3f}{result['efficiency_free_selection']:>12.3f}"
            f"{_ci_columns(_ci(result, 'efficiency_free_selection'))}"
            f"{_spread(result.get('efficiency_free_selection_per_repeat', [])):>16}",
            "  (SB's loop, forwards and steps at SB's keep rate, with no selection work: the "
            "ceiling of this loop on this machine)",
            "  SB's selection work (window, ranking, draws, queue, copies): " + share_text
            + per_repeat + ")",
        ]
    if "efficiency_sb_ci" in result:
        lines.append("  efficiency: mean of the repeats' own efficiencies (each repeat's r and s, "
                     "against its own Traditional run), 95% t-interval; speedup and bound: "
                     "median epoch times")
    lines += precision_lines(result)
    phases = result.get("phase_s_per_epoch") or {"sb": result["sb_phase_s_per_epoch"]}
    names = ("time_forward_select_s", "time_forward_train_s", "time_backward_s", "time_other_s")
    lines += ["", "phases per epoch (s)  forward (select)  forward (train)  backward   other"]
    for method, values in phases.items():
        lines.append(f"  {method:<20}" + "".join(f"{values[k]:>{w}.3f}" for k, w in
                                                zip(names, (16, 17, 10, 8))))
    excess = result.get("sb_excess_s_per_epoch")
    if excess:
        lines.append(f"  SB beyond the bound: training steps {excess['training_steps']:+.3f} s, "
                     f"other (data, optimizer, bookkeeping) {excess['other']:+.3f} s per epoch")
    lines += ["", "selection bookkeeping per forward batch (history update, percentile, decision, "
                  "queue), of a training step in the loop:"]
    for window, values in result["bookkeeping"].items():
        lines.append(f"  window {window:>6}, isolated: {values['s_per_batch'] * 1e6:8.1f} "
                     f"us/batch = {values['fraction_of_step']:.2%} of a training step")
    in_loop = result.get("bookkeeping_in_loop")
    if in_loop:
        lines.append(f"  window {in_loop['window']:>6}, in the loop: "
                     f"{in_loop['s_per_batch'] * 1e6:6.1f} us/batch = "
                     f"{in_loop['fraction_of_step']:.2%} of a training step (after a forward "
                     "pass: cold caches)")
    tracking = result["tracking"]
    lines += [
        "",
        f"tracking (MLflow, sqlite) against the null tracker, {tracking.get('pairs', 1)} "
        "back-to-back pairs in alternating order:",
        f"  overhead: {tracking['tracking_overhead']:+.2%} of the training clock = logging "
        f"{tracking.get('logging_fraction', tracking['tracking_overhead']):.2%} "
        f"({tracking['evaluations']} evaluations, {tracking['evaluation_logging_s'] * 1e3:.1f} ms)"
        f" + clock inflation {tracking.get('clock_inflation', 0.0):+.2%} (per pair "
        + ", ".join(f"{v:+.2%}" for v in tracking.get("clock_inflation_per_pair", [])) + ")",
        f"  training clock with / without: "
        f"{tracking.get('train_clock_tracked_s', float('nan')):.2f} / "
        f"{tracking['train_time_s']:.2f} s; loop wall time (evaluations included) with / "
        f"without: {tracking.get('loop_wall_tracked_s', float('nan')):.2f} / "
        f"{tracking.get('loop_wall_untracked_s', float('nan')):.2f} s",
        f"  fixed cost of a tracked run (create, params, dataset, artifacts, flush): "
        f"{tracking.get('fixed_run_cost_s', float('nan')):.2f} s",
    ]
    return "\n".join(lines)


def write_json(result: dict, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=2, sort_keys=True))


def log_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
