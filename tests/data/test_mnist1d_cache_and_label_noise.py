"""MNIST-1D loading (shapes, dtypes, on-disk cache, global RNG hygiene) and label noise."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

import sbbench.data.mnist1d as mnist1d_module
from sbbench.data import DataOptions, load_dataset, split_label_noise

SIZES = dict(train_size=300, val_size=100, test_size=100)


def _options(data_dir, **overrides) -> DataOptions:
    return DataOptions(name="mnist1d", data_dir=str(data_dir), **{**SIZES, **overrides})


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory):
    """One generated cache for the label-noise tests (generation is the slow part)."""
    return tmp_path_factory.mktemp("mnist1d_shared")


@pytest.fixture(scope="module")
def clean(shared_dir):
    return load_dataset(_options(shared_dir))


# ---------------------------------------------------------------------------- loading, caching


def test_mnist1d_shapes_dtypes_and_classes(clean):
    assert clean.name == "mnist1d"
    assert clean.num_classes == 10
    assert clean.input_shape == (1, 40)
    for x, y, n in ((clean.train_x, clean.train_y, 300), (clean.val_x, clean.val_y, 100),
                    (clean.test_x, clean.test_y, 100)):
        assert x.shape == (n, 1, 40)
        assert x.dtype == torch.float32
        assert y.shape == (n,)
        assert y.dtype == torch.int64
        assert torch.isfinite(x).all()
        assert int(y.min()) >= 0 and int(y.max()) <= 9
    # The splits are disjoint slices of one generated set: together they cover all 10 classes.
    everything = torch.cat([clean.train_y, clean.val_y, clean.test_y])
    assert set(everything.tolist()) == set(range(10))
    assert set(clean.train_y.tolist()) == set(range(10))
    assert clean.augmenter is None and clean.prepare is None
    assert clean.noisy_ids.numel() == 0
    assert torch.equal(clean.train_y, clean.train_clean_y)
    # Splits do not overlap: no training example reappears in test.
    train_rows = {tuple(row.tolist()) for row in clean.train_x.flatten(1)}
    assert not any(tuple(row.tolist()) in train_rows for row in clean.test_x.flatten(1))


def test_mnist1d_cache_is_written_and_reused(tmp_path, monkeypatch):
    real_generate = mnist1d_module._generate
    calls = []

    def counting_generate(args):
        calls.append(dict(args))
        return real_generate(args)

    monkeypatch.setattr(mnist1d_module, "_generate", counting_generate)
    first = load_dataset(_options(tmp_path))
    assert len(calls) == 1
    caches = sorted((tmp_path / "mnist1d").glob("*.npz"))
    assert len(caches) == 1, caches
    assert caches[0].stem == first.digest
    assert str(caches[0]) in first.source
    with np.load(caches[0]) as stored:
        assert stored["x"].shape == (500, 40)  # 300 + 100 + 100, already a multiple of 10
        assert stored["y"].shape == (500,)

    second = load_dataset(_options(tmp_path))
    assert len(calls) == 1, "the second load must read the cache, not regenerate"
    assert second.digest == first.digest
    for field in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
        assert torch.equal(getattr(first, field), getattr(second, field)), field
    # No temporary files left behind by the atomic write.
    assert sorted((tmp_path / "mnist1d").iterdir()) == caches


def test_mnist1d_load_leaves_global_rngs_alone(tmp_path):
    np.random.seed(1234)
    random.seed(5678)
    numpy_before = np.random.get_state()
    python_before = random.getstate()
    load_dataset(_options(tmp_path))  # generates (cache miss) ...
    load_dataset(_options(tmp_path))  # ... and reads the cache
    numpy_after = np.random.get_state()
    assert numpy_after[0] == numpy_before[0]
    assert np.array_equal(numpy_after[1], numpy_before[1])
    assert numpy_after[2:] == numpy_before[2:]
    assert random.getstate() == python_before
    # And the next draws are the ones a fresh seeding gives.
    np.random.seed(1234)
    random.seed(5678)
    expected = (np.random.rand(), random.random())
    np.random.set_state(numpy_before)
    random.setstate(python_before)
    assert (np.random.rand(), random.random()) == expected


# ---------------------------------------------------------------------------- label noise


@pytest.fixture(scope="module")
def noisy(shared_dir, clean):
    return load_dataset(_options(shared_dir, label_noise=0.2, seed=3))


def test_label_noise_count_histogram_and_positions(clean, noisy):
    n = noisy.num_train
    ids = noisy.noisy_ids
    assert ids.dtype == torch.int64
    assert ids.numel() == math.floor(0.2 * n) == 60
    assert ids.unique().numel() == ids.numel()
    assert torch.equal(ids, torch.sort(ids).values)
    assert int(ids.min()) >= 0 and int(ids.max()) < n
    # Clean labels are those of the noise-free load.
    assert torch.equal(noisy.train_clean_y, clean.train_y)
    # Histogram preserved exactly.
    assert torch.equal(torch.bincount(noisy.train_y, minlength=10),
                       torch.bincount(noisy.train_clean_y, minlength=10))
    # Labels differ only at noisy ids (and do differ at some of them).
    differs = (noisy.train_y != noisy.train_clean_y).nonzero().flatten()
    assert set(differs.tolist()) <= set(ids.tolist())
    assert differs.numel() > 0
    # Not-noisy examples are untouched.
    keep = torch.ones(n, dtype=torch.bool)
    keep[ids] = False
    assert torch.equal(noisy.train_y[keep], noisy.train_clean_y[keep])
    # Inputs are untouched by label noise.
    assert torch.equal(noisy.train_x, clean.train_x)


def test_label_noise_leaves_val_and_test_alone(clean, noisy):
    for field in ("val_x", "val_y", "test_x", "test_y"):
        assert torch.equal(getattr(noisy, field), getattr(clean, field)), field


def test_label_noise_deterministic_per_seed(shared_dir, noisy):
    again = load_dataset(_options(shared_dir, label_noise=0.2, seed=3))
    assert torch.equal(again.noisy_ids, noisy.noisy_ids)
    assert torch.equal(again.train_y, noisy.train_y)
    other = load_dataset(_options(shared_dir, label_noise=0.2, seed=4))
    assert other.noisy_ids.numel() == noisy.noisy_ids.numel()
    assert not torch.equal(other.noisy_ids, noisy.noisy_ids)
    assert not torch.equal(other.train_y, noisy.train_y)


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5, float("nan")])
def test_split_label_noise_rejects_out_of_range(fraction):
    labels = torch.arange(10)
    with pytest.raises(ValueError, match="label_noise"):
        split_label_noise(labels, fraction, torch.Generator().manual_seed(0))


def test_split_label_noise_zero_and_tiny_fractions():
    labels = torch.arange(50) % 10
    noisy, ids = split_label_noise(labels, 0.0, torch.Generator().manual_seed(0))
    assert ids.numel() == 0 and ids.dtype == torch.int64
    assert torch.equal(noisy, labels)
    assert noisy.data_ptr() != labels.data_ptr()  # a copy, not the caller's tensor
    # floor(0.01 * 50) == 0: no noisy ids either.
    noisy, ids = split_label_noise(labels, 0.01, torch.Generator().manual_seed(0))
    assert ids.numel() == 0 and torch.equal(noisy, labels)


def test_split_label_noise_does_not_mutate_input():
    labels = torch.arange(100) % 10
    before = labels.clone()
    noisy, ids = split_label_noise(labels, 0.5, torch.Generator().manual_seed(7))
    assert torch.equal(labels, before)
    assert ids.numel() == 50
    assert torch.equal(torch.bincount(noisy), torch.bincount(labels))


def test_fast_generation_is_bit_identical_to_the_package_generator():
    """The NumPy interpolation only removes interp1d's per-call object: same arrays, same
    bytes, and the package's own function is back in place afterwards."""
    import sys

    from sbbench.data.mnist1d import generation_args

    args = generation_args(300)
    reference_x, reference_y = mnist1d_module._generate(args, fast=False)
    fast_x, fast_y = mnist1d_module._generate(args, fast=True)
    assert fast_x.tobytes() == reference_x.tobytes()
    assert np.array_equal(fast_y, reference_y)
    assert sys.modules["mnist1d.transform"].interpolate is not \
        mnist1d_module.interpolate_with_numpy
