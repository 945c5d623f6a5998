"""Registry of datasets. Each yields example ids with every training batch. Torch + numpy only."""

from __future__ import annotations

from typing import Callable

import torch

from sbbench.data.augment import Augmenter
from sbbench.data.batching import TrainBatcher, eval_batches
from sbbench.data.label_noise import split_label_noise
from sbbench.data.mnist1d import load_mnist1d
from sbbench.data.splits import DataOptions, DatasetSplits, DatasetUnavailableError
from sbbench.data.torchvision_sets import load_torchvision
from sbbench.seeds import stream_seed

INPUT_SHAPES = {"mnist1d": (1, 40), "cifar10": (3, 32, 32), "cifar100": (3, 32, 32),
                "svhn": (3, 32, 32)}

DATASETS: dict[str, Callable[[DataOptions], dict]] = {
    "mnist1d": load_mnist1d,
    "cifar10": load_torchvision,
    "cifar100": load_torchvision,
    "svhn": load_torchvision,
}


def load_dataset(options: DataOptions, device: torch.device | str = "cpu") -> DatasetSplits:
    if options.name not in DATASETS:
        raise ValueError(f"dataset={options.name!r}; allowed: {', '.join(sorted(DATASETS))}")
    raw = DATASETS[options.name](options)
    train_x, clean_y = raw["train"]
    noise_generator = torch.Generator().manual_seed(stream_seed(options.seed, "label_noise"))
    train_y, noisy_ids = split_label_noise(clean_y, options.label_noise, noise_generator)
    splits = DatasetSplits(
        name=options.name, num_classes=raw["num_classes"], input_shape=INPUT_SHAPES[options.name],
        train_x=train_x, train_y=train_y, train_clean_y=clean_y, noisy_ids=noisy_ids,
        val_x=raw["val"][0], val_y=raw["val"][1], test_x=raw["test"][0], test_y=raw["test"][1],
        augmenter=raw["augmenter"], digest=raw["digest"], source=raw["source"],
        prepare=raw.get("prepare"))
    return splits.to(device)


__all__ = ["DATASETS", "Augmenter", "DataOptions", "DatasetSplits", "DatasetUnavailableError",
           "TrainBatcher", "eval_batches", "load_dataset", "split_label_noise"]
