"""Learning-rate and evaluation schedules, keyed to example counts (never to steps or epochs of
a particular method: SB makes epochs cheaper, so counts are what stay comparable)."""

from __future__ import annotations

import bisect


class StepLearningRate:
    """lr * gamma ** (number of milestones passed); milestones in epochs of `num_train` examples."""

    def __init__(self, base_lr: float, milestones_epochs: tuple[float, ...], gamma: float,
                 num_train: int):
        self.base_lr = base_lr
        self.gamma = gamma
        self.milestone_examples = [m * num_train for m in milestones_epochs]

    def lr_at(self, examples: int) -> float:
        passed = bisect.bisect_right(self.milestone_examples, examples)
        return self.base_lr * self.gamma ** passed


class EvaluationSchedule:
    """Evaluate every `every_examples` examples seen: the same points for every method."""

    def __init__(self, every_examples: int):
        self.every_examples = every_examples
        self.next_at = every_examples

    def due(self, examples_seen: int) -> bool:
        return examples_seen >= self.next_at

    def advance(self, examples_seen: int) -> None:
        while self.next_at <= examples_seen:
            self.next_at += self.every_examples
