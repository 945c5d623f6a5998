import pytest
import torch

from sbbench.models import MODELS, build_model, count_parameters


def shape_for(name):
    return (1, 40) if "mnist1d" in MODELS[name].datasets else (3, 32, 32)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_backward(name):
    torch.manual_seed(0)
    model = build_model(name, 10, shape_for(name))
    out = model(torch.randn(3, *shape_for(name)))
    assert out.shape == (3, 10) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name, published", [("resnet18", 11.17e6), ("wrn28_10", 36.5e6),
                                             ("wrn16_8", 11.0e6), ("mobilenetv2", 2.24e6)])
def test_parameter_counts(name, published):
    assert count_parameters(build_model(name, 10, (3, 32, 32))) == pytest.approx(published,
                                                                                 rel=0.02)


def test_bad_model_names_and_shapes():
    with pytest.raises(ValueError, match="allowed"):
        build_model("vgg99", 10, (3, 32, 32))
    with pytest.raises(ValueError, match="does not fit"):
        build_model("cnn1d", 10, (3, 32, 32))


def test_cnn1d_learns_a_separable_task():
    generator = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (512,), generator=generator)
    x = torch.randn(512, 1, 40, generator=generator) * 0.5
    x[torch.arange(512), 0, y * 10] += 3.0  # a bump whose position is the class
    torch.manual_seed(0)
    model = build_model("cnn1d", 4, (1, 40))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for step in range(200):
        ids = torch.randint(0, 512, (64,), generator=generator)
        loss = torch.nn.functional.cross_entropy(model(x[ids]), y[ids])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-20:]) / 20 < sum(losses[:20]) / 20 / 5
