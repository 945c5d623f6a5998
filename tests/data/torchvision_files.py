"""Write tiny CIFAR-10 / CIFAR-100 / SVHN files in torchvision's real on-disk formats, and
point torchvision's md5 lists at them (the files are genuine, just not the published ones)."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import scipy.io
from torchvision import datasets


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _pickle(path: Path, payload: dict) -> None:
    with open(path, "wb") as handle:
        pickle.dump(payload, handle, protocol=2)


def write_cifar10(root: Path, monkeypatch, per_batch: int = 20, test: int = 30) -> dict:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels_all = {}
    train_list = []
    for index in range(1, 6):
        labels = rng.integers(0, 10, per_batch).tolist()
        labels_all[index] = labels
        _pickle(folder / f"data_batch_{index}", {
            "data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            "labels": labels})
        train_list.append([f"data_batch_{index}", _md5(folder / f"data_batch_{index}")])
    test_labels = rng.integers(0, 10, test).tolist()
    _pickle(folder / "test_batch", {"data": rng.integers(0, 256, (test, 3072), dtype=np.uint8),
                                    "labels": test_labels})
    _pickle(folder / "batches.meta", {"label_names": [f"c{i}".encode() for i in range(10)]})
    monkeypatch.setattr(datasets.CIFAR10, "train_list", train_list)
    monkeypatch.setattr(datasets.CIFAR10, "test_list",
                        [["test_batch", _md5(folder / "test_batch")]])
    monkeypatch.setattr(datasets.CIFAR10, "meta", {
        "filename": "batches.meta", "key": "label_names", "md5": _md5(folder / "batches.meta")})
    return {"train_labels": sum(labels_all.values(), []), "test_labels": test_labels}


def write_cifar100(root: Path, monkeypatch, train: int = 60, test: int = 20) -> dict:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    payloads = {}
    for name, n in (("train", train), ("test", test)):
        fine = rng.integers(0, 100, n).tolist()
        payloads[name] = fine
        _pickle(folder / name, {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                                "fine_labels": fine, "coarse_labels": [f // 5 for f in fine]})
    _pickle(folder / "meta", {"fine_label_names": [f"f{i}".encode() for i in range(100)],
                              "coarse_label_names": [f"c{i}".encode() for i in range(20)]})
    monkeypatch.setattr(datasets.CIFAR100, "train_list", [["train", _md5(folder / "train")]])
    monkeypatch.setattr(datasets.CIFAR100, "test_list", [["test", _md5(folder / "test")]])
    monkeypatch.setattr(datasets.CIFAR100, "meta", {
        "filename": "meta", "key": "fine_label_names", "md5": _md5(folder / "meta")})
    return {"train_labels": payloads["train"], "test_labels": payloads["test"]}


def write_svhn(root: Path, monkeypatch, sizes=(("train", 40), ("test", 15), ("extra", 25))) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    split_list = dict(datasets.SVHN.split_list)
    labels = {}
    for split, n in sizes:
        y = rng.integers(1, 11, (n, 1)).astype(np.uint8)  # 10 stands for the digit 0
        labels[split] = y[:, 0].tolist()
        path = root / f"{split}_32x32.mat"
        scipy.io.savemat(path, {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                                "y": y})
        url, filename, _ = split_list[split]
        split_list[split] = [url, filename, _md5(path)]
    monkeypatch.setattr(datasets.SVHN, "split_list", split_list)
    return labels
