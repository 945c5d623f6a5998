import math
import random
from collections import Counter

import numpy as np
import pytest
import torch

from sbbench.data import DataOptions, load_dataset, split_label_noise
from sbbench.data import mnist1d as mnist1d_module

SIZES = dict(train_size=300, val_size=100, test_size=100)


def test_generation_shapes_cache_and_global_rngs(tmp_path, monkeypatch):
    calls = []
    real_generate = mnist1d_module._generate
    monkeypatch.setattr(mnist1d_module, "_generate",
                        lambda args: calls.append(1) or real_generate(args))
    np.random.seed(7)
    random.seed(7)
    numpy_before, python_before = np.random.get_state()[1].copy(), random.getstate()
    first = load_dataset(DataOptions(data_dir=str(tmp_path), **SIZES))
    assert np.array_equal(np.random.get_state()[1], numpy_before)
    assert random.getstate() == python_before
    assert first.train_x.shape == (300, 1, 40) and first.train_x.dtype == torch.float32
    assert first.val_x.shape == (100, 1, 40) and first.test_x.shape == (100, 1, 40)
    assert first.train_y.dtype == torch.int64 and set(first.train_y.tolist()) <= set(range(10))
    assert first.num_classes == 10
    assert len(list((tmp_path / "mnist1d").glob("*.npz"))) == 1
    second = load_dataset(DataOptions(data_dir=str(tmp_path), **SIZES))
    assert len(calls) == 1  # read from the cache
    assert torch.equal(first.train_x, second.train_x) and first.digest == second.digest


def test_label_noise_exact_and_histogram_preserving(tmp_path):
    clean = load_dataset(DataOptions(data_dir=str(tmp_path), **SIZES))
    noisy = load_dataset(DataOptions(data_dir=str(tmp_path), label_noise=0.2, seed=3, **SIZES))
    assert noisy.noisy_ids.numel() == math.floor(0.2 * 300)
    assert Counter(noisy.train_y.tolist()) == Counter(clean.train_y.tolist())
    changed = (noisy.train_y != clean.train_y).nonzero().flatten()
    assert set(changed.tolist()) <= set(noisy.noisy_ids.tolist())
    assert changed.numel() > 0.6 * noisy.noisy_ids.numel()  # about 1/C keep their label
    assert torch.equal(noisy.train_clean_y, clean.train_y)
    assert torch.equal(noisy.val_y, clean.val_y) and torch.equal(noisy.test_y, clean.test_y)
    again = load_dataset(DataOptions(data_dir=str(tmp_path), label_noise=0.2, seed=3, **SIZES))
    other = load_dataset(DataOptions(data_dir=str(tmp_path), label_noise=0.2, seed=4, **SIZES))
    assert torch.equal(again.noisy_ids, noisy.noisy_ids)
    assert not torch.equal(other.noisy_ids, noisy.noisy_ids)


@pytest.mark.parametrize("fraction", [-0.1, 1.0, float("nan")])
def test_label_noise_range(fraction):
    with pytest.raises(ValueError, match="label_noise"):
        split_label_noise(torch.arange(10), fraction, torch.Generator())


def test_no_noise_means_no_ids():
    labels, ids = split_label_noise(torch.arange(10), 0.0, torch.Generator())
    assert ids.numel() == 0 and torch.equal(labels, torch.arange(10))
