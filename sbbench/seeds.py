"""Independent random streams derived from one run seed.

Model initialisation, data order, augmentation, label noise, selection, dropout, the validation
split and BatchNorm re-estimation each draw from their own stream. Seeding them all with the run
seed itself made the streams identical: the first selection uniforms were the first layer's
initial weights (same generator, same seed).

Derivation (recorded on every run as tag `sbbench.seed_streams=seedsequence-v1`): stream i of
`STREAMS` is `numpy.random.SeedSequence(run_seed).spawn(len(STREAMS))[i]`, and the stream's
torch seed is that child's first 64-bit word (`generate_state(1, numpy.uint64)[0]`). Spawned
children are independent by construction of SeedSequence (it hashes the entropy and the child's
spawn key). `STREAMS` is append-only: adding a stream leaves every existing stream's seed as it
was (a child depends on its own index, not on how many siblings exist); reordering it, or any
other change of the recipe, needs a new `SCHEME` name.
"""

from __future__ import annotations

import numpy as np

SCHEME = "seedsequence-v1"

# Append-only: the position of a purpose is part of the scheme.
STREAMS = ("model_init", "data_order", "augmentation", "label_noise", "selection", "dropout",
           "validation_split", "batchnorm_recompute")


def stream_seed(run_seed: int, stream: str) -> int:
    """The seed (a non-negative 64-bit integer) of one named stream of a run."""
    if stream not in STREAMS:
        raise ValueError(f"stream={stream!r}; allowed: {', '.join(STREAMS)}")
    if isinstance(run_seed, bool) or not isinstance(run_seed, (int, np.integer)) or run_seed < 0:
        raise ValueError(f"run_seed={run_seed!r}; allowed: an integer >= 0")
    child = np.random.SeedSequence(int(run_seed)).spawn(len(STREAMS))[STREAMS.index(stream)]
    return int(child.generate_state(1, np.uint64)[0])


def stream_seeds(run_seed: int) -> dict[str, int]:
    """Every stream's seed, by purpose (for records and tests)."""
    return {stream: stream_seed(run_seed, stream) for stream in STREAMS}
