"""One run seed, independent streams: model init, data order, augmentation, label noise and
selection never share draws, and every stream is reproducible."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from sbbench.config import RunConfig
from sbbench.seeds import SCHEME, STREAMS, stream_seed, stream_seeds


def test_streams_differ_and_are_reproducible():
    for seed in (0, 1, 5):
        seeds = stream_seeds(seed)
        assert len(set(seeds.values())) == len(STREAMS)
        assert seeds == stream_seeds(seed)
        firsts = [torch.rand(320, generator=torch.Generator().manual_seed(s)) for s in
                  seeds.values()]
        assert not any(torch.equal(a, b) for a, b in itertools.combinations(firsts, 2))
    assert stream_seeds(0) != stream_seeds(1)
    # The recorded recipe: SeedSequence(run seed).spawn(len(STREAMS))[i], first 64-bit word.
    child = np.random.SeedSequence(7).spawn(len(STREAMS))[STREAMS.index("selection")]
    assert stream_seed(7, "selection") == int(child.generate_state(1, np.uint64)[0])
    assert SCHEME == "seedsequence-v1"


def test_a_run_draws_each_purpose_from_its_own_stream(tiny):
    from sbbench.tracking import NullTracker
    from sbbench.train.run import build_training, resolve_device, run_tags

    config = RunConfig.from_dict({**tiny, "method": "sb", "seed": 3})
    loop = build_training(config, NullTracker(), resolve_device("cpu"))
    selection = loop.method.generator.initial_seed()
    order = loop.batcher.generator.initial_seed()
    augment = loop.batcher.augment_generator.initial_seed()
    assert len({selection, order, augment, config.seed}) == 4
    assert (selection, order, augment) == (stream_seed(3, "selection"),
                                           stream_seed(3, "data_order"),
                                           stream_seed(3, "augmentation"))
    # The bug this guards against: a model initialised from the selection generator's seed
    # would be this run's model (first selection uniforms == first layer's initial weights).
    from sbbench.models import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(selection)
        same_seed_model = build_model(config.resolved_model, loop.data.num_classes,
                                      loop.data.input_shape)
    first = next(loop.model.parameters())
    assert not torch.equal(first, next(same_seed_model.parameters()))
    # Reproducible: the same seed builds the same model and the same streams.
    again = build_training(config, NullTracker(), resolve_device("cpu"), data=loop.data)
    assert all(torch.equal(a, b) for a, b in zip(loop.model.parameters(),
                                                  again.model.parameters()))
    assert again.method.generator.initial_seed() == selection
    # The derivation is recorded with the run.
    assert run_tags(config, torch.device("cpu"))["sbbench.seed_streams"] == SCHEME


def test_label_noise_has_its_own_stream(tiny):
    from sbbench.data import load_dataset
    from sbbench.train.run import data_options

    config = RunConfig.from_dict({**tiny, "label_noise": 0.2, "seed": 2})
    first = load_dataset(data_options(config)).noisy_ids
    assert torch.equal(first, load_dataset(data_options(config)).noisy_ids)
    n, count = config.train_size, int(0.2 * config.train_size)
    # Not the permutation a generator seeded with the run seed itself (or the order's) draws.
    for seed in (config.seed, stream_seed(2, "data_order"), stream_seed(2, "model_init")):
        other = torch.sort(torch.randperm(n, generator=torch.Generator().manual_seed(seed))
                           [:count]).values
        assert not torch.equal(first, other)
