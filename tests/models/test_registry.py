"""The registry's contract: names, input kinds, options, defaults, errors, parameter counts."""

from __future__ import annotations

import pytest
import torch

from sbbench.models import (DEFAULT_MODEL_FOR_DATASET, IMAGE_SHAPE, MODELS, build_model,
                            count_parameters)
from tests.models.helpers import MNIST1D_SHAPE, seeded_build

EXPECTED_MODELS = {"cnn1d", "mlp1d", "resnet18", "wrn28_10", "wrn16_8", "mobilenetv2", "fastnet"}


def test_registry_holds_the_expected_models_with_kinds_and_descriptions():
    assert set(MODELS) == EXPECTED_MODELS
    for name, spec in MODELS.items():
        assert spec.input_kinds and set(spec.input_kinds) <= {"1d", "image"}, name
        assert spec.description.strip(), name
        assert set(spec.options) <= {"dropout", "width"}, name
    assert MODELS["cnn1d"].input_kinds == ("1d",) and MODELS["resnet18"].input_kinds == ("image",)


def test_default_models_exist_and_accept_their_dataset():
    assert DEFAULT_MODEL_FOR_DATASET == {"mnist1d": "cnn1d", "cifar10": "resnet18",
                                         "cifar100": "resnet18", "svhn": "wrn16_8"}
    for dataset, name in DEFAULT_MODEL_FOR_DATASET.items():
        assert dataset in MODELS[name].datasets  # what config validation checks


def test_unknown_name_lists_the_allowed_ones():
    with pytest.raises(ValueError, match=r"model 'vgg99' unknown; allowed: cnn1d, fastnet"):
        build_model("vgg99", 10, IMAGE_SHAPE)


@pytest.mark.parametrize("name, shape", [("cnn1d", IMAGE_SHAPE), ("mlp1d", (3, 32, 32)),
                                         ("resnet18", MNIST1D_SHAPE), ("fastnet", (1, 28, 28)),
                                         ("wrn16_8", (3, 64, 64)), ("cnn1d", (40,))])
def test_mismatched_input_shape_names_model_and_shape(name, shape):
    with pytest.raises(ValueError, match=rf"model '{name}' takes .* got input_shape"):
        build_model(name, 10, shape)


def test_option_the_model_lacks_is_refused_not_ignored():
    with pytest.raises(ValueError, match="'cnn1d' has no dropout option; it takes: width"):
        build_model("cnn1d", 10, MNIST1D_SHAPE, dropout=0.1)
    with pytest.raises(ValueError, match="'mobilenetv2' has no width option; it takes: none"):
        build_model("mobilenetv2", 10, IMAGE_SHAPE, width=2)


@pytest.mark.parametrize("options", [{"dropout": 1.0}, {"dropout": -0.1}, {"width": 0}])
def test_out_of_range_options_are_refused(options):
    with pytest.raises(ValueError, match="allowed"):
        build_model("wrn16_8", 10, IMAGE_SHAPE, **options)


def test_num_classes_must_be_positive():
    with pytest.raises(ValueError, match="num_classes"):
        build_model("cnn1d", 0, MNIST1D_SHAPE)


def test_width_sets_the_channels():
    narrow = seeded_build("cnn1d", width=16)
    assert all(conv.out_channels == 16 for conv in narrow.modules()
               if isinstance(conv, torch.nn.Conv1d))
    assert count_parameters(narrow) < count_parameters(seeded_build("cnn1d"))
    assert seeded_build("mlp1d", width=32).net[1].out_features == 32
    assert seeded_build("resnet18", width=8).head.in_features == 64      # 8 * 8 in stage 4
    assert seeded_build("fastnet", width=8).head.in_features == 64
    assert seeded_build("wrn16_8", width=2).head.in_features == 128      # 64 * widen 2


@pytest.mark.parametrize("name, shape", [("cnn1d", (2, 64)), ("mlp1d", (3, 20))])
def test_1d_models_take_other_channel_counts_and_lengths(name, shape):
    model = build_model(name, 3, shape).eval()
    assert model(torch.zeros(2, *shape)).shape == (2, 3)


def test_parameter_count_follows_num_classes():
    ten = count_parameters(build_model("resnet18", 10, IMAGE_SHAPE))
    hundred = count_parameters(build_model("resnet18", 100, IMAGE_SHAPE))
    assert hundred - ten == 90 * (512 + 1)  # a 512-feature linear head with bias


def _wide_block_dropouts(model: torch.nn.Module) -> set[float]:
    return {block.dropout for block in model.groups}


def test_wideresnet_dropout_defaults_and_override():
    assert _wide_block_dropouts(seeded_build("wrn16_8")) == {0.4}
    assert _wide_block_dropouts(seeded_build("wrn16_8", dropout=0.0)) == {0.0}
    assert _wide_block_dropouts(seeded_build("wrn28_10", width=1)) == {0.3}


# Published counts for 10 classes (ResNet-18 and MobileNetV2: the common CIFAR implementations;
# WRN: Zagoruyko & Komodakis table 2 / reference code). Ours: 11,173,962 / 36,479,194 /
# 10,961,370 / 2,236,682.
@pytest.mark.parametrize("name, published", [("resnet18", 11.17e6), ("wrn28_10", 36.5e6),
                                             ("wrn16_8", 11.0e6), ("mobilenetv2", 2.25e6),
                                             ("fastnet", 6.57e6)])
def test_parameter_counts_match_the_published_ones(name, published):
    count = count_parameters(build_model(name, 10, IMAGE_SHAPE))
    assert count == pytest.approx(published, rel=0.02)


def test_wideresnet_init_follows_the_reference():
    model = seeded_build("wrn16_8", width=1)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(bool((bn.weight == 1).all()) and bool((bn.bias == 0).all()) for bn in bns)
    assert bool((model.head.bias == 0).all())
    conv = model.groups[0].conv1                # 3x3, 16 out channels: fan_out = 144
    assert conv.weight.std().item() == pytest.approx((2 / (16 * 9)) ** 0.5, rel=0.15)
