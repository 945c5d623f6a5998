"""Every registered model: logits of the right shape, gradients everywhere, a reproducible init,
and BatchNorm statistics that only a train-mode forward moves (the selection forward runs in
eval mode and must leave them alone)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sbbench.models import MODELS
from tests.models.helpers import ODD_NUM_CLASSES, random_batch, seeded_build

BATCH = 3
ALL_MODELS = sorted(MODELS)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_logits_shape_finite_and_gradients_reach_every_parameter(name):
    model = seeded_build(name).train()
    logits = model(random_batch(name, BATCH))
    assert logits.shape == (BATCH, ODD_NUM_CLASSES)
    assert torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.arange(BATCH) % ODD_NUM_CLASSES).backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert torch.isfinite(parameter.grad).all(), parameter_name


@pytest.mark.parametrize("name", ALL_MODELS)
def test_same_seed_same_init_and_outputs(name):
    first, second = seeded_build(name, seed=3), seeded_build(name, seed=3)
    first_state, second_state = first.state_dict(), second.state_dict()
    assert first_state.keys() == second_state.keys()
    for key in first_state:
        assert torch.equal(first_state[key], second_state[key]), key
    batch = random_batch(name, 2)
    with torch.no_grad():
        assert torch.equal(first.eval()(batch), second.eval()(batch))
    other = seeded_build(name, seed=4)
    assert any(not torch.equal(a, b) for a, b in zip(first.parameters(), other.parameters()))


BATCHNORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)


def _batchnorm_state(model: torch.nn.Module) -> dict[str, list[torch.Tensor]]:
    norms = [module for module in model.modules() if isinstance(module, BATCHNORMS)]
    return {buffer: [getattr(norm, buffer).clone() for norm in norms]
            for buffer in ("running_mean", "running_var", "num_batches_tracked")}


def _same(first: list[torch.Tensor], second: list[torch.Tensor]) -> list[bool]:
    return [torch.equal(a, b) for a, b in zip(first, second)]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_eval_forward_keeps_batchnorm_statistics_train_forward_moves_them(name):
    model = seeded_build(name)
    before = _batchnorm_state(model)
    assert before["running_mean"], "every registered model normalises"
    batch = random_batch(name, BATCH) + 1.0    # mean 1: the running means (init 0) must move
    model.eval()
    with torch.no_grad():
        model(batch)
    after_eval = _batchnorm_state(model)
    for buffer in before:
        assert all(_same(before[buffer], after_eval[buffer])), buffer
    model.train()
    with torch.no_grad():
        model(batch)
    after_train = _batchnorm_state(model)
    assert not any(_same(before["running_mean"], after_train["running_mean"]))
    assert all(count == 1 for count in after_train["num_batches_tracked"])
