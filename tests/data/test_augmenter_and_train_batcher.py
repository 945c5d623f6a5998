"""Augmenter (crop, flip, cutout) and TrainBatcher / eval_batches on hand-made tensors."""

from __future__ import annotations

import pytest
import torch

from sbbench.data import Augmenter, DatasetSplits, TrainBatcher, eval_batches
from sbbench.data.augment import cutout, random_crop, random_flip


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _distinct_images(n: int = 16, height: int = 32, width: int = 32) -> torch.Tensor:
    """Every pixel of every image distinct (and non-zero), so moves are detectable."""
    return torch.arange(1, n * 3 * height * width + 1, dtype=torch.float32).view(n, 3, height,
                                                                                   width)


# ---------------------------------------------------------------------------- cutout


@pytest.mark.parametrize("size", [8, 5, 16])
def test_cutout_zeroes_one_clipped_square_per_image(size):
    n, height, width = 200, 32, 32
    images = torch.ones(n, 3, height, width)
    out = cutout(images, size, _gen(1))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert torch.equal(images, torch.ones_like(images))  # input untouched
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    zero = out == 0
    # Same mask in every channel.
    assert torch.equal(zero[:, 0], zero[:, 1]) and torch.equal(zero[:, 0], zero[:, 2])
    mask = zero[:, 0]
    counts = mask.flatten(1).sum(dim=1)
    assert (counts > 0).all()
    assert (counts <= size * size).all()
    interior = 0
    for image_mask, count in zip(mask, counts.tolist()):
        rows = image_mask.any(dim=1).nonzero().flatten()
        cols = image_mask.any(dim=0).nonzero().flatten()
        top, bottom = int(rows.min()), int(rows.max())
        left, right = int(cols.min()), int(cols.max())
        # The zeroed pixels form one solid rectangle ...
        assert count == (bottom - top + 1) * (right - left + 1)
        assert image_mask[top:bottom + 1, left:right + 1].all()
        # ... which is the full size x size square when it does not touch the border.
        if top > 0 and left > 0 and bottom < height - 1 and right < width - 1:
            assert count == size * size
            interior += 1
        else:
            assert bottom - top + 1 <= size and right - left + 1 <= size
    assert interior > n // 4  # most centres are away from the border


def test_cutout_centres_cover_the_image():
    out = cutout(torch.ones(500, 1, 32, 32), 1, _gen(2))
    # size 1 zeroes exactly the centre pixel: every one of the 500 images has exactly one zero.
    assert torch.equal((out == 0).flatten(1).sum(dim=1), torch.ones(500, dtype=torch.int64))
    centres = (out[:, 0] == 0).nonzero()
    assert int(centres[:, 1].min()) <= 2 and int(centres[:, 1].max()) >= 29
    assert int(centres[:, 2].min()) <= 2 and int(centres[:, 2].max()) >= 29


# ---------------------------------------------------------------------------- flip, crop


def test_random_flip_reverses_width_for_about_half():
    images = _distinct_images(64)
    out = random_flip(images, _gen(3))
    assert out.shape == images.shape
    flipped = 0
    for original, result in zip(images, out):
        if torch.equal(result, original):
            continue
        assert torch.equal(result, original.flip(2))  # CHW: width is the last dim
        assert torch.equal(result[:, :, 0], original[:, :, -1])
        assert torch.equal(result[:, 5, :], original[:, 5, :].flip(1))  # rows stay rows
        flipped += 1
    assert 10 < flipped < 54


def test_random_crop_is_a_window_of_the_zero_padded_image():
    padding = 4
    images = _distinct_images(24)
    out = random_crop(images, padding, _gen(4))
    assert out.shape == images.shape and out.dtype == images.dtype
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    offsets = set()
    for index, result in enumerate(out):
        matches = [(dy, dx) for dy in range(2 * padding + 1) for dx in range(2 * padding + 1)
                   if torch.equal(result, padded[index, :, dy:dy + 32, dx:dx + 32])]
        assert len(matches) == 1, index
        offsets.add(matches[0])
    assert len(offsets) > 5  # random offsets, not one fixed shift
    # Pixels shifted in from the padding are zero; all others come from the image.
    nonzero = out[out != 0]
    assert torch.isin(nonzero, images.flatten()).all()


def test_augmenter_pipeline_seeded_and_shape_preserving():
    images = _distinct_images(32)
    augmenter = Augmenter(crop_padding_px=4, flip=True, cutout_px=16)
    first = augmenter(images, _gen(5))
    second = augmenter(images, _gen(5))
    other = augmenter(images, _gen(6))
    assert first.shape == images.shape
    assert torch.equal(first, second)
    assert not torch.equal(first, other)
    assert not torch.equal(first, images)
    assert torch.equal(images, _distinct_images(32))  # input untouched
    # One generator, consumed in order: two calls in a row differ from each other.
    generator = _gen(5)
    a, b = augmenter(images, generator), augmenter(images, generator)
    assert torch.equal(a, first) and not torch.equal(a, b)


def test_augmenter_without_options_is_identity():
    images = _distinct_images(4)
    assert torch.equal(Augmenter()(images, _gen(0)), images)


@pytest.mark.parametrize("augmenter", [Augmenter(cutout_px=20), Augmenter(flip=True),
                                       Augmenter(crop_padding_px=2)])
def test_each_augmentation_alone_changes_some_images(augmenter):
    images = _distinct_images(16)
    out = augmenter(images, _gen(7))
    assert out.shape == images.shape
    assert (out != images).flatten(1).any(dim=1).any()


# ---------------------------------------------------------------------------- TrainBatcher


def _splits(n: int = 103, classes: int = 10) -> DatasetSplits:
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1).expand(n, 1, 40).contiguous()
    y = (torch.arange(n) * 7) % classes
    return DatasetSplits(name="toy", num_classes=classes, input_shape=(1, 40), train_x=x,
                         train_y=y, train_clean_y=y.clone(), noisy_ids=torch.empty(0, dtype=torch.int64),
                         val_x=x[:5].clone(), val_y=y[:5].clone(), test_x=x[:7].clone(),
                         test_y=y[:7].clone(), augmenter=None, digest="toy", source="test")


def _epoch(batcher: TrainBatcher):
    return [(ids.clone(), x.clone(), y.clone()) for ids, x, y in batcher.epoch_batches()]


def test_train_batcher_covers_every_id_once_with_partial_last_batch():
    splits = _splits(103)
    batcher = TrainBatcher(splits, batch_size=10, generator=_gen(0))
    assert len(batcher) == 11
    batches = _epoch(batcher)
    assert [ids.numel() for ids, _, _ in batches] == [10] * 10 + [3]
    all_ids = torch.cat([ids for ids, _, _ in batches])
    assert all_ids.dtype == torch.int64
    assert sorted(all_ids.tolist()) == list(range(103))
    assert not torch.equal(all_ids, torch.arange(103))  # shuffled
    for ids, x, y in batches:
        assert torch.equal(x, splits.train_x[ids])
        assert torch.equal(y, splits.train_y[ids])
        assert torch.equal(x[:, 0, 0].long(), ids)  # the toy x encodes its id


def test_train_batcher_drop_last():
    batcher = TrainBatcher(_splits(103), batch_size=10, generator=_gen(0), drop_last=True)
    assert len(batcher) == 10
    batches = _epoch(batcher)
    assert [ids.numel() for ids, _, _ in batches] == [10] * 10
    ids = torch.cat([ids for ids, _, _ in batches])
    assert ids.unique().numel() == 100


def test_train_batcher_exact_multiple_has_no_empty_batch():
    batcher = TrainBatcher(_splits(100), batch_size=25, generator=_gen(0))
    assert len(batcher) == 4
    assert [ids.numel() for ids, _, _ in _epoch(batcher)] == [25] * 4


def test_train_batcher_seeded_order_and_epochs_differ():
    splits = _splits(103)
    one = TrainBatcher(splits, batch_size=10, generator=_gen(11))
    two = TrainBatcher(splits, batch_size=10, generator=_gen(11))
    epoch1_a, epoch1_b = _epoch(one), _epoch(two)
    order_a = torch.cat([ids for ids, _, _ in epoch1_a])
    assert torch.equal(order_a, torch.cat([ids for ids, _, _ in epoch1_b]))
    epoch2_a, epoch2_b = _epoch(one), _epoch(two)
    order2 = torch.cat([ids for ids, _, _ in epoch2_a])
    assert torch.equal(order2, torch.cat([ids for ids, _, _ in epoch2_b]))
    assert not torch.equal(order_a, order2)
    assert sorted(order2.tolist()) == list(range(103))
    other = torch.cat([ids for ids, _, _ in _epoch(TrainBatcher(splits, 10, _gen(12)))])
    assert not torch.equal(order_a, other)


def test_train_batcher_applies_prepare_and_augmenter():
    splits = _splits(20)
    calls = []

    def prepare(x):
        calls.append("prepare")
        return x * 2 + 1

    def augmenter(x, generator):
        calls.append("augment")
        assert isinstance(generator, torch.Generator)
        return -x

    splits.prepare, splits.augmenter = prepare, augmenter
    batcher = TrainBatcher(splits, batch_size=8, generator=_gen(0))
    for ids, x, y in batcher.epoch_batches():
        assert torch.equal(x, -(splits.train_x[ids] * 2 + 1))  # prepare first, then augment
    assert calls == ["prepare", "augment"] * 3
    assert torch.equal(splits.train_x, _splits(20).train_x)  # storage untouched


@pytest.mark.parametrize("batch_size", [0, -3])
def test_train_batcher_rejects_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        TrainBatcher(_splits(10), batch_size=batch_size, generator=_gen(0))


def test_eval_batches_in_order_with_partial_last():
    x = torch.arange(23).view(23, 1).float()
    y = torch.arange(23)
    batches = list(eval_batches(x, y, 5))
    assert [b[0].shape[0] for b in batches] == [5, 5, 5, 5, 3]
    assert torch.equal(torch.cat([b[0] for b in batches]), x)
    assert torch.equal(torch.cat([b[1] for b in batches]), y)
