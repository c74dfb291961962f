"""Built-in architectures: ``small_cnn`` and torchvision's classification models by name.

Each architecture is a factory ``factory(num_classes=..., in_channels=..., **options)`` that
returns an untrained ``torch.nn.Module`` (see
:func:`bnnr_core.hookspecs.bnnr_register_architectures`). They are what ``--arch NAME`` selects
when a state dict is loaded, and what a BNNR checkpoint names in its architecture spec.

* ``small_cnn`` (:mod:`bnnr_models.small_cnn`): a compact CNN for small images (8x8 digits,
  28x28 MNIST, 32x32 CIFAR); its ``features`` submodule returns the penultimate embedding and
  ``classifier`` is the final ``Linear``.
* torchvision models (:mod:`bnnr_models.torchvision_models`), always built with
  ``weights=None``: nothing is downloaded. With ``in_channels != 3`` the first convolution is
  replaced by one that takes that many channels.

Importing this package is cheap (no torch): the hook registers factories that import torch and
torchvision only when called.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from bnnr_core import hookimpl
from bnnr_core.components import RegisterFn

if TYPE_CHECKING:
    from torch import nn

SMALL_CNN = "small_cnn"

#: torchvision classification models offered by name, with a short description. Static on
#: purpose: listing torchvision's registry would import torch whenever plugins load. Any other
#: torchvision builder stays reachable as ``--arch torchvision.models:NAME``.
TORCHVISION_MODELS: dict[str, str] = {
    "alexnet": "AlexNet",
    "convnext_tiny": "ConvNeXt-Tiny",
    "convnext_small": "ConvNeXt-Small",
    "densenet121": "DenseNet-121",
    "densenet169": "DenseNet-169",
    "efficientnet_b0": "EfficientNet-B0",
    "efficientnet_b1": "EfficientNet-B1",
    "efficientnet_b2": "EfficientNet-B2",
    "efficientnet_b3": "EfficientNet-B3",
    "efficientnet_v2_s": "EfficientNetV2-S",
    "mnasnet1_0": "MNASNet 1.0",
    "mobilenet_v2": "MobileNetV2",
    "mobilenet_v3_large": "MobileNetV3-Large",
    "mobilenet_v3_small": "MobileNetV3-Small",
    "regnet_x_400mf": "RegNetX-400MF",
    "regnet_y_400mf": "RegNetY-400MF",
    "regnet_y_800mf": "RegNetY-800MF",
    "resnet18": "ResNet-18",
    "resnet34": "ResNet-34",
    "resnet50": "ResNet-50",
    "resnet101": "ResNet-101",
    "resnet152": "ResNet-152",
    "resnext50_32x4d": "ResNeXt-50 32x4d",
    "shufflenet_v2_x0_5": "ShuffleNetV2 x0.5",
    "shufflenet_v2_x1_0": "ShuffleNetV2 x1.0",
    "squeezenet1_1": "SqueezeNet 1.1",
    "swin_t": "Swin-T",
    "vgg11_bn": "VGG-11 with batch norm",
    "vgg16": "VGG-16",
    "vgg16_bn": "VGG-16 with batch norm",
    "vit_b_16": "ViT-B/16 (224x224 inputs only)",
    "wide_resnet50_2": "Wide ResNet-50-2",
}


def _make_small_cnn(*, num_classes: int, in_channels: int = 3, **options: Any) -> nn.Module:
    from bnnr_models.small_cnn import SmallCNN

    return SmallCNN(num_classes=num_classes, in_channels=in_channels, **options)


def _make_torchvision(
    name: str, *, num_classes: int, in_channels: int = 3, **options: Any
) -> nn.Module:
    from bnnr_models.torchvision_models import build_torchvision_model

    return build_torchvision_model(
        name, num_classes=num_classes, in_channels=in_channels, **options
    )


@hookimpl
def bnnr_register_architectures(register: RegisterFn) -> None:
    """Register ``small_cnn`` and the torchvision models of :data:`TORCHVISION_MODELS`."""
    register(
        SMALL_CNN,
        _make_small_cnn,
        description=(
            "Compact 3-stage CNN for small images (8x8 to 64x64); options: width (default 32)"
        ),
        family="bnnr",
    )
    for name, title in TORCHVISION_MODELS.items():
        register(
            name,
            functools.partial(_make_torchvision, name),
            description=f"torchvision {title}, untrained (weights=None)",
            family="torchvision",
        )
