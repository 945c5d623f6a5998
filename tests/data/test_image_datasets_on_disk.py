"""CIFAR-10 / CIFAR-100 / SVHN loaders on tiny files written here in the real on-disk formats.

The CIFAR batches are pickles written by Python 2's cPickle (protocol 2): their keys are py2
`str`, i.e. BINSTRING opcodes, which torchvision's `pickle.load(..., encoding="latin1")` turns
into `str` keys. Python 3's pickle would write `bytes` keys as `_codecs.encode(...)` calls that
load back as `bytes`, which torchvision does not look up; `_Py2Pickler` emits the py2 opcodes.
torchvision checks each file's md5 when download=False: the tests point its md5 lists at the
files written here.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from torchvision import datasets

from sbbench.data import DataOptions, DatasetUnavailableError, TrainBatcher, load_dataset
from sbbench.data.torchvision_sets import CHANNEL_STATS

# Every written image carries its label in red pixel (0, 0) and a unique id in green pixel (0, 0),
# so the tests can check image/label pairing and which images landed in which split.


class _Py2Pickler(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def _write_pickle(path: Path, payload: dict) -> str:
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(payload)
    path.write_bytes(buffer.getvalue())
    return hashlib.md5(buffer.getvalue()).hexdigest()


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _images(rng: np.random.Generator, labels: np.ndarray, first_id: int) -> np.ndarray:
    """(n, 3, 32, 32) uint8 random images tagged with label and id."""
    n = labels.shape[0]
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    images[:, 0, 0, 0] = labels
    images[:, 1, 0, 0] = np.arange(first_id, first_id + n)
    return images


def write_cifar10(root: Path, monkeypatch, per_batch: int = 12, n_test: int = 20) -> dict:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(10)
    train_images, train_labels, train_list = [], [], []
    for index in range(1, 6):
        labels = rng.integers(0, 10, per_batch)
        images = _images(rng, labels, first_id=(index - 1) * per_batch)
        md5 = _write_pickle(folder / f"data_batch_{index}", {
            b"batch_label": f"training batch {index} of 5".encode(),
            b"labels": labels.tolist(), b"data": images.reshape(per_batch, 3072),
            b"filenames": [f"img_{index}_{i}.png".encode() for i in range(per_batch)]})
        train_list.append([f"data_batch_{index}", md5])
        train_images.append(images)
        train_labels.extend(labels.tolist())
    test_labels = rng.integers(0, 10, n_test)
    test_images = _images(rng, test_labels, first_id=200)
    test_md5 = _write_pickle(folder / "test_batch", {
        b"batch_label": b"testing batch 1 of 1", b"labels": test_labels.tolist(),
        b"data": test_images.reshape(n_test, 3072)})
    meta_md5 = _write_pickle(folder / "batches.meta", {
        b"label_names": [name.encode() for name in ("airplane", "automobile", "bird", "cat",
                                                    "deer", "dog", "frog", "horse", "ship",
                                                    "truck")],
        b"num_cases_per_batch": per_batch, b"num_vis": 3072})
    monkeypatch.setattr(datasets.CIFAR10, "train_list", train_list)
    monkeypatch.setattr(datasets.CIFAR10, "test_list", [["test_batch", test_md5]])
    monkeypatch.setattr(datasets.CIFAR10, "meta", {**datasets.CIFAR10.meta, "md5": meta_md5})
    return {"train_x": np.concatenate(train_images), "train_y": np.array(train_labels),
            "test_x": test_images, "test_y": test_labels}


def write_cifar100(root: Path, monkeypatch, n_train: int = 60, n_test: int = 20) -> dict:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(100)
    out = {}
    md5s = {}
    for split, n, first_id in (("train", n_train, 0), ("test", n_test, 200)):
        fine = rng.integers(0, 100, n)
        images = _images(rng, fine, first_id)
        md5s[split] = _write_pickle(folder / split, {
            b"filenames": [f"{split}_{i}.png".encode() for i in range(n)],
            b"batch_label": f"{split} batch".encode(), b"fine_labels": fine.tolist(),
            b"coarse_labels": (fine // 5).tolist(), b"data": images.reshape(n, 3072)})
        out[f"{split}_x"], out[f"{split}_y"] = images, fine
    md5s["meta"] = _write_pickle(folder / "meta", {
        b"fine_label_names": [f"fine_{i}".encode() for i in range(100)],
        b"coarse_label_names": [f"coarse_{i}".encode() for i in range(20)]})
    monkeypatch.setattr(datasets.CIFAR100, "train_list", [["train", md5s["train"]]])
    monkeypatch.setattr(datasets.CIFAR100, "test_list", [["test", md5s["test"]]])
    monkeypatch.setattr(datasets.CIFAR100, "meta", {**datasets.CIFAR100.meta, "md5": md5s["meta"]})
    return out


def write_svhn(root: Path, monkeypatch, sizes=(("train", 40), ("test", 20), ("extra", 30)),
               first_ids=(("train", 0), ("test", 100), ("extra", 200))) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    first = dict(first_ids)
    split_list = {key: list(value) for key, value in datasets.SVHN.split_list.items()}
    out = {}
    for split, n in sizes:
        digits = np.arange(n) % 10          # every digit, 0 included
        rng.shuffle(digits)
        images = _images(rng, digits, first[split])
        stored_y = np.where(digits == 0, 10, digits).astype(np.uint8).reshape(n, 1)
        path = root / f"{split}_32x32.mat"
        # The real files: X is (H, W, C, N) uint8, y is (N, 1) with 10 meaning digit 0.
        scipy.io.savemat(path, {"X": np.ascontiguousarray(images.transpose(2, 3, 1, 0)),
                                "y": stored_y})
        split_list[split][2] = _md5(path)
        out[f"{split}_x"], out[f"{split}_y"] = images, digits
    monkeypatch.setattr(datasets.SVHN, "split_list", split_list)
    return out


def _ids(x: torch.Tensor) -> list[int]:
    return x[:, 1, 0, 0].tolist()


def _check_pairing(x: torch.Tensor, y: torch.Tensor, written: dict, split: str) -> None:
    """Every loaded image is the written one with its id, byte for byte, with its own label."""
    assert torch.equal(x[:, 0, 0, 0].long(), y)
    by_id = {int(i): k for k, i in enumerate(written[f"{split}_x"][:, 1, 0, 0])}
    for row, image_id in zip(x, _ids(x)):
        assert np.array_equal(row.numpy(), written[f"{split}_x"][by_id[image_id]])


def _hist(labels, classes: int) -> torch.Tensor:
    return torch.bincount(torch.as_tensor(labels, dtype=torch.int64), minlength=classes)


WRITERS = {"cifar10": (write_cifar10, 10, 60), "cifar100": (write_cifar100, 100, 60)}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_cifar_loads_shapes_labels_and_val_split(name, tmp_path, monkeypatch):
    writer, classes, n_train = WRITERS[name]
    written = writer(tmp_path, monkeypatch)
    splits = load_dataset(DataOptions(name=name, data_dir=str(tmp_path), val_size=10, seed=1))
    assert splits.num_classes == classes
    assert splits.input_shape == (3, 32, 32)
    assert splits.train_x.shape == (n_train - 10, 3, 32, 32)
    assert splits.train_x.dtype == torch.uint8
    assert splits.val_x.shape == (10, 3, 32, 32) and splits.val_x.dtype == torch.uint8
    assert splits.test_x.shape == (20, 3, 32, 32) and splits.test_x.dtype == torch.uint8
    for y in (splits.train_y, splits.val_y, splits.test_y):
        assert y.dtype == torch.int64
    # Train + val is a partition of the written training set (by id) ...
    train_ids, val_ids = _ids(splits.train_x), _ids(splits.val_x)
    assert not set(train_ids) & set(val_ids)
    assert sorted(train_ids + val_ids) == sorted(written["train_x"][:, 1, 0, 0].tolist())
    # ... with the labels' histogram preserved, and each image keeps its own label, CHW intact.
    assert torch.equal(_hist(splits.train_y, classes) + _hist(splits.val_y, classes),
                       _hist(written["train_y"], classes))
    _check_pairing(splits.train_x, splits.train_y, written, "train")
    _check_pairing(splits.val_x, splits.val_y, written, "train")
    # Test split: all of it, in file order.
    assert splits.test_y.tolist() == written["test_y"].tolist()
    assert np.array_equal(splits.test_x.numpy(), written["test_x"])
    assert torch.equal(splits.train_clean_y, splits.train_y) and splits.noisy_ids.numel() == 0
    # The validation split is seeded: same seed same split, another seed another.
    again = load_dataset(DataOptions(name=name, data_dir=str(tmp_path), val_size=10, seed=1))
    assert _ids(again.val_x) == val_ids
    other = load_dataset(DataOptions(name=name, data_dir=str(tmp_path), val_size=10, seed=2))
    assert sorted(_ids(other.val_x)) != sorted(val_ids)


def test_cifar10_size_options(tmp_path, monkeypatch):
    written = write_cifar10(tmp_path, monkeypatch)
    splits = load_dataset(DataOptions(name="cifar10", data_dir=str(tmp_path), val_size=5,
                                      train_size=30, test_size=7))
    assert splits.val_x.shape[0] == 5 and splits.train_x.shape[0] == 30
    assert splits.test_y.tolist() == written["test_y"][:7].tolist()
    with pytest.raises(DatasetUnavailableError, match="val_size"):
        load_dataset(DataOptions(name="cifar10", data_dir=str(tmp_path), val_size=60))


def test_svhn_loads_maps_label_10_to_0(tmp_path, monkeypatch):
    written = write_svhn(tmp_path, monkeypatch)
    splits = load_dataset(DataOptions(name="svhn", data_dir=str(tmp_path), val_size=8))
    assert splits.num_classes == 10
    assert splits.train_x.shape == (32, 3, 32, 32) and splits.train_x.dtype == torch.uint8
    assert splits.val_x.shape == (8, 3, 32, 32)
    assert splits.test_x.shape == (20, 3, 32, 32)
    everything = torch.cat([splits.train_y, splits.val_y, splits.test_y])
    assert int(everything.min()) == 0 and int(everything.max()) == 9  # no 10 left
    assert torch.equal(_hist(splits.train_y, 10) + _hist(splits.val_y, 10),
                       _hist(written["train_y"], 10))
    assert splits.test_y.tolist() == written["test_y"].tolist()
    _check_pairing(splits.train_x, splits.train_y, written, "train")
    _check_pairing(splits.val_x, splits.val_y, written, "train")
    assert np.array_equal(splits.test_x.numpy(), written["test_x"])
    # Without svhn_extra no extra image is used.
    assert max(_ids(splits.train_x) + _ids(splits.val_x)) < 100


def test_svhn_extra_is_concatenated_to_train(tmp_path, monkeypatch):
    written = write_svhn(tmp_path, monkeypatch)
    splits = load_dataset(DataOptions(name="svhn", data_dir=str(tmp_path), val_size=8,
                                      svhn_extra=True))
    assert splits.train_x.shape[0] + splits.val_x.shape[0] == 40 + 30
    ids = sorted(_ids(splits.train_x) + _ids(splits.val_x))
    assert ids == sorted(written["train_x"][:, 1, 0, 0].tolist()
                         + written["extra_x"][:, 1, 0, 0].tolist())
    assert torch.equal(_hist(splits.train_y, 10) + _hist(splits.val_y, 10),
                       _hist(written["train_y"], 10) + _hist(written["extra_y"], 10))
    extra_by_id = {int(i): k for k, i in enumerate(written["extra_x"][:, 1, 0, 0])}
    for row, label in zip(splits.train_x, splits.train_y):
        image_id = int(row[1, 0, 0])
        if image_id in extra_by_id:
            assert np.array_equal(row.numpy(), written["extra_x"][extra_by_id[image_id]])
            assert int(label) == int(written["extra_y"][extra_by_id[image_id]])


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn"])
def test_missing_files_raise_dataset_unavailable_naming_the_directory(name, tmp_path):
    empty = tmp_path / "nothing_here"
    empty.mkdir()
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset(DataOptions(name=name, data_dir=str(empty)))
    assert str(empty.resolve()) in str(info.value)
    assert name in str(info.value)


def test_svhn_extra_missing_raises(tmp_path, monkeypatch):
    write_svhn(tmp_path, monkeypatch, sizes=(("train", 20), ("test", 10)))
    load_dataset(DataOptions(name="svhn", data_dir=str(tmp_path), val_size=2))  # fine without
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset(DataOptions(name="svhn", data_dir=str(tmp_path), val_size=2,
                                 svhn_extra=True))
    assert str(tmp_path.resolve()) in str(info.value)


def test_corrupted_file_raises_dataset_unavailable(tmp_path, monkeypatch):
    write_cifar10(tmp_path, monkeypatch)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:-10])  # md5 no longer matches
    with pytest.raises(DatasetUnavailableError, match="corrupted"):
        load_dataset(DataOptions(name="cifar10", data_dir=str(tmp_path), val_size=5))


# ---------------------------------------------------------------------------- prepare, augment


@pytest.fixture
def cifar10_splits(tmp_path, monkeypatch):
    write_cifar10(tmp_path, monkeypatch, per_batch=40)
    return load_dataset(DataOptions(name="cifar10", data_dir=str(tmp_path), val_size=20))


def test_prepare_normalises_to_float32(cifar10_splits):
    prepare = cifar10_splits.prepare
    assert prepare is not None
    raw = cifar10_splits.train_x
    out = prepare(raw)
    assert out.dtype == torch.float32 and out.shape == raw.shape
    assert raw.dtype == torch.uint8  # not in place
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in CHANNEL_STATS["cifar10"])
    expected = (raw.float() / 255.0 - mean) / std
    assert torch.allclose(out, expected, atol=1e-4)
    # Uniform random pixels: per-channel mean (0.5 - mean) / std, variance 1/12 / std^2.
    assert torch.allclose(out.mean(dim=(0, 2, 3)), ((0.5 - mean) / std).flatten(), atol=0.05)
    # Random images drawn with the dataset's channel statistics normalise to ~N(0, 1).
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn((64, 3, 32, 32), generator=generator) * std * 255 + mean * 255
    images = pixels.round().clamp(0, 255).to(torch.uint8)
    prepared = prepare(images)
    assert prepared.dtype == torch.float32 and prepared.shape == images.shape
    assert prepared.mean(dim=(0, 2, 3)).abs().max().item() < 0.05
    # (clamping to [0, 255] trims the tails, ~2 std from the mean: std a little under 1)
    assert torch.allclose(prepared.std(dim=(0, 2, 3)), torch.ones(3), atol=0.1)


def test_train_batcher_augments_and_leaves_eval_alone(cifar10_splits):
    splits = cifar10_splits
    assert splits.augmenter is not None and splits.augmenter.cutout_px == 16
    before = {k: getattr(splits, k).clone() for k in ("train_x", "val_x", "test_x")}
    batcher = TrainBatcher(splits, batch_size=64, generator=torch.Generator().manual_seed(0))
    changed = 0
    for ids, x, y in batcher.epoch_batches():
        plain = splits.prepare(splits.train_x[ids])
        assert x.shape == plain.shape and x.dtype == torch.float32
        assert torch.equal(y, splits.train_y[ids])
        changed += int((x != plain).flatten(1).any(dim=1).sum())
        assert (x == 0).any()  # cutout / crop padding leave exact zeros
    # Cutout alone touches every image; crop/flip almost all.
    assert changed == splits.num_train
    for key, tensor in before.items():
        assert torch.equal(getattr(splits, key), tensor), key
        assert getattr(splits, key).dtype == torch.uint8


def test_train_batcher_without_augmentation_is_prepare_only(tmp_path, monkeypatch):
    write_cifar10(tmp_path, monkeypatch)
    splits = load_dataset(DataOptions(name="cifar10", data_dir=str(tmp_path), val_size=10,
                                      augment=False))
    assert splits.augmenter is None
    batcher = TrainBatcher(splits, batch_size=16, generator=torch.Generator().manual_seed(0))
    for ids, x, _ in batcher.epoch_batches():
        assert torch.equal(x, splits.prepare(splits.train_x[ids]))


@pytest.mark.parametrize("method_name", ["sb", "stale_sb"])
def test_augmented_image_batches_through_both_selection_backends(cifar10_splits, method_name):
    """Prepared, augmented CIFAR batches (float32 N x 3 x 32 x 32) through SB's compiled CPU
    step and its torch step: the same backward batches, image for image."""
    from sbbench.selection import Scores, SelectionSettings, build_method

    splits = cifar10_splits
    per_example_loss = torch.rand(splits.num_train, generator=torch.Generator().manual_seed(1))

    def score(ids, x, y):
        return Scores(torch.zeros(len(ids), 10), per_example_loss[ids].clone())

    def backward_batches(backend):
        method = build_method(method_name, SelectionSettings(
            batch_size=16, num_train=splits.num_train, prime_epochs=0, staleness=2,
            history_size=64, backend=backend))
        # Same seed: both backends see the same augmented images.
        batcher = TrainBatcher(splits, batch_size=16, generator=torch.Generator().manual_seed(0))
        method.warm_up(*batcher.sample_batch())
        emitted = []
        for epoch in range(3):  # StaleSB: refresh, stale, refresh
            method.start_epoch(epoch)
            for ids, x, y in batcher.epoch_batches():
                for batch in method.select(ids, x, y, score):
                    method.after_backward(batch, per_example_loss[batch.ids], None)
                    emitted.append(batch)
            emitted += method.end_epoch()
        return emitted

    compiled, reference = backward_batches("auto"), backward_batches("torch")
    assert len(compiled) == len(reference) > 3
    for a, b in zip(compiled, reference):
        assert a.x.shape[1:] == (3, 32, 32) and a.x.dtype == torch.float32
        assert torch.equal(a.ids, b.ids) and torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
        assert torch.equal(a.y, splits.train_y[a.ids])


def test_planned_stale_epoch_loads_augmented_kept_images(cifar10_splits, tmp_path):
    """A StaleSB run on augmented CIFAR-format data: the stale epoch is planned, and its
    backward batches are loaded like any training batch (prepared, augmented) and only for
    the kept examples; the run is reproducible."""
    from sbbench.config import RunConfig
    from sbbench.selection import BackwardBatch
    from sbbench.tracking import NullTracker
    from sbbench.train.run import build_training

    config = RunConfig.from_dict({
        "method": "stale_sb", "dataset": "cifar10", "data_dir": str(tmp_path), "val_size": 20,
        "model": "fastnet",
        "model_width": 4, "batch_size": 16, "epochs": 3, "prime_epochs": 0, "staleness": 2,
        "eval_every_examples": 10**9, "device": "cpu", "num_threads": 1, "seed": 2})

    def run():
        loop = build_training(config, NullTracker(), torch.device("cpu"), cifar10_splits)
        trained, planned = [], []
        step, plan_epoch = loop.train_step, loop.method.plan_epoch

        def recording_step(batch: BackwardBatch):
            trained.append((loop.method.epoch, batch.ids.clone(), batch.x.clone()))
            step(batch)

        def recording_plan(order):
            plan = plan_epoch(order)
            planned.append(plan is not None)
            return plan

        loop.train_step, loop.method.plan_epoch = recording_step, recording_plan
        loop.run()
        return trained, planned

    trained, planned = run()
    assert planned == [False, True, False]
    stale = [(ids, x) for epoch, ids, x in trained if epoch == 1]
    kept = torch.cat([ids for ids, _ in stale])
    assert 0 < kept.numel() < cifar10_splits.num_train and kept.unique().numel() == kept.numel()
    prepared = torch.cat([cifar10_splits.prepare(cifar10_splits.train_x[ids]) for ids, _ in stale])
    images = torch.cat([x for _, x in stale])
    assert images.shape == prepared.shape and images.dtype == torch.float32
    assert not torch.equal(images, prepared)  # augmented (crops, flips, cutout), not raw
    again, _ = run()
    assert all(torch.equal(a[1], b[1]) and torch.equal(a[2], b[2]) for a, b in zip(trained, again))
