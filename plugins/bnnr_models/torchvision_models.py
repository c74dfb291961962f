"""torchvision classification models by name, untrained, with any number of input channels."""

from __future__ import annotations

from typing import Any

from torch import nn


def build_torchvision_model(
    name: str, *, num_classes: int, in_channels: int = 3, **options: Any
) -> nn.Module:
    """``torchvision.models.get_model(name, weights=None, num_classes=...)``.

    With ``in_channels != 3`` the first ``Conv2d`` (the stem) is replaced by an identical one
    that takes ``in_channels`` channels. ``options`` go to the torchvision builder.
    """
    import torchvision

    # weights=None always: a pretrained download would break offline use, and the weights
    # being loaded come from the user's checkpoint anyway.
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **options)
    if in_channels != 3:
        replace_stem_conv(model, in_channels)
    return model


def replace_stem_conv(model: nn.Module, in_channels: int) -> str:
    """Replace the first ``Conv2d`` that takes 3 channels with one taking ``in_channels``.

    Returns the qualified name of the replaced layer. Raises :class:`ValueError` when the model
    has no such convolution.
    """
    for qualified_name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            replacement = nn.Conv2d(
                in_channels,
                module.out_channels,
                kernel_size=module.kernel_size,  # type: ignore[arg-type]
                stride=module.stride,  # type: ignore[arg-type]
                padding=module.padding,  # type: ignore[arg-type]
                dilation=module.dilation,  # type: ignore[arg-type]
                groups=module.groups,
                bias=module.bias is not None,
                padding_mode=module.padding_mode,
            )
            parent_name, _, attribute = qualified_name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, attribute, replacement)
            return qualified_name
    raise ValueError(f"{type(model).__name__} has no 3-channel Conv2d stem to adapt")
