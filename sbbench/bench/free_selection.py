"""A bench-only control: SB's work with its selection made free. It answers "how much of SB's
distance from the bound is the selection core, and how much is everything else?".

`FreeSelection` runs inside the real training loop exactly as SB does: a timed no-grad selection
forward of every candidate batch, then training steps at SB's keep rate s, the last partial
batch flushed at the end of the epoch. It skips everything SB does to choose: no loss window, no
ranking, no draws, no queue, no copy of kept examples (each step trains on the batch just
scored). Its efficiency against SB's bound is therefore the ceiling any selection core reaches
in this loop on this machine; SB's shortfall from it is what SB's selection costs.

Not a method users can pick (it is not in the registry): it trains on whatever was scored last,
not on hard examples.
"""

from __future__ import annotations

import math

import torch

from sbbench.selection.base import SelectionMethod, SelectionSettings
from sbbench.selection.types import BackwardBatch, ScoreForward


def kept_after(examples_scored: int, keep_rate: float) -> int:
    """Examples "kept" once this many were scored: SB's expected count, rounded down."""
    return math.floor(examples_scored * keep_rate)


class FreeSelection(SelectionMethod):
    name = "free_selection"
    uses_selection_forward = True

    def __init__(self, settings: SelectionSettings, keep_rate: float):
        if not 0 < keep_rate <= 1:
            raise ValueError(f"keep_rate={keep_rate}; allowed: a number in (0, 1]")
        super().__init__(settings)
        self.keep_rate = keep_rate
        self._scored = 0    # examples scored this epoch
        self._trained = 0   # examples trained on this epoch
        self._last = None   # the last scored (ids, x, y): the end-of-epoch flush trains on it

    def start_epoch(self, epoch: int) -> None:
        super().start_epoch(epoch)
        self._scored = self._trained = 0

    def select(self, ids: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
               score_forward: ScoreForward) -> list[BackwardBatch]:
        score_forward(ids, x, y)
        self._scored += int(ids.shape[0])
        self._last = (ids, x, y)
        b = self.settings.batch_size
        kept = kept_after(self._scored, self.keep_rate)
        batches = []
        while kept - self._trained >= b:
            batches.append(self._batch_of(b))
            self._trained += b
        return batches

    def end_epoch(self) -> list[BackwardBatch]:
        """SB flushes its partially filled queue at the end of an epoch: so does this."""
        rest = kept_after(self._scored, self.keep_rate) - self._trained
        if rest <= 0 or self._last is None:
            return []
        self._trained += rest
        return [self._batch_of(rest)]

    def _batch_of(self, size: int) -> BackwardBatch:
        """`size` examples of the batch just scored: the batch itself when the sizes match (no
        copy), else its examples cycled."""
        ids, x, y = self._last
        if int(ids.shape[0]) == size:
            return BackwardBatch(ids, x, y)
        rows = torch.arange(size, device=ids.device) % int(ids.shape[0])
        return BackwardBatch(ids.index_select(0, rows), x.index_select(0, rows),
                             y.index_select(0, rows))
