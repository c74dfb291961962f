"""Gradient methods on the input: vanilla gradient, SmoothGrad and integrated gradients.

The vanilla gradient (and SmoothGrad's, on noisy copies) is one ``torch.autograd.grad`` call:
what ``captum.attr.Saliency`` computes (a test compares the two), without importing captum, whose
import alone costs about 0.4 s, a third of a whole analysis of the bundled digits. Integrated
gradients come from ``captum.attr.IntegratedGradients``. ``autograd.grad`` never touches a
parameter's ``.grad``. SmoothGrad draws its own noise instead of using captum's ``NoiseTunnel``:
``NoiseTunnel`` draws from torch's global random state for the whole expanded batch, so an image's
noise would depend on the batch around it and the call would change the caller's random state.

Methods that need many forward passes (SmoothGrad's noisy copies, the integration steps) run
them in passes of at most ``max_batch`` model inputs, each pass holding whole copies of the batch
(so a pass holds at least the batch itself).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import torch
from torch import nn

from bnnr_xai._common import (
    Method,
    check_batch,
    explaining,
    non_negative_float,
    positive_int,
)

CAPTUM = f"captum {metadata.version('captum')}"


def _input_gradients(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``|d logit_target / d input|`` ``(N, C, H, W)``; one forward and one backward.

    Call inside :func:`bnnr_xai._common.explaining`.
    """
    leaf = inputs.detach().requires_grad_(True)
    logits = model(leaf)
    # Samples do not interact in eval mode, so the gradient of the summed target logits is
    # every sample's own gradient: one backward for the batch.
    score = logits.gather(1, targets.view(-1, 1).to(logits.device)).sum()
    (gradients,) = torch.autograd.grad(score, leaf)
    return gradients.detach().abs()


class Saliency(Method):
    """Vanilla gradient (Simonyan et al., 2014): ``max_c |d logit_target / d x_c|`` per pixel."""

    name = "saliency"
    backend = "torch"

    def _raw_maps(
        self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        return _input_gradients(model, images, targets).amax(dim=1)


def noise_seed(seed: int, image: torch.Tensor) -> int:
    """The seed of one image's SmoothGrad noise: a hash of ``seed`` and the image's values.

    The noise of an image therefore depends on nothing else in the batch, nor on its position:
    explained alone or in any batch, an image gets the same noise and the same map.
    """
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{seed}:{tuple(image.shape)}:".encode())
    digest.update(image.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return int.from_bytes(digest.digest(), "little") >> 1  # manual_seed takes 63 bits


class SmoothGrad(Method):
    """SmoothGrad (Smilkov et al., 2017): the vanilla gradient's ``|gradient|`` averaged over
    ``samples`` noisy copies of each image, then the maximum over channels.

    The noise of image ``i`` is Gaussian with standard deviation ``noise * (max(x_i) - min(x_i))``
    and comes from a generator seeded by :func:`noise_seed` (the ``seed`` option and the image's
    values), on the images' device, drawn one copy at a time; so the maps are deterministic for a
    device and independent of the batch composition and of ``max_batch``. Copies of the whole
    batch go through the model together, ``max_batch // N`` copies per pass (at least one).

    :param samples: noisy copies per image.
    :param noise: noise standard deviation as a fraction of each image's value range.
    :param seed: seed of the noise.
    :param max_batch: most model inputs per forward pass (at least ``N``).
    """

    name = "smoothgrad"
    backend = "torch"

    def __init__(
        self, *, samples: int = 16, noise: float = 0.15, seed: int = 0, max_batch: int = 64
    ) -> None:
        super().__init__()
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer; got {seed!r}")
        self.samples = positive_int("samples", samples)
        self.noise = non_negative_float("noise", noise)
        self.seed = seed
        self.max_batch = positive_int("max_batch", max_batch)

    @property
    def options(self) -> Mapping[str, Any]:
        return {
            "samples": self.samples,
            "noise": self.noise,
            "seed": self.seed,
            "max_batch": self.max_batch,
        }

    def _raw_maps(
        self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        count = len(images)
        flat = images.flatten(1)
        sigma = (self.noise * (flat.amax(dim=1) - flat.amin(dim=1))).view(1, count, 1, 1, 1)
        generators = [
            torch.Generator(device=images.device).manual_seed(noise_seed(self.seed, image))
            for image in images
        ]
        per_pass = max(1, self.max_batch // count)
        total = torch.zeros_like(images)
        for start in range(0, self.samples, per_pass):
            copies = min(per_pass, self.samples - start)
            # (copies, N, C, H, W); each image's generator yields its copies in order.
            noise = torch.stack(
                [
                    torch.stack([self._draw(images[0], generator) for _ in range(copies)])
                    for generator in generators
                ],
                dim=1,
            )
            noisy = (images + sigma * noise).flatten(0, 1)
            gradients = _input_gradients(model, noisy, targets.repeat(copies))
            total += gradients.view(copies, *images.shape).sum(dim=0)
        return (total / self.samples).amax(dim=1)

    @staticmethod
    def _draw(like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Standard normal noise shaped, typed and placed like ``like``."""
        return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


def _integrated_gradients(
    model: nn.Module, images: torch.Tensor, targets: torch.Tensor, *, steps: int, max_batch: int
) -> torch.Tensor:
    """:func:`integrated_gradients` on a checked batch, inside :func:`explaining`."""
    from captum.attr import IntegratedGradients as CaptumIntegratedGradients

    attributions: torch.Tensor = CaptumIntegratedGradients(model).attribute(
        images,
        baselines=torch.zeros_like(images),
        target=targets,
        n_steps=steps,
        internal_batch_size=max(max_batch, len(images)),
    )
    return attributions.detach()


def integrated_gradients(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    steps: int = 16,
    max_batch: int = 64,
) -> torch.Tensor:
    """Integrated-gradients attributions ``(N, C, H, W)``, unnormalised and signed.

    The path runs from an all-zero baseline to each image, integrated with ``steps``
    Gauss-Legendre points (captum's default). Their sum over an image approximates
    ``logit_target(image) - logit_target(0)`` (completeness). The model is guarded as in every
    method: eval mode, frozen parameters, everything restored.
    """
    targets = check_batch(images, targets)
    with explaining(model):
        return _integrated_gradients(
            model,
            images.detach().clone(),
            targets.clone(),
            steps=positive_int("steps", steps),
            max_batch=positive_int("max_batch", max_batch),
        )


class IntegratedGradients(Method):
    """Integrated gradients (Sundararajan et al., 2017) from an all-zero baseline (the mean
    colour of normalised images): ``|sum_c attribution_c|`` per pixel.

    The integration steps of the whole batch go through the model together, ``max_batch // N``
    steps per pass (at least one).

    :param steps: integration points along the path.
    :param max_batch: most model inputs per forward pass (at least ``N``).
    """

    name = "integrated_gradients"
    backend = CAPTUM

    def __init__(self, *, steps: int = 16, max_batch: int = 64) -> None:
        super().__init__()
        self.steps = positive_int("steps", steps)
        self.max_batch = positive_int("max_batch", max_batch)

    @property
    def options(self) -> Mapping[str, Any]:
        return {"steps": self.steps, "max_batch": self.max_batch}

    def _raw_maps(
        self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        attributions = _integrated_gradients(
            model, images, targets, steps=self.steps, max_batch=self.max_batch
        )
        return attributions.sum(dim=1).abs()
