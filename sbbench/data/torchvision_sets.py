"""CIFAR-10, CIFAR-100 and SVHN from torchvision's on-disk formats in `data_dir`.

Images stay uint8 (N, 3, 32, 32) on the device (SVHN train+extra is 1.8 GB as uint8, 7.4 GB as
float32); `prepare` turns a batch into normalised float32 on the fly.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from sbbench.data.augment import Augmenter
from sbbench.data.splits import DatasetUnavailableError

DEFAULT_VAL_FROM_TRAIN = 5_000  # held out of the training set to decide target crossings

# Per-channel mean / std of the training images, in [0, 1] pixel units.
CHANNEL_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
}
AUGMENTATIONS = {
    "cifar10": Augmenter(crop_padding_px=4, flip=True, cutout_px=16),
    "cifar100": Augmenter(crop_padding_px=4, flip=True, cutout_px=8),
    "svhn": Augmenter(cutout_px=20),
}
EXPECTED_FILES = {
    "cifar10": "cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta)",
    "cifar100": "cifar-100-python/ (train, test, meta)",
    "svhn": "train_32x32.mat, test_32x32.mat (and extra_32x32.mat with svhn_extra)",
}


class Normalizer:
    """uint8 NCHW batch -> normalised float32, on the batch's device."""

    def __init__(self, name: str):
        mean, std = CHANNEL_STATS[name]
        self.mean = torch.tensor(mean).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(std).view(1, 3, 1, 1) * 255.0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.mean.device != images.device:
            self.mean, self.std = self.mean.to(images.device), self.std.to(images.device)
        return (images.float() - self.mean) / self.std


def _open(name: str, root: str, split: str, download: bool):
    from torchvision import datasets

    try:
        if name == "cifar10":
            return datasets.CIFAR10(root, train=split == "train", download=download)
        if name == "cifar100":
            return datasets.CIFAR100(root, train=split == "train", download=download)
        return datasets.SVHN(root, split=split, download=download)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted."
        where = Path(root).resolve()
        raise DatasetUnavailableError(
            f"dataset {name!r} ({split}) not found or corrupted in {where}: put "
            f"{EXPECTED_FILES[name]} there, or pass --download ({err})") from None
    except OSError as err:  # download attempted without network
        raise DatasetUnavailableError(
            f"dataset {name!r}: download failed ({err}); put {EXPECTED_FILES[name]} in "
            f"{Path(root).resolve()}") from None


def _as_tensors(dataset, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if name == "svhn":
        images = torch.from_numpy(np.ascontiguousarray(dataset.data))  # N, 3, 32, 32
        labels = torch.as_tensor(np.asarray(dataset.labels), dtype=torch.int64)
    else:
        images = torch.from_numpy(np.ascontiguousarray(dataset.data)).permute(0, 3, 1, 2)
        labels = torch.as_tensor(np.asarray(dataset.targets), dtype=torch.int64)
    return images.contiguous(), labels


def load_torchvision(options) -> dict:
    name, root = options.name, options.data_dir
    train_x, train_y = _as_tensors(_open(name, root, "train", options.download), name)
    if name == "svhn" and options.svhn_extra:
        extra_x, extra_y = _as_tensors(_open(name, root, "extra", options.download), name)
        train_x, train_y = torch.cat([train_x, extra_x]), torch.cat([train_y, extra_y])
    test_x, test_y = _as_tensors(_open(name, root, "test", options.download), name)
    val_size = DEFAULT_VAL_FROM_TRAIN if options.val_size is None else options.val_size
    if val_size >= train_x.shape[0]:
        raise DatasetUnavailableError(
            f"val_size={val_size} leaves no training examples ({train_x.shape[0]} in {name})")
    from sbbench.seeds import stream_seed

    generator = torch.Generator().manual_seed(stream_seed(options.seed, "validation_split"))
    order = torch.randperm(train_x.shape[0], generator=generator)
    val_ids, train_ids = order[:val_size], order[val_size:]
    if options.train_size is not None:
        train_ids = train_ids[:options.train_size]
    if options.test_size is not None:
        test_x, test_y = test_x[:options.test_size], test_y[:options.test_size]
    digest = hashlib.sha256()
    for tensor in (train_x[:256], train_y, test_y):
        digest.update(tensor.numpy().tobytes())
    return {
        "num_classes": 100 if name == "cifar100" else 10,
        "train": (train_x[train_ids], train_y[train_ids]),
        "val": (train_x[val_ids], train_y[val_ids]),
        "test": (test_x, test_y),
        "augmenter": AUGMENTATIONS[name] if options.augment else None,
        "prepare": Normalizer(name),
        "digest": digest.hexdigest()[:16],
        "source": f"torchvision {name} files in {Path(root).resolve()}",
    }
