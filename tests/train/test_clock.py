"""The training clock: phases add up to the total, pauses are excluded, errors still count."""

import time

import pytest
import torch

from sbbench.train.clock import PHASES, PhaseClock


def test_phases_accumulate_and_other_is_the_rest():
    clock = PhaseClock(torch.device("cpu"))
    clock.start()
    for _ in range(2):
        with clock.phase("backward"):
            time.sleep(0.002)
    with clock.phase("forward_train"):
        time.sleep(0.001)
    time.sleep(0.002)  # on the clock, in no phase: "other"
    clock.pause()
    breakdown = clock.breakdown()
    assert breakdown["time_backward_s"] >= 0.004
    assert breakdown["time_forward_train_s"] >= 0.001
    assert breakdown["time_forward_select_s"] == 0
    assert breakdown["time_other_s"] >= 0.002
    assert sum(breakdown.values()) == pytest.approx(clock.elapsed_s())


def test_paused_time_is_not_counted_and_errors_inside_a_phase_propagate():
    clock = PhaseClock(torch.device("cpu"))
    wall_start = time.perf_counter()
    clock.start()
    with clock.paused():
        time.sleep(0.02)
        assert not clock.running
    assert clock.running
    with pytest.raises(ZeroDivisionError):
        with clock.phase("forward_select"):
            time.sleep(0.001)
            1 / 0
    clock.pause()
    wall_s = time.perf_counter() - wall_start
    assert clock.phase_s["forward_select"] >= 0.001  # the failed block's time still counts
    assert clock.elapsed_s() <= wall_s - 0.02  # the paused 20 ms are not on the clock
    # Each phase is its own context object; the same object serves every entry.
    assert clock.phase("backward") is clock.phase("backward")
    assert {clock.phase(name).name for name in PHASES} == set(PHASES)
