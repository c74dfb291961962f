"""Built-in saliency (XAI) methods: ``gradcam``, ``opticam``, ``saliency``, ``smoothgrad`` and
``integrated_gradients``.

Every method satisfies :class:`bnnr_core.protocols.XaiMethod`: ``explain(model, images, targets)``
takes a batch ``(N, C, H, W)`` already normalised for the model and the class index to explain
for each image ``(N,)``, and returns detached float32 maps ``(N, H, W)`` in ``[0, 1]`` (per-image
min-max; a flat map is all zeros, never NaN) at input resolution, on the input's device. The model
is left as it was: train/eval flags, ``requires_grad`` flags, no ``.grad`` and no hooks left.
Each method also has ``batched_backward`` (``True``: no method loops over images; every forward
and backward pass serves the whole batch) and ``describe()`` (name, options, the target layer
chosen, the backend), for the report.

* :mod:`bnnr_xai.cam`: Grad-CAM and Opti-CAM, on a convolutional target layer that
  :mod:`bnnr_xai.layers` finds automatically (or ``layer=`` names); a model without one raises
  :class:`NoConvolutionalLayer`, and a caller falls back to a gradient method.
* :mod:`bnnr_xai.gradients`: vanilla gradient, SmoothGrad and integrated gradients, through
  captum's ``Saliency`` and ``IntegratedGradients``.

Importing this package is cheap (no torch, no captum): the hook registers factories that import
the submodules when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bnnr_core import hookimpl
from bnnr_core.components import RegisterFn

if TYPE_CHECKING:
    from bnnr_xai.cam import GradCam, OptiCam
    from bnnr_xai.gradients import IntegratedGradients, Saliency, SmoothGrad

__all__ = ["NoConvolutionalLayer", "bnnr_register_xai_methods"]


class NoConvolutionalLayer(ValueError):
    """The model has no convolutional layer a CAM method can use for this input size.

    Raised by ``gradcam`` and ``opticam`` when no module containing an ``nn.Conv2d`` outputs a
    4-D activation larger than 1x1; a gradient method (``saliency``, ``smoothgrad``,
    ``integrated_gradients``) still works on such a model.
    """


def _make_gradcam(**options: Any) -> GradCam:
    from bnnr_xai.cam import GradCam

    return GradCam(**options)


def _make_opticam(**options: Any) -> OptiCam:
    from bnnr_xai.cam import OptiCam

    return OptiCam(**options)


def _make_saliency(**options: Any) -> Saliency:
    from bnnr_xai.gradients import Saliency

    return Saliency(**options)


def _make_smoothgrad(**options: Any) -> SmoothGrad:
    from bnnr_xai.gradients import SmoothGrad

    return SmoothGrad(**options)


def _make_integrated_gradients(**options: Any) -> IntegratedGradients:
    from bnnr_xai.gradients import IntegratedGradients

    return IntegratedGradients(**options)


@hookimpl
def bnnr_register_xai_methods(register: RegisterFn) -> None:
    """Register the five built-in saliency methods."""
    register(
        "gradcam",
        _make_gradcam,
        description=(
            "Grad-CAM: target-layer activations weighted by their mean gradient; one forward and "
            "one backward per batch; options: layer (default: found automatically)"
        ),
    )
    register(
        "opticam",
        _make_opticam,
        description=(
            "Opti-CAM: per-image channel weights optimised so the masked image keeps the target "
            "logit high; options: iterations (50), lr (0.1), layer (default: automatic)"
        ),
    )
    register(
        "saliency",
        _make_saliency,
        description="Vanilla gradient: |d logit / d input|, maximum over channels",
    )
    register(
        "smoothgrad",
        _make_smoothgrad,
        description=(
            "SmoothGrad: vanilla gradient averaged over noisy copies; options: samples (16), "
            "noise (0.15 of the image's range), seed (0), max_batch (64)"
        ),
    )
    register(
        "integrated_gradients",
        _make_integrated_gradients,
        description=(
            "Integrated gradients from an all-zero input (the mean colour of normalised images): "
            "|sum over channels|; options: steps (16), max_batch (64)"
        ),
    )
