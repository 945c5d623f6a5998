"""The options that pick a dataset and the tensors a run trains and evaluates on."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Callable

import torch

from sbbench.data.augment import Augmenter


class DatasetUnavailableError(RuntimeError):
    """The dataset's files are missing; the message says where to put them."""


@dataclass(frozen=True)
class DataOptions:
    name: str = "mnist1d"
    data_dir: str = "data"
    download: bool = False
    train_size: int | None = None
    val_size: int | None = None
    test_size: int | None = None
    svhn_extra: bool = False
    augment: bool = True
    label_noise: float = 0.0
    seed: int = 0  # validation split and label noise; not the training order


@dataclass
class DatasetSplits:
    """Whole dataset as tensors (on the training device). Image datasets are kept as normalised
    float32; augmentation is applied per training batch by `augmenter`."""

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    train_x: torch.Tensor
    train_y: torch.Tensor          # labels used for training (noisy where label_noise > 0)
    train_clean_y: torch.Tensor    # labels before noise
    noisy_ids: torch.Tensor        # ids whose labels were permuted
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    augmenter: Augmenter | None
    digest: str
    source: str
    # uint8 images -> normalised float32, applied per batch (train and evaluation); None = as is
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None

    @property
    def num_train(self) -> int:
        return int(self.train_x.shape[0])

    def to(self, device: torch.device | str) -> "DatasetSplits":
        moved = {f.name: getattr(self, f.name).to(device) for f in fields(self)
                 if isinstance(getattr(self, f.name), torch.Tensor)}
        return replace(self, **moved)
