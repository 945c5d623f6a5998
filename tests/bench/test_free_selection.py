"""The free-selection control of the bench: SB's forwards and steps at a given keep rate, with
no selection work. Checked for exact step counts and batch sizes, in isolation and in the loop."""

import math

import pytest
import torch

from sbbench.bench import bound
from sbbench.bench.free_selection import FreeSelection, kept_after
from sbbench.config import RunConfig
from sbbench.selection import Scores, SelectionSettings
from sbbench.train.run import train_untracked


def _batches(n_batches: int, size: int, features: int = 3):
    for k in range(n_batches):
        ids = torch.arange(k * size, (k + 1) * size)
        yield ids, ids.float().unsqueeze(1).repeat(1, features), ids % 10


class _Scorer:
    """Counts the examples it scores, as the loop's timed `score_forward` would."""

    def __init__(self):
        self.scored = 0

    def __call__(self, ids, x, y):
        self.scored += int(ids.shape[0])
        return Scores(torch.zeros(len(ids), 10), torch.zeros(len(ids)))


def test_kept_after_rounds_the_expected_count_down():
    assert kept_after(0, 0.3) == 0
    assert kept_after(10, 0.3) == 3
    assert kept_after(128 * 4, 0.25) == 128
    assert kept_after(7, 1.0) == 7


def test_steps_follow_the_keep_rate_and_train_on_the_batch_just_scored():
    b, n_batches, keep_rate = 8, 40, 0.3
    method = FreeSelection(SelectionSettings(batch_size=b, num_train=b * n_batches), keep_rate)
    method.start_epoch(0)
    scorer, trained = _Scorer(), []
    for ids, x, y in _batches(n_batches, b):
        for batch in method.select(ids, x, y, scorer):
            assert batch.ids is ids and batch.x is x  # no copy when the sizes match
            trained.append(len(batch))
    last = method.end_epoch()
    expected_kept = math.floor(b * n_batches * keep_rate)  # 96 = 12 full batches
    assert scorer.scored == b * n_batches                   # every candidate is scored
    assert trained == [b] * (expected_kept // b)
    assert sum(len(batch) for batch in last) == expected_kept % b


def test_the_last_partial_batch_is_flushed_and_epochs_restart_the_count():
    b, keep_rate = 10, 0.35
    method = FreeSelection(SelectionSettings(batch_size=b, num_train=100), keep_rate)
    for epoch in range(2):
        method.start_epoch(epoch)
        trained = [len(batch) for ids, x, y in _batches(10, b)
                   for batch in method.select(ids, x, y, _Scorer())]
        last = [len(batch) for batch in method.end_epoch()]
        assert trained == [10, 10, 10] and last == [5]  # 35 kept of 100, every epoch
    assert method.end_epoch() == []                     # nothing left to flush twice


def test_forward_batches_larger_than_backward_batches_give_exact_batch_sizes():
    settings = SelectionSettings(batch_size=8, num_train=48, forward_batch_size=12)
    method = FreeSelection(settings, keep_rate=0.5)  # 6 kept per forward batch of 12
    method.start_epoch(0)
    sizes, members_ok = [], True
    for ids, x, y in _batches(4, 12):
        for batch in method.select(ids, x, y, _Scorer()):
            sizes.append(len(batch))
            members_ok &= bool(torch.isin(batch.ids, ids).all())
            assert torch.equal(batch.x[:, 0], batch.ids.float())  # rows travel together
    assert sizes == [8, 8, 8] and members_ok  # kept 6, 12, 18, 24: steps after batches 2-4
    assert method.end_epoch() == []           # 24 kept = 3 x 8 exactly


@pytest.mark.parametrize("keep_rate", [0.0, -0.1, 1.5])
def test_keep_rate_outside_zero_one_is_refused(keep_rate):
    with pytest.raises(ValueError, match="keep_rate"):
        FreeSelection(SelectionSettings(batch_size=8, num_train=8), keep_rate)


def test_in_the_real_loop_it_scores_everything_and_trains_s_of_it(tiny):
    config = RunConfig.from_dict({**tiny, "prime_epochs": 0})
    outcome = train_untracked(config.replace(method="sb"), method_factory=lambda settings:
                              FreeSelection(settings, keep_rate=0.3))
    final = outcome.final
    per_epoch_kept = math.floor(600 * 0.3)                  # 180: 3 steps of 50 + 30 flushed
    assert final["total_selection_forwards"] == final["total_examples_seen"] == 1200
    assert final["total_examples_backpropped"] == 2 * per_epoch_kept
    assert final["total_optimizer_steps"] == 2 * 4
    assert outcome.curve[-1]["time_forward_select_s"] > 0


def test_ceiling_formulas_on_synthetic_timings():
    r, s = 0.25, 0.25
    traditional, sb = [2.0, 2.0, 2.0], [1.2, 1.2, 1.2]
    free = [2.0 * (r + s)] * 3                         # exactly on SB's bound
    ceiling = bound.selection_ceiling(r, s, traditional, sb, free)
    assert ceiling["efficiency_free_selection"] == pytest.approx(1.0)
    assert ceiling["speedup_free_selection"] == pytest.approx(2.0)
    assert ceiling["selection_share_of_sb_epoch"] == pytest.approx(1 - 1.0 / 1.2)
    slower = bound.selection_ceiling(r, s, traditional, sb, [1.1] * 3)
    assert slower["efficiency_free_selection"] == pytest.approx(1.0 / 1.1)


def test_selection_share_is_paired_by_repeat():
    # A machine that slows down repeat by repeat: SB and its free run share each repeat's speed.
    sb, free = [1.0, 2.0, 4.0], [0.9, 1.8, 3.6]           # selection = 10% of every repeat
    ceiling = bound.selection_ceiling(0.25, 0.25, [2.0, 4.0, 8.0], sb, free)
    assert ceiling["selection_share_per_repeat"] == pytest.approx([0.1, 0.1, 0.1])
    assert ceiling["selection_share_of_sb_epoch"] == pytest.approx(0.1)
    # One repeat whose free run was fast by chance: the median of the repeats' shares keeps
    # 5%, where a ratio of the medians (1 - 1.0 / 2.0) would read 50%.
    noisy = bound.selection_ceiling(0.25, 0.25, [2.0] * 3, [1.0, 2.0, 3.0], [0.95, 1.0, 2.85])
    assert noisy["selection_share_of_sb_epoch"] == pytest.approx(0.05)
