"""Ways a run can end other than by its budget (a leaf: imported by train/ and tracking)."""


class RunDiverged(RuntimeError):
    """Training diverged: a non-finite training or validation loss, non-finite parameters, or a
    collapse to chance level after the run had clearly learned. A legitimate (bad) outcome of
    the method, recorded as FAILED with failure kind `diverged`. The analysis counts such runs
    as never reaching the target."""


class RunPruned(RuntimeError):
    """A tuning study's pruner stopped the run early: censored, not a result (tag
    `sbbench.pruned=true`, status KILLED, failure kind `pruned`)."""
