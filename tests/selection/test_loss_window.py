import random

import pytest
import torch

from sbbench.selection.loss_window import LossWindow


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("capacity", [1, 7, 64])
def test_matches_bruteforce_reference(capacity, backend):
    rng = random.Random(capacity)
    window, reference = LossWindow(capacity, backend=backend), []
    for _ in range(300):
        size = rng.randint(1, capacity * 2 + 3)  # batches larger than the window too
        values = torch.tensor([float(rng.randint(0, 6)) for _ in range(size)])  # duplicates
        window.add(values)
        reference = (reference + values.tolist())[-capacity:]
        assert window.sorted_values().tolist() == sorted(reference)
        query = torch.tensor([-1.0, 0.0, 2.5, 3.0, 9.0])
        expected = [sum(r < q for r in reference) / len(reference) for q in query.tolist()]
        assert window.fraction_below(query).tolist() == pytest.approx(expected)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_empty_window_ranks_zero(backend):
    assert LossWindow(8, backend=backend).fraction_below(torch.tensor([1.0, 2.0])).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_nan_is_ranked_largest_and_does_not_corrupt(backend):
    window = LossWindow(4, backend=backend)
    window.add(torch.tensor([1.0, float("nan"), 2.0]))
    assert window.fraction_below(torch.tensor([float("nan")])).item() == pytest.approx(2 / 3)
    window.add(torch.tensor([0.5, 0.7, 0.9]))  # evicts 1.0, nan
    assert window.sorted_values().tolist() == pytest.approx([0.5, 0.7, 0.9, 2.0])
