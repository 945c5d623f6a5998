from collections import Counter

import pytest
import torch

from sbbench.data import DataOptions, DatasetUnavailableError, TrainBatcher, load_dataset
from tests.data.torchvision_files import write_cifar10, write_cifar100, write_svhn


def test_cifar10_from_real_format_files(tmp_path, monkeypatch):
    truth = write_cifar10(tmp_path, monkeypatch)
    splits = load_dataset(DataOptions(name="cifar10", data_dir=str(tmp_path), val_size=30))
    assert splits.train_x.shape == (70, 3, 32, 32) and splits.train_x.dtype == torch.uint8
    assert splits.val_x.shape == (30, 3, 32, 32) and splits.test_x.shape == (30, 3, 32, 32)
    assert Counter(splits.train_y.tolist() + splits.val_y.tolist()) == \
        Counter(truth["train_labels"])
    assert splits.test_y.tolist() == truth["test_labels"]
    prepared = splits.prepare(splits.train_x)
    assert prepared.dtype == torch.float32 and abs(prepared.mean().item()) < 0.5


def test_cifar100_labels(tmp_path, monkeypatch):
    truth = write_cifar100(tmp_path, monkeypatch)
    splits = load_dataset(DataOptions(name="cifar100", data_dir=str(tmp_path), val_size=10))
    assert splits.num_classes == 100
    assert Counter(splits.train_y.tolist() + splits.val_y.tolist()) == \
        Counter(truth["train_labels"])


def test_svhn_label_ten_is_zero_and_extra_concatenates(tmp_path, monkeypatch):
    truth = write_svhn(tmp_path, monkeypatch)
    plain = load_dataset(DataOptions(name="svhn", data_dir=str(tmp_path), val_size=5))
    assert plain.num_train == 35
    expected = [0 if y == 10 else y for y in truth["test"]]
    assert plain.test_y.tolist() == expected
    assert plain.train_y.max() <= 9
    extra = load_dataset(DataOptions(name="svhn", data_dir=str(tmp_path), val_size=5,
                                     svhn_extra=True))
    assert extra.num_train == 35 + 25


def test_train_batches_are_augmented_eval_is_not(tmp_path, monkeypatch):
    write_cifar10(tmp_path, monkeypatch)
    splits = load_dataset(DataOptions(name="cifar10", data_dir=str(tmp_path), val_size=10))
    batcher = TrainBatcher(splits, 16, torch.Generator().manual_seed(0))
    ids, x, y = next(batcher.epoch_batches())
    plain = splits.prepare(splits.train_x[ids])
    assert x.shape == plain.shape
    assert not torch.equal(x, plain)  # crop / flip / cutout changed them
    assert torch.equal(y, splits.train_y[ids])
    no_aug = load_dataset(DataOptions(name="cifar10", data_dir=str(tmp_path), val_size=10,
                                      augment=False))
    ids, x, _ = next(TrainBatcher(no_aug, 16, torch.Generator().manual_seed(0)).epoch_batches())
    assert torch.equal(x, no_aug.prepare(no_aug.train_x[ids]))


@pytest.mark.parametrize("name, expected", [("cifar10", "cifar-10-batches-py"),
                                            ("cifar100", "cifar-100-python"),
                                            ("svhn", "train_32x32.mat")])
def test_missing_files_say_where(name, expected, tmp_path):
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset(DataOptions(name=name, data_dir=str(tmp_path / "empty")))
    message = str(info.value)
    assert expected in message and str(tmp_path / "empty") in message
    assert "--download" in message and "\n" not in message
