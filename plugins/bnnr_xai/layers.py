"""Finding the convolutional target layer of a CAM method.

A *candidate* is a submodule that is an ``nn.Conv2d`` or contains one and whose output, for the
given input size, is a 4-D tensor ``(N, K, h, w)`` with more than one spatial position. Forward
hooks fire when a module *finishes*, after its children, so the last candidate to finish during
a forward pass is the outermost convolutional block before global pooling and flattening:
``features.block3`` for ``small_cnn``, ``layer4`` for a ResNet at 224x224 (``layer3`` at 32x32,
where ``layer4`` is 1x1), ``features`` for VGG, AlexNet, DenseNet, MobileNet, EfficientNet and
ConvNeXt. Pooling layers after the last convolution (VGG's ``avgpool``) contain no ``nn.Conv2d``
and are not candidates.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from bnnr_xai import NoConvolutionalLayer

#: How many candidate names an unknown-layer error lists (the last ones, nearest the output).
LISTED_CANDIDATES = 12


def _conv_containing(model: nn.Module) -> dict[str, nn.Module]:
    """Submodules (not the model itself) that are or contain an ``nn.Conv2d``, by dotted name."""
    modules = dict(model.named_modules())
    names: set[str] = set()
    for name, module in modules.items():
        if isinstance(module, nn.Conv2d):
            parts = name.split(".")
            names.update(".".join(parts[: end + 1]) for end in range(len(parts)))
    return {name: modules[name] for name in modules if name in names}


def layer_candidates(model: nn.Module, probe: torch.Tensor) -> list[str]:
    """Names of the candidate layers in the order they finish in a forward pass on ``probe``.

    The model should already be in eval mode; ``probe`` is one image ``(1, C, H, W)``. A module
    that runs several times is placed where it finished last.
    """
    finished: list[str] = []

    def recorder(name: str) -> Callable[[nn.Module, object, object], None]:
        def record(module: nn.Module, inputs: object, output: object) -> None:
            if not isinstance(output, torch.Tensor) or output.ndim != 4:
                return
            if output.shape[2] * output.shape[3] > 1:
                finished.append(name)

        return record

    handles = [
        module.register_forward_hook(recorder(name))
        for name, module in _conv_containing(model).items()
    ]
    try:
        with torch.no_grad():
            model(probe)
    finally:
        for handle in handles:
            handle.remove()
    last_seen = {name: position for position, name in enumerate(finished)}
    return sorted(last_seen, key=last_seen.__getitem__)


def find_target_layer(
    model: nn.Module, images: torch.Tensor, layer: str | None = None
) -> tuple[str, nn.Module]:
    """The target layer for ``images``: ``layer`` by dotted name, else the last candidate.

    :raises ValueError: ``layer`` names no submodule (the message lists candidate names).
    :raises NoConvolutionalLayer: ``layer`` is ``None`` and the model has no candidate.
    """
    if layer is not None:
        modules = dict(model.named_modules())
        if layer and layer in modules:
            return layer, modules[layer]
        candidates = layer_candidates(model, images[:1])
        listed = ", ".join(candidates[-LISTED_CANDIDATES:]) or "none"
        raise ValueError(
            f"{type(model).__name__} has no submodule named {layer!r}; convolutional layers "
            f"nearest the output, last is the default: {listed}"
        )
    candidates = layer_candidates(model, images[:1])
    if not candidates:
        height, width = images.shape[-2:]
        raise NoConvolutionalLayer(
            f"{type(model).__name__} has no nn.Conv2d layer whose output is larger than 1x1 for "
            f"{height}x{width} inputs; use a gradient method (saliency, smoothgrad, "
            "integrated_gradients)"
        )
    name = candidates[-1]
    return name, model.get_submodule(name)
