"""The theoretical speedup bound (docs/methods.md) and the efficiency of an implementation.

With r = (no-grad forward) / (training step) and keep rate s, an SB epoch costs at best r + s of
a Traditional epoch, and a StaleSB epoch r / n + s. The best per-epoch speedups are their
reciprocals; measured / bound is the efficiency.
"""

from __future__ import annotations

import statistics


def bound_sb(r: float, keep_rate: float) -> float:
    return 1.0 / (r + keep_rate)


def bound_stale_sb(r: float, keep_rate: float, staleness: int) -> float:
    return 1.0 / (r / staleness + keep_rate)


def r_from_epochs(selection_forward_s_per_epoch: float, traditional_epoch_s: list[float]) -> float:
    """r measured inside training: one epoch of no-grad selection forwards (N / b batches)
    over one Traditional epoch (N / b training steps, data and optimizer included)."""
    return selection_forward_s_per_epoch / statistics.median(traditional_epoch_s)


def speedup(baseline_epoch_s: list[float], method_epoch_s: list[float]) -> float:
    """Ratio of median per-epoch times (medians: robust to one slow repeat)."""
    return statistics.median(baseline_epoch_s) / statistics.median(method_epoch_s)


def efficiency(measured_speedup: float, bound: float) -> float:
    return measured_speedup / bound


def summarise(r: float, keep_rate: float, staleness: int, traditional_s: list[float],
              sb_s: list[float], stale_sb_s: list[float]) -> dict[str, float]:
    measured_sb = speedup(traditional_s, sb_s)
    measured_stale = speedup(traditional_s, stale_sb_s)
    b_sb = bound_sb(r, keep_rate)
    b_stale = bound_stale_sb(r, keep_rate, staleness)
    return {
        "r": r,
        "keep_rate": keep_rate,
        "staleness": staleness,
        "epoch_s_traditional": statistics.median(traditional_s),
        "epoch_s_sb": statistics.median(sb_s),
        "epoch_s_stale_sb": statistics.median(stale_sb_s),
        "speedup_sb": measured_sb,
        "bound_sb": b_sb,
        "efficiency_sb": efficiency(measured_sb, b_sb),
        "speedup_stale_sb": measured_stale,
        "bound_stale_sb": b_stale,
        "efficiency_stale_sb": efficiency(measured_stale, b_stale),
    }


def selection_ceiling(r: float, keep_rate: float, traditional_s: list[float],
                      sb_s: list[float], free_selection_s: list[float]) -> dict:
    """SB's loop with its selection free (`bench.free_selection`) against SB's own bound: the
    efficiency any selection core could reach in this loop on this machine, and the share of an
    SB epoch that SB's selection work takes, 1 - free epoch / SB epoch. The share is paired by
    repeat (each free run follows its SB run) and its median taken: a ratio of medians mixes
    repeats and read anywhere from 1% to 5% on the same code here."""
    measured = speedup(traditional_s, free_selection_s)
    shares = [1 - free / sb for free, sb in zip(free_selection_s, sb_s)]
    return {
        "epoch_s_free_selection": statistics.median(free_selection_s),
        "speedup_free_selection": measured,
        "efficiency_free_selection": efficiency(measured, bound_sb(r, keep_rate)),
        "selection_share_of_sb_epoch": statistics.median(shares),
        "selection_share_per_repeat": shares,
    }


def paired_efficiencies(traditional_s: list[float], method_s: list[float],
                        selection_forward_s: list[float], keep_rates: list[float],
                        staleness: int = 1) -> list[float]:
    """The efficiency of each repeat on its own, with its own r and keep rate (its runs ran
    back to back): their spread is how far the machine's noise moves the headline number."""
    efficiencies = []
    for traditional, method, forward, keep_rate in zip(traditional_s, method_s,
                                                       selection_forward_s, keep_rates):
        r = forward / traditional
        efficiencies.append((traditional / method) * (r / staleness + keep_rate))
    return efficiencies


def excess_over_bound(traditional_phases: dict[str, float], sb_phases: dict[str, float],
                      keep_rate: float) -> dict[str, float]:
    """Where an SB epoch spends more than the bound allows, in seconds per epoch.

    The bound grants SB its selection forwards (r of a Traditional epoch, r being measured from
    them) plus s of everything a Traditional epoch does. Compared phase by phase: training
    forwards and backwards, and "other" (data, optimizer, selection bookkeeping).
    """
    def allowed(key: str) -> float:
        return keep_rate * traditional_phases[key]

    training = ("time_forward_train_s", "time_backward_s")
    return {
        "training_steps": sum(sb_phases[k] for k in training) - sum(allowed(k) for k in training),
        "other": sb_phases["time_other_s"] - allowed("time_other_s"),
    }
