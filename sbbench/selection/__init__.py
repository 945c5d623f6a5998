"""The selection core: which examples get a backward pass. Imports torch only.

One registry of methods; a new method is one entry here plus its module.
"""

from __future__ import annotations

from sbbench.selection.base import SelectionMethod, SelectionSettings, Traditional
from sbbench.selection.kath18 import Katharopoulos18
from sbbench.selection.selective_backprop import RandomSelection, SelectiveBackprop
from sbbench.selection.stale import StaleSelectiveBackprop
from sbbench.selection.types import BackwardBatch, ScoreForward, Scores

METHODS: dict[str, type[SelectionMethod]] = {
    "traditional": Traditional,
    "random": RandomSelection,
    "sb": SelectiveBackprop,
    "stale_sb": StaleSelectiveBackprop,
    "kath18": Katharopoulos18,
}

from sbbench.method_fields import METHOD_FIELDS  # noqa: E402  (torch-free table)


def build_method(name: str, settings: SelectionSettings) -> SelectionMethod:
    if name not in METHODS:
        raise ValueError(f"method={name!r}; allowed: {', '.join(sorted(METHODS))}")
    return METHODS[name](settings)


__all__ = ["METHODS", "METHOD_FIELDS", "BackwardBatch", "ScoreForward", "Scores",
           "SelectionMethod", "SelectionSettings", "build_method"]
