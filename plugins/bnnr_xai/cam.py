"""Class activation maps on a convolutional target layer: Grad-CAM and Opti-CAM.

Both read the target layer's activations ``A`` (``(N, K, h, w)``) through a forward hook that is
removed before ``explain`` returns, weight its ``K`` channels per image, and upsample the weighted
sum bilinearly to the input size. The layer is found by :func:`bnnr_xai.layers.find_target_layer`
unless ``layer=`` names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bnnr_xai._common import (
    FLAT_RELATIVE_RANGE,
    Method,
    positive_float,
    positive_int,
    target_scores,
)
from bnnr_xai.layers import find_target_layer


class _Capture:
    """Forward hook that keeps the target layer's output ``(N, K, h, w)``, detached.

    With ``differentiable`` the kept tensor is a leaf that requires grad and the model continues
    from a copy of it, so a backward pass stops at the layer (nothing before it is recorded) and
    in-place operations after the layer (DenseNet's final ReLU) cannot change the kept values.
    Without it the kept tensor is a copy, for the same reason. A layer that runs several times
    keeps its last output.
    """

    def __init__(self, name: str, *, differentiable: bool) -> None:
        self.name = name
        self.differentiable = differentiable
        self.activations: torch.Tensor | None = None

    def __call__(self, module: nn.Module, inputs: object, output: object) -> torch.Tensor:
        if not isinstance(output, torch.Tensor) or output.ndim != 4:
            raise ValueError(
                f"target layer {self.name!r} must output a (N, K, h, w) tensor; got "
                f"{getattr(output, 'shape', type(output).__name__)}"
            )
        if not self.differentiable:
            self.activations = output.detach().clone()
            return output
        self.activations = output.detach().requires_grad_(True)
        return self.activations.clone()

    def result(self) -> torch.Tensor:
        """The captured activations; raises if the layer did not run."""
        if self.activations is None:
            raise RuntimeError(f"target layer {self.name!r} did not run in the forward pass")
        return self.activations


def _upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(N, h, w)`` to ``(N, H, W)``, bilinear."""
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


class GradCam(Method):
    """Grad-CAM (Selvaraju et al., 2017): ``ReLU(sum_k alpha_k A_k)`` with ``alpha_k`` the
    spatial mean of the target logit's gradient with respect to channel ``k``.

    One forward and one backward per batch: the backward starts from the sum of every image's
    target logit, which gives each image its own gradients because the model runs in eval mode.

    :param layer: dotted name of the target layer (e.g. ``"layer4"``); ``None`` finds it.
    """

    name = "gradcam"

    def __init__(self, *, layer: str | None = None) -> None:
        super().__init__()
        if layer is not None and not isinstance(layer, str):
            raise ValueError(f"layer must be a module name or None; got {layer!r}")
        self.layer = layer

    @property
    def options(self) -> Mapping[str, Any]:
        return {"layer": self.layer}

    def _raw_maps(
        self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        self.target_layer, module = find_target_layer(model, images, self.layer)
        capture = _Capture(self.target_layer, differentiable=True)
        handle = module.register_forward_hook(capture)
        try:
            score = target_scores(model(images), targets)
        finally:
            handle.remove()
        activations = capture.result()
        (gradients,) = torch.autograd.grad(score, activations, allow_unused=True)
        if gradients is None:  # the layer does not reach the logits
            gradients = torch.zeros_like(activations)
        alpha = gradients.mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((alpha * activations).sum(dim=1))
        return _upsample(cam, (images.shape[2], images.shape[3]))


class OptiCam(Method):
    """Opti-CAM (Zhang et al., 2023): per-image channel weights ``w`` optimised so that the image
    masked by its own saliency map keeps the target logit high.

    ``mask = minmax(upsample(sum_k softmax(w)_k A_k))`` per image. Adam maximises the sum over the
    batch of each image's target logit of ``model(images * mask)`` (BNNR 0.7 maximised the softmax
    probability instead), starting from ``w = 0`` (the channel mean). The activations are computed
    once, without gradients; all images are optimised together, one forward and one backward per
    iteration. Adam updates every weight on its own, so an image's result does not depend on the
    rest of the batch. The map is the final mask.

    :param iterations: optimisation steps (the reference implementation used 100, per image).
    :param lr: Adam's learning rate.
    :param layer: dotted name of the target layer; ``None`` finds it.
    """

    name = "opticam"

    def __init__(self, *, iterations: int = 50, lr: float = 0.1, layer: str | None = None) -> None:
        super().__init__()
        if layer is not None and not isinstance(layer, str):
            raise ValueError(f"layer must be a module name or None; got {layer!r}")
        self.iterations = positive_int("iterations", iterations)
        self.lr = positive_float("lr", lr)
        self.layer = layer

    @property
    def options(self) -> Mapping[str, Any]:
        return {"iterations": self.iterations, "lr": self.lr, "layer": self.layer}

    @staticmethod
    def _masks(
        activations: torch.Tensor, weights: torch.Tensor, size: tuple[int, int]
    ) -> torch.Tensor:
        """Masks ``(N, 1, H, W)`` in ``[0, 1]``, differentiable in ``weights`` ``(N, K)``."""
        combined = torch.einsum("nk,nkhw->nhw", torch.softmax(weights, dim=1), activations)
        upsampled = _upsample(combined, size).flatten(1)
        low = upsampled.amin(dim=1, keepdim=True)
        span = upsampled.amax(dim=1, keepdim=True) - low
        # A flat map (e.g. the channel mean at the start) would otherwise divide by zero and send
        # Adam a gradient whose square overflows, freezing the weights for good.
        magnitude = upsampled.abs().amax(dim=1, keepdim=True)
        floor = FLAT_RELATIVE_RANGE * magnitude + torch.finfo(span.dtype).tiny
        masks = (upsampled - low) / (span + floor)
        return masks.view(len(masks), 1, *size)

    def _raw_maps(
        self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        size = (images.shape[2], images.shape[3])
        self.target_layer, module = find_target_layer(model, images, self.layer)
        capture = _Capture(self.target_layer, differentiable=False)
        handle = module.register_forward_hook(capture)
        try:
            with torch.no_grad():
                model(images)
        finally:
            handle.remove()
        activations = capture.result()
        weights = activations.new_zeros(activations.shape[:2], requires_grad=True)
        optimizer = torch.optim.Adam([weights], lr=self.lr, maximize=True)
        for _ in range(self.iterations):
            masked = images * self._masks(activations, weights, size)
            (weights.grad,) = torch.autograd.grad(target_scores(model(masked), targets), weights)
            optimizer.step()
        with torch.no_grad():
            return self._masks(activations, weights, size)[:, 0]
