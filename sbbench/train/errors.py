"""Ways a run can end other than by its budget."""


class RunDiverged(RuntimeError):
    """A NaN or inf training loss: a legitimate (bad) outcome of the method, recorded as FAILED
    with failure kind `diverged`. The analysis counts such runs as never reaching the target."""


class RunPruned(RuntimeError):
    """A tuning study's pruner stopped the run early: censored, not a result (tag
    `sbbench.pruned=true`, status KILLED, failure kind `pruned`)."""
