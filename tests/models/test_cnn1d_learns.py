"""cnn1d fits a small separable 1-D task: the loss has to fall, not merely run."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tests.models.helpers import MNIST1D_SHAPE, seeded_build

NUM_CLASSES = 4
LENGTH = MNIST1D_SHAPE[1]         # samples
NOISE_STD = 0.5
STEPS, BATCH, LR, MOMENTUM = 200, 64, 0.05, 0.9


def sine_dataset(size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Class k is a sine of k + 1 cycles per sequence at a random phase, plus Gaussian noise:
    separable, but only by shape, not by the position of any one sample."""
    labels = torch.randint(0, NUM_CLASSES, (size,), generator=generator)
    phase = torch.rand(size, 1, generator=generator) * 2 * torch.pi
    time = torch.arange(LENGTH) / LENGTH
    clean = torch.sin(2 * torch.pi * (labels[:, None] + 1) * time + phase)
    noise = NOISE_STD * torch.randn(size, LENGTH, generator=generator)
    return (clean + noise).unsqueeze(1), labels


def test_cnn1d_learns_a_separable_task():
    generator = torch.Generator().manual_seed(0)
    train_x, train_y = sine_dataset(1024, generator)
    test_x, test_y = sine_dataset(512, generator)
    model = seeded_build("cnn1d", num_classes=NUM_CLASSES)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    with torch.no_grad():
        initial = F.cross_entropy(model.eval()(train_x), train_y).item()
    model.train()
    losses = []
    for _ in range(STEPS):
        ids = torch.randint(0, train_x.shape[0], (BATCH,), generator=generator)
        loss = F.cross_entropy(model(train_x[ids]), train_y[ids])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    final = sum(losses[-20:]) / 20
    assert initial > 1.0                # near ln(4) = 1.39: nothing learnt before training
    assert final < initial / 10, (initial, final)
    model.eval()
    with torch.no_grad():
        accuracy = (model(test_x).argmax(dim=1) == test_y).float().mean().item()
    assert accuracy > 0.95
