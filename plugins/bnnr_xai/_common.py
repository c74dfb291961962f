"""What every method shares: input checks, the model guard, map normalisation, ``describe()``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from bnnr_core.inference import evaluation_mode

#: A map whose range is at most this fraction of its largest magnitude is flat: float32 rounding
#: alone reaches about 1e-6 of the magnitude, so stretching such a map would show noise.
FLAT_RELATIVE_RANGE = 1e-5


def check_batch(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Check ``images`` is ``(N, C, H, W)`` floating point; return ``targets`` as ``(N,)`` int64
    on the images' device."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(
            "images must be a (N, C, H, W) tensor; got "
            f"{getattr(images, 'shape', type(images).__name__)}"
        )
    if not images.is_floating_point():
        raise TypeError(f"images must be floating point; got {images.dtype}")
    targets = torch.as_tensor(targets, device=images.device)
    if targets.shape != images.shape[:1] or targets.is_floating_point():
        raise ValueError(
            f"targets must be {len(images)} class indices, shape ({len(images)},); got "
            f"{targets.dtype} {tuple(targets.shape)}"
        )
    return targets.long()


@contextmanager
def explaining(model: nn.Module) -> Iterator[None]:
    """Run the block with the model in eval mode, its parameters frozen and gradients enabled.

    Eval mode makes samples independent (batch norm uses running statistics, dropout is off), so
    one backward of a summed score gives every image its own gradient. Parameters are frozen so
    no ``.grad`` accumulates and no graph is kept for weights; every flag is restored afterwards,
    also when the block raises. Gradients work even inside a caller's ``torch.inference_mode``.
    """
    flags = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    try:
        for parameter, _ in flags:
            parameter.requires_grad_(False)
        with evaluation_mode(model), torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)


def target_scores(logits: object, targets: torch.Tensor) -> torch.Tensor:
    """The sum over the batch of each image's target logit (one backward gives all gradients)."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        raise TypeError(
            "the model must return a (batch, classes) tensor of logits; got "
            f"{getattr(logits, 'shape', type(logits).__name__)}"
        )
    return logits.gather(1, targets.view(-1, 1)).sum()


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Per-image min-max normalisation of ``(N, H, W)`` maps to detached float32 in ``[0, 1]``.

    A flat map (range at most :data:`FLAT_RELATIVE_RANGE` of its magnitude, all zeros, or not
    finite) becomes all zeros, so the result never holds NaN.
    """
    flat = maps.detach().float().flatten(1)
    low = flat.amin(dim=1, keepdim=True)
    high = flat.amax(dim=1, keepdim=True)
    span = high - low
    varies = span > FLAT_RELATIVE_RANGE * torch.maximum(low.abs(), high.abs())
    scaled = (flat - low) / torch.where(varies, span, torch.ones_like(span))
    return torch.where(varies, scaled, torch.zeros_like(scaled)).clamp_(0.0, 1.0).view_as(maps)


class Method:
    """Base of the built-in methods: the protocol's ``explain``, its guard, and ``describe()``.

    A subclass implements :meth:`_raw_maps`; ``explain`` checks the batch, guards the model with
    :func:`explaining`, and normalises the result.
    """

    #: Registered name.
    name: str = ""
    #: Every forward and backward pass serves the whole batch (no method loops over images).
    batched_backward: bool = True
    #: Where the gradients come from (``"torch"`` or ``"captum <version>"``).
    backend: str = "torch"

    def __init__(self) -> None:
        #: Dotted name of the layer the last ``explain`` used (CAM methods only).
        self.target_layer: str | None = None

    @property
    def options(self) -> Mapping[str, Any]:
        """The factory options this method was built with."""
        return {}

    def describe(self) -> dict[str, Any]:
        """Name, options, target layer of the last ``explain`` (``None`` if none) and backend."""
        return {
            "name": self.name,
            "options": dict(self.options),
            "target_layer": self.target_layer,
            "batched_backward": self.batched_backward,
            "backend": self.backend,
        }

    def explain(
        self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """Maps ``(N, H, W)``, float32 in ``[0, 1]``, for each image's target class.

        :param model: returns logits ``(N, classes)``; left exactly as it was.
        :param images: ``(N, C, H, W)``, normalised for the model, on the model's device.
        :param targets: ``(N,)`` class index to explain for each image.
        :returns: detached per-image min-max normalised maps on the images' device.
        """
        targets = check_batch(images, targets)
        if len(images) == 0:
            return images.new_zeros((0, *images.shape[2:]), dtype=torch.float32)
        with explaining(model):
            # Copies made here are ordinary tensors even under a caller's inference mode.
            maps = self._raw_maps(model, images.detach().clone(), targets.clone())
        return normalize_maps(maps)

    def _raw_maps(
        self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """Unnormalised maps ``(N, H, W)``; runs inside :func:`explaining` on copies of the
        batch and of the checked targets."""
        raise NotImplementedError


def positive_int(name: str, value: object) -> int:
    """``value`` if it is an ``int`` of at least 1, else a ``ValueError`` naming the option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer of at least 1; got {value!r}")
    return value


def _finite_float(name: str, value: object, *, minimum: float, inclusive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number; got {value!r}")
    number = float(value)
    if not (number >= minimum if inclusive else number > minimum) or number == float("inf"):
        relation = ">=" if inclusive else ">"
        raise ValueError(f"{name} must be a finite number {relation} {minimum:g}; got {value!r}")
    return number


def non_negative_float(name: str, value: object) -> float:
    """``value`` as a float if it is a finite number >= 0, else a ``ValueError``."""
    return _finite_float(name, value, minimum=0.0, inclusive=True)


def positive_float(name: str, value: object) -> float:
    """``value`` as a float if it is a finite number > 0, else a ``ValueError``."""
    return _finite_float(name, value, minimum=0.0, inclusive=False)
