"""The fakes the other tests rely on: the scorer's logits really produce its losses."""

import torch
import torch.nn.functional as F

from tests.selection.helpers import FakeScorer, exponential_losses, inputs, logits_matching


def test_logits_matching_reproduce_the_losses():
    losses = torch.cat([exponential_losses(500, seed=0), torch.tensor([1e-4, 0.01, 8.0])])
    for num_classes in (2, 4, 10):
        y = torch.arange(losses.shape[0]) % num_classes
        ce = F.cross_entropy(logits_matching(losses, y, num_classes), y, reduction="none")
        assert torch.allclose(ce, losses, rtol=1e-4, atol=1e-6)


def test_fake_scorer_looks_losses_up_by_id_and_records_calls():
    table = exponential_losses(50, seed=1)
    scorer = FakeScorer(table)
    ids = torch.tensor([7, 3, 41])
    logits, losses = scorer(ids, *inputs(ids))
    assert torch.equal(losses, table[ids]) and [c.tolist() for c in scorer.calls] == [[7, 3, 41]]
    assert torch.allclose(F.cross_entropy(logits, ids % 4, reduction="none"), table[ids],
                          rtol=1e-4)
