"""The built-in ``models`` plugin: ``small_cnn`` and torchvision architectures by name."""

from __future__ import annotations

import bnnr_models
import pytest
import torch
import torchvision
from bnnr_models.small_cnn import SmallCNN
from bnnr_models.torchvision_models import replace_stem_conv
from torch import nn

from bnnr_core.plugins import PluginHost, load_plugins
from bnnr_core.testing import fake_entry_point


@pytest.fixture
def host() -> PluginHost:
    host = load_plugins(autoload=False)
    record = host.register(bnnr_models, "models")
    assert record.status == "ok", record.error
    return host


def test_registers_small_cnn_and_the_torchvision_models(host: PluginHost) -> None:
    names = set(host.available("architecture"))
    assert names == {"small_cnn", *bnnr_models.TORCHVISION_MODELS}
    assert {"resnet18", "resnet34", "resnet50", "mobilenet_v3_small", "efficientnet_b0"} <= names
    component = host.component("architecture", "resnet18")
    assert component.plugin == "models"
    assert component.metadata["family"] == "torchvision"
    assert "weights=None" in component.description
    assert host.component("architecture", "small_cnn").metadata["family"] == "bnnr"


def test_loads_through_the_entry_point_path_like_any_plugin() -> None:
    entry_point = fake_entry_point("models", bnnr_models, distribution="bnnr", version="0.1.0")
    host = load_plugins(entry_points=[entry_point], environ={})
    record = host.record("models")
    assert (record.status, record.builtin) == ("ok", True), record.error
    assert record.hooks == ("bnnr_register_architectures",)
    assert "small_cnn" in record.provides["architecture"]


def test_every_listed_torchvision_model_exists_in_torchvision() -> None:
    available = set(torchvision.models.list_models(module=torchvision.models))
    assert set(bnnr_models.TORCHVISION_MODELS) <= available


@pytest.mark.parametrize(
    ("in_channels", "side"), [(1, 8), (3, 32), (1, 28), (3, 4)], ids=["8x8", "32x32", "28", "4"]
)
def test_small_cnn_handles_small_images(host: PluginHost, in_channels: int, side: int) -> None:
    model = host.component("architecture", "small_cnn").create(
        num_classes=10, in_channels=in_channels
    )
    images = torch.randn(3, in_channels, side, side)
    assert model(images).shape == (3, 10)


def test_small_cnn_exposes_its_penultimate_embedding() -> None:
    torch.manual_seed(0)
    model = SmallCNN(num_classes=4, in_channels=1, width=8).eval()
    images = torch.randn(5, 1, 8, 8)
    embedding = model.features(images)
    assert embedding.shape == (5, model.embedding_dim) == (5, 32)
    assert isinstance(model.classifier, nn.Linear)
    assert model.classifier.in_features == model.embedding_dim
    assert torch.equal(model.classifier(embedding), model(images))
    captured: list[torch.Tensor] = []
    model.classifier.register_forward_hook(lambda _m, inputs, _o: captured.append(inputs[0]))
    model(images)
    assert torch.equal(captured[0], embedding)
    assert isinstance(model.features.get_submodule("block3.0"), nn.Conv2d)


def test_small_cnn_rejects_nonsense_sizes() -> None:
    with pytest.raises(ValueError, match="positive"):
        SmallCNN(num_classes=0, in_channels=1)


def test_torchvision_model_gets_requested_classes_and_one_channel_stem(host: PluginHost) -> None:
    model = host.component("architecture", "resnet18").create(num_classes=7, in_channels=1)
    assert isinstance(model, torchvision.models.ResNet)
    assert model.conv1.in_channels == 1
    assert model.fc.out_features == 7
    assert model.eval()(torch.randn(2, 1, 32, 32)).shape == (2, 7)


@pytest.mark.parametrize(
    "name", ["mobilenet_v3_small", "efficientnet_b0", "shufflenet_v2_x0_5", "squeezenet1_1"]
)
def test_stem_adaptation_works_across_families(host: PluginHost, name: str) -> None:
    model = host.component("architecture", name).create(num_classes=5, in_channels=1).eval()
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.in_channels == 1
    with torch.no_grad():
        assert model(torch.randn(2, 1, 64, 64)).shape == (2, 5)


def test_three_channel_models_are_left_as_torchvision_builds_them(host: PluginHost) -> None:
    model = host.component("architecture", "resnet18").create(num_classes=3, in_channels=3)
    reference = torchvision.models.resnet18(weights=None, num_classes=3)
    assert [k for k in model.state_dict()] == [k for k in reference.state_dict()]


def test_replace_stem_conv_reports_models_without_an_rgb_conv() -> None:
    with pytest.raises(ValueError, match="no 3-channel Conv2d"):
        replace_stem_conv(nn.Sequential(nn.Linear(3, 2)), 1)
    model = nn.Sequential(nn.Conv2d(3, 4, 5, stride=2, padding=1, bias=False))
    assert replace_stem_conv(model, 2) == "0"
    conv = model[0]
    assert isinstance(conv, nn.Conv2d)
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride) == (
        2,
        4,
        (5, 5),
        (2, 2),
    )
    assert conv.bias is None
