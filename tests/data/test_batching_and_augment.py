import torch

from sbbench.data import DataOptions, TrainBatcher, load_dataset
from sbbench.data.augment import Augmenter, cutout, random_crop, random_flip


def test_batcher_covers_every_id_once(tmp_path):
    splits = load_dataset(DataOptions(data_dir=str(tmp_path), train_size=300, val_size=50,
                                      test_size=50))
    batcher = TrainBatcher(splits, 64, torch.Generator().manual_seed(0))
    epochs = []
    for _ in range(2):
        batches = list(batcher.epoch_batches())
        assert [len(ids) for ids, _, _ in batches] == [64, 64, 64, 64, 44]
        ids = torch.cat([b[0] for b in batches])
        assert sorted(ids.tolist()) == list(range(300))
        for ids_b, x, y in batches:
            assert torch.equal(x, splits.train_x[ids_b]) and torch.equal(y, splits.train_y[ids_b])
        epochs.append(ids)
    assert not torch.equal(epochs[0], epochs[1])
    repeat = TrainBatcher(splits, 64, torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat([b[0] for b in repeat.epoch_batches()]), epochs[0])


def test_cutout_flip_crop():
    images = torch.ones(8, 3, 32, 32)
    cut = cutout(images, 8, torch.Generator().manual_seed(0))
    zeroed = (cut[:, 0] == 0).flatten(1).sum(dim=1)
    assert (zeroed > 0).all() and (zeroed <= 64).all()
    assert (cut[:, 0] == 0).equal(cut[:, 2] == 0)  # same square on every channel
    ramp = torch.arange(32.0).expand(4, 3, 32, 32)
    flipped = random_flip(ramp, torch.Generator().manual_seed(1))
    assert all(torch.equal(f, r) or torch.equal(f, r.flip(2)) for f, r in zip(flipped, ramp))
    cropped = random_crop(ramp, 4, torch.Generator().manual_seed(2))
    assert cropped.shape == ramp.shape
    augment = Augmenter(crop_padding_px=4, flip=True, cutout_px=16)
    a = augment(ramp, torch.Generator().manual_seed(3))
    b = augment(ramp, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
