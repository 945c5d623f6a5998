"""MNIST-1D, generated offline with the mnist1d package's procedural generator (never its
download path), cached on disk keyed by the generation arguments."""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import tempfile
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import torch

MNIST1D_GENERATION_SEED = 42  # fixed: every run, whatever its seed, sees the same data
DEFAULT_TRAIN, DEFAULT_VAL, DEFAULT_TEST = 50_000, 10_000, 10_000
NUM_CLASSES = 10


@contextmanager
def preserved_global_rngs():
    """mnist1d's make_dataset reseeds numpy's and python's global RNGs; undo that."""
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    try:
        yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def generation_args(total: int) -> dict:
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    args.pop("url", None)  # never used: we generate, we do not download
    # make_dataset splits train/test; we take everything and split ourselves.
    args.update(num_samples=total, train_split=1.0, seed=MNIST1D_GENERATION_SEED)
    return args


def args_digest(args: dict) -> str:
    return hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]


def interpolate_with_numpy(x: np.ndarray, n: int) -> np.ndarray:
    """mnist1d's `interpolate`, without building a scipy `interp1d` object per call.

    For 1-D data and kind="linear", interp1d hands the work to `np.interp` with these same
    arguments, so the values are bit-identical (tested); the object construction was 2/3 of
    the generation time (36 s -> 11.5 s for the default 70,000 examples on 2 cores)."""
    return np.interp(np.linspace(0, 1, n), np.linspace(0, 1, len(x)), x)


@contextmanager
def fast_interpolation():
    """Swap mnist1d's per-example interpolation for the NumPy one while generating."""
    import mnist1d.transform  # noqa: F401  (the package re-exports a function of that name)

    module = sys.modules["mnist1d.transform"]
    original = module.interpolate
    module.interpolate = interpolate_with_numpy
    try:
        yield
    finally:
        module.interpolate = original


def _generate(args: dict, fast: bool = True) -> tuple[np.ndarray, np.ndarray]:
    from mnist1d.data import ObjectView, make_dataset

    with preserved_global_rngs(), (fast_interpolation() if fast else nullcontext()):
        data = make_dataset(ObjectView(dict(args)))
    return data["x"].astype(np.float32), data["y"].astype(np.int64)


def load_arrays(data_dir: str, total: int) -> tuple[np.ndarray, np.ndarray, str, Path]:
    args = generation_args(total)
    digest = args_digest(args)
    cache = Path(data_dir) / "mnist1d" / f"{digest}.npz"
    if cache.is_file():
        with np.load(cache) as stored:
            return stored["x"], stored["y"], digest, cache
    x, y = _generate(args)
    cache.parent.mkdir(parents=True, exist_ok=True)
    # Atomic write: concurrent sweep workers never read a half-written cache.
    with tempfile.NamedTemporaryFile(dir=cache.parent, suffix=".npz", delete=False) as tmp:
        np.savez(tmp, x=x, y=y)
    os.replace(tmp.name, cache)
    return x, y, digest, cache


def load_mnist1d(options) -> dict:
    train = options.train_size or DEFAULT_TRAIN
    val = options.val_size or DEFAULT_VAL
    test = options.test_size or DEFAULT_TEST
    # The generator makes num_samples // 10 per class: round up to a multiple of 10.
    total = -(-(train + val + test) // NUM_CLASSES) * NUM_CLASSES
    x, y, digest, cache = load_arrays(options.data_dir, total)
    x = torch.from_numpy(x).unsqueeze(1)  # (N, 1, 40)
    y = torch.from_numpy(y)
    return {
        "num_classes": NUM_CLASSES,
        "train": (x[:train], y[:train]),
        "val": (x[train:train + val], y[train:train + val]),
        "test": (x[train + val:train + val + test], y[train + val:train + val + test]),
        "augmenter": None,
        "digest": digest,
        "source": f"mnist1d.make_dataset(num_samples={total}, seed={MNIST1D_GENERATION_SEED}) "
                  f"cached at {cache}",
    }
