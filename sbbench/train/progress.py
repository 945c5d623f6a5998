"""A tqdm progress bar over examples seen, showing error and keep rate at each evaluation."""

from __future__ import annotations

import math
import sys

from tqdm.auto import tqdm

from sbbench.config import RunConfig


class ProgressBar:
    def __init__(self, config: RunConfig, num_train: int, position: int | None = None,
                 leave: bool = True):
        total = math.ceil(config.epochs * num_train)
        self._bar = tqdm(total=total, unit="ex", unit_scale=True, desc=config.method,
                         position=position, leave=leave, dynamic_ncols=True, file=sys.stderr,
                         mininterval=0.5)
        self._seen = 0

    def update(self, metrics: dict[str, float]) -> None:
        seen = int(metrics["examples_seen"])
        self._bar.update(seen - self._seen)
        self._seen = seen
        self._bar.set_postfix(val_err=f"{metrics['val_error']:.2%}",
                              keep=f"{metrics['keep_rate']:.2f}",
                              clock=f"{metrics['train_time_s']:.1f}s", refresh=False)

    def close(self) -> None:
        self._bar.close()
