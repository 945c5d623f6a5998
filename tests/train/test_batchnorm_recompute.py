"""recompute_bn_before_eval: evaluations see BatchNorm statistics re-estimated on training
batches; training itself is unchanged."""

from __future__ import annotations

import torch

from sbbench.config import RunConfig
from sbbench.tracking import NullTracker


def trained(tiny, **overrides):
    from sbbench.train.run import build_training, resolve_device

    config = RunConfig.from_dict({**tiny, "method": "sb", "seed": 4, **overrides})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        loop = build_training(config, NullTracker(), resolve_device("cpu"))
        return loop, loop.run()


def batchnorm_state(model):
    return [t.clone() for name, t in model.state_dict().items()
            if "running" in name or "num_batches" in name]


def test_off_by_default_and_recorded_as_a_param():
    config = RunConfig()
    assert config.recompute_bn_before_eval is False
    assert config.to_mlflow_params()["recompute_bn_before_eval"] == "False"


def test_recomputing_changes_what_is_measured_not_the_run(tiny):
    off_loop, off = trained(tiny)
    on_loop, on = trained(tiny, recompute_bn_before_eval=True)
    # Training is the same run: same selections, counters, parameters, running statistics.
    assert torch.equal(off.per_example.times_backpropped, on.per_example.times_backpropped)
    assert [p["optimizer_steps"] for p in off.curve] == [p["optimizer_steps"] for p in on.curve]
    assert all(torch.equal(a, b) for a, b in zip(off_loop.model.parameters(),
                                                 on_loop.model.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(batchnorm_state(off_loop.model),
                                                 batchnorm_state(on_loop.model)))
    # What was measured differs (re-estimated statistics), reproducibly.
    assert [p["val_loss"] for p in off.curve] != [p["val_loss"] for p in on.curve]
    _, again = trained(tiny, recompute_bn_before_eval=True)
    assert [p["val_loss"] for p in on.curve] == [p["val_loss"] for p in again.curve]


def test_statistics_are_re_estimated_inside_and_restored_after(tiny):
    from sbbench.train.run import build_training, resolve_device

    config = RunConfig.from_dict({**tiny, "recompute_bn_before_eval": True})
    loop = build_training(config, NullTracker(), resolve_device("cpu"))
    before = batchnorm_state(loop.model)
    rng = torch.get_rng_state()
    with loop._evaluation_statistics():
        inside = batchnorm_state(loop.model)
        assert not torch.equal(inside[0], before[0])  # fresh init stats were zeros / ones
        assert loop.model.training
    assert all(torch.equal(a, b) for a, b in zip(before, batchnorm_state(loop.model)))
    assert torch.equal(rng, torch.get_rng_state())  # dropout's global stream untouched
