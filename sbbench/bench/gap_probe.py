"""`sbbench bench --gap-probe`: what a pause between training steps costs the next step.

SB trains on a fraction of the candidates and runs selection forwards and bookkeeping between
its training steps; the bound (docs/methods.md) charges SB's steps what Traditional's cost back to
back. This probe trains Traditional with a pause before every step: a busy-wait in Python that
allocates nothing and touches no tensor, so any slowdown of the step after it comes from the
machine (caches, TLBs, branch predictors, clocks losing state while the step's code and data
sit unused), not from anything a selection method does. A second row runs no-grad forwards of
the batch instead of the pause, as SB does.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable


from sbbench.config import RunConfig
from sbbench.data import DatasetSplits
from sbbench.selection import BackwardBatch

PAUSES_MS = (0.0, 0.5, 2.0, 6.0, 20.0)
STEP_PHASES = ("time_forward_train_s", "time_backward_s", "time_other_s")
NEVER_EVALUATE = 10**12  # examples: only the final, untimed evaluation


def busy_wait(seconds: float) -> None:
    """Hold the CPU without touching memory (sleeping would let the core idle, a different
    effect)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _epoch_with(config: RunConfig, data: DatasetSplits,
                before_step: Callable[..., None] | None) -> dict[str, float]:
    """Per-step seconds of each phase over one Traditional epoch, `before_step(ids, x, y,
    score_forward)` running (off the phases, on the clock) before each training step."""
    from sbbench import tracking
    from sbbench.train.run import build_training, resolve_device

    loop = build_training(config.replace(method="traditional", epochs=1.0,
                                         eval_every_examples=NEVER_EVALUATE),
                          tracking.NullTracker(), resolve_device(config.device), data)

    def select(ids, x, y, score_forward):
        if before_step is not None:
            before_step(ids, x, y, score_forward)
        return [BackwardBatch(ids, x, y)]

    loop.method.select = select
    outcome = loop.run()
    steps = outcome.final["total_optimizer_steps"]
    return {key: outcome.curve[-1][key] / steps for key in STEP_PHASES}


def step_penalty(baseline: dict[str, float], paused: dict[str, float],
                 pause_s: float) -> dict[str, float]:
    """How much longer a training step (training forward + backward) takes after a pause, in
    seconds and per second of pause. "other" (the pause itself, data, optimizer) is left out:
    it holds the pause."""
    def step(phases: dict[str, float]) -> float:
        return phases["time_forward_train_s"] + phases["time_backward_s"]

    extra = step(paused) - step(baseline)
    return {"step_s": step(paused), "extra_s": extra, "extra_fraction": extra / step(baseline),
            "extra_per_pause_s": extra / pause_s if pause_s > 0 else 0.0}


def measure_gap_penalty(config: RunConfig, data: DatasetSplits, repeats: int = 3,
                        pauses_ms: tuple[float, ...] = PAUSES_MS, forwards: int = 4,
                        progress: Callable[[str], None] = print) -> list[dict]:
    """Rows for each pause (and for `forwards` no-grad forwards): median over interleaved
    repeats of one epoch each, after one untimed warm-up epoch."""
    def selection_forwards(ids, x, y, score_forward):
        for _ in range(forwards):
            score_forward(ids, x, y)

    # (name, pause in seconds or None, what runs before each step)
    variants = [(f"pause {ms:g} ms", ms / 1000, _pause(ms / 1000) if ms else None)
                for ms in pauses_ms]
    variants.append((f"{forwards} no-grad forwards", None, selection_forwards))
    _epoch_with(config, data, None)  # one-off costs of the first run in a process
    samples: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in variants}
    for repeat in range(repeats):
        for name, _, before_step in variants:
            samples[name].append(_epoch_with(config, data, before_step))
            progress(f"  gap probe repeat {repeat + 1}/{repeats}: {name}")
    medians = {name: {key: statistics.median(s[key] for s in runs) for key in STEP_PHASES}
               for name, runs in samples.items()}
    baseline = medians[variants[0][0]]
    return [{"before_each_step": name, **medians[name],
             **step_penalty(baseline, medians[name], pause_s or 0.0)}
            for name, pause_s, _ in variants]


def _pause(seconds: float) -> Callable[..., None]:
    return lambda *_: busy_wait(seconds)


def predicted_sb_step_excess_s(rows: list[dict], keep_rate: float, steps_per_epoch: int) -> float:
    """SB's training-step excess per epoch that the probe predicts: its no-grad-forwards row
    (about 1 / s forwards before each step, as in SB) times SB's steps per epoch (s x a
    Traditional epoch's steps)."""
    forwards_row = rows[-1]
    return forwards_row["extra_s"] * keep_rate * steps_per_epoch


def format_gap_table(rows: list[dict]) -> str:
    lines = ["training step (Traditional) after a pause: us per step",
             f"  {'before each step':<22}{'forward':>10}{'backward':>10}{'step':>10}"
             f"{'extra':>10}{'extra':>8}{'per ms of pause':>17}"]
    for row in rows:
        per_ms = (f"{row['extra_per_pause_s'] * 1e3:>14.0f} us" if row["extra_per_pause_s"]
                  else f"{'-':>17}")
        lines.append(f"  {row['before_each_step']:<22}{row['time_forward_train_s'] * 1e6:>10.0f}"
                     f"{row['time_backward_s'] * 1e6:>10.0f}{row['step_s'] * 1e6:>10.0f}"
                     f"{row['extra_s'] * 1e6:>+10.0f}{row['extra_fraction']:>+8.1%}{per_ms}")
    return "\n".join(lines)
