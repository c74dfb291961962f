"""The built-in saliency methods (plugin ``xai``): the protocol's promises, layer detection,
hand-checked values, and batch independence.

Tolerances. Batched and per-image maps are compared with ``atol=1e-5``: the computations are the
same per image (eval mode; sums of per-image scores), so they differ only by float32 rounding
where the kernels sum in a different order for a different batch size (observed: up to 4e-6
after min-max normalisation). Opti-CAM is compared after 10 iterations: its 50-iteration default
is an Adam optimisation that amplifies such rounding differences (observed: up to 0.03 on one
image of six), the same way it amplifies a change of device; after 10 iterations the maps agree
to 1e-6, which a coupling between images (a shared normalisation, a batch statistic) could not.
"""

from __future__ import annotations

import subprocess
import sys
from collections import OrderedDict
from typing import Any

import pytest
import torch
import torchvision
from bnnr_xai import NoConvolutionalLayer
from bnnr_xai._common import normalize_maps
from bnnr_xai.cam import GradCam, OptiCam
from bnnr_xai.gradients import IntegratedGradients, Saliency, SmoothGrad, integrated_gradients
from bnnr_xai.layers import find_target_layer
from torch import nn

from bnnr_core.plugins import load_plugins
from bnnr_core.protocols import XaiMethod

METHODS = ("gradcam", "opticam", "saliency", "smoothgrad", "integrated_gradients")
#: Opti-CAM with few iterations keeps the suite fast; its default is tested where it matters.
FAST_OPTIONS: dict[str, dict[str, Any]] = {"opticam": {"iterations": 10}}
BATCH_ATOL = 1e-5


def _method(name: str, **options: Any) -> Any:
    classes = {
        "gradcam": GradCam,
        "opticam": OptiCam,
        "saliency": Saliency,
        "smoothgrad": SmoothGrad,
        "integrated_gradients": IntegratedGradients,
    }
    return classes[name](**{**FAST_OPTIONS.get(name, {}), **options})


def _small_cnn(width: int = 8) -> nn.Module:
    torch.manual_seed(0)
    component = load_plugins(environ={}).component("architecture", "small_cnn")
    model: nn.Module = component.create(num_classes=3, in_channels=1, width=width)
    return model


def _two_halves() -> nn.Module:
    """Class 0 reads the positive pixels, class 1 the negative ones: the mean of ReLU(x + 0.1)
    and of ReLU(-x + 0.1). On :func:`_halves_image` the two channels are complementary, so the
    channel mean Opti-CAM starts from is flat; the bias keeps gradients alive under a zero mask.
    """
    conv = nn.Conv2d(1, 2, kernel_size=1)
    head = nn.Linear(2, 2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        conv.bias.fill_(0.1)
        head.weight.copy_(torch.eye(2))
        head.bias.zero_()
    return nn.Sequential(
        nn.Sequential(conv, nn.ReLU()), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head
    )


def _halves_image() -> torch.Tensor:
    """One 1x8x8 image: +1 on the left half, -1 on the right half."""
    image = torch.ones(1, 1, 8, 8)
    image[..., 4:] = -1.0
    return image


def _batch(count: int = 6, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(count, 1, size, size, generator=generator)
    return images, torch.arange(count) % 3


def _model_state(model: nn.Module) -> dict[str, Any]:
    return {
        "training": [module.training for module in model.modules()],
        "requires_grad": [parameter.requires_grad for parameter in model.parameters()],
        "state": {key: value.clone() for key, value in model.state_dict().items()},
    }


def _hooks(model: nn.Module) -> int:
    names = (
        "_forward_hooks",
        "_forward_pre_hooks",
        "_backward_hooks",
        "_backward_pre_hooks",
        "_state_dict_hooks",
    )
    return sum(len(getattr(module, name)) for module in model.modules() for name in names)


# -------------------------------------------------------------------------------------------
# Registration
# -------------------------------------------------------------------------------------------


def test_methods_are_registered_through_the_real_entry_point() -> None:
    host = load_plugins(environ={})
    assert set(METHODS) <= set(host.available("xai_method"))
    for name in METHODS:
        component = host.component("xai_method", name)
        assert component.plugin == "xai"
        assert component.description
        method = component.create(**FAST_OPTIONS.get(name, {}))
        assert isinstance(method, XaiMethod)
        assert method.name == name
        assert method.batched_backward is True
        assert set(method.describe()) == {
            "name",
            "options",
            "target_layer",
            "batched_backward",
            "backend",
        }


def test_importing_and_registering_the_plugin_imports_neither_torch_nor_captum() -> None:
    code = (
        "import sys\n"
        "import bnnr_xai\n"
        "from bnnr_core.plugins import load_plugins\n"
        "record = load_plugins(autoload=False).register(bnnr_xai, 'xai')\n"
        "assert record.status == 'ok' and record.provides, record\n"
        "heavy = [name for name in ('torch', 'numpy', 'captum') if name in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert completed.returncode == 0, completed.stderr


def test_describe_reports_options_and_the_layer_chosen() -> None:
    method = _method("gradcam")
    assert method.describe() == {
        "name": "gradcam",
        "options": {"layer": None},
        "target_layer": None,
        "batched_backward": True,
        "backend": "torch",
    }
    method.explain(_small_cnn(), *_batch(2))
    assert method.describe()["target_layer"] == "features.block3"
    smoothgrad = SmoothGrad(samples=4, seed=3).describe()
    assert smoothgrad["options"] == {"samples": 4, "noise": 0.15, "seed": 3, "max_batch": 64}
    assert smoothgrad["backend"] == "torch"
    assert IntegratedGradients().describe()["backend"].startswith("captum ")


def test_vanilla_gradient_equals_captums_saliency() -> None:
    from captum.attr import Saliency as CaptumSaliency

    model = _small_cnn().eval()
    images, targets = _batch(4)
    maps = _method("saliency").explain(model, images, targets)
    reference = (
        CaptumSaliency(model)
        .attribute(images.clone().requires_grad_(True), target=targets, abs=True)
        .amax(dim=1)
    )
    reference = reference.detach().flatten(1)
    low, high = reference.min(1, keepdim=True).values, reference.max(1, keepdim=True).values
    expected = ((reference - low) / (high - low)).view_as(maps)
    assert torch.allclose(maps, expected, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("smoothgrad", {"samples": 0}),
        ("smoothgrad", {"noise": -0.1}),
        ("smoothgrad", {"seed": 1.5}),
        ("integrated_gradients", {"steps": 0}),
        ("opticam", {"lr": 0.0}),
        ("opticam", {"iterations": True}),
        ("gradcam", {"layer": 3}),
    ],
)
def test_invalid_options_are_refused(name: str, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        _method(name, **options)


# -------------------------------------------------------------------------------------------
# The protocol's promises
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", METHODS)
def test_maps_have_the_promised_shape_range_dtype_and_device(name: str) -> None:
    images, targets = _batch(4, size=12)
    maps = _method(name).explain(_small_cnn(), images, targets)
    assert maps.shape == (4, 12, 12)
    assert maps.dtype == torch.float32
    assert maps.device == images.device
    assert not maps.requires_grad
    assert maps.min() >= 0.0
    assert torch.allclose(maps.flatten(1).amax(dim=1), torch.ones(4))


@pytest.mark.parametrize("name", METHODS)
def test_batched_maps_equal_maps_of_each_image_alone(name: str) -> None:
    model = _small_cnn()
    model.train()  # batch norm would couple the images if explain did not switch to eval mode
    images, targets = _batch(6)
    method = _method(name)
    batched = method.explain(model, images, targets)
    alone = [method.explain(model, images[i : i + 1], targets[i : i + 1]) for i in range(6)]
    torch.testing.assert_close(batched, torch.cat(alone), atol=BATCH_ATOL, rtol=0)


@pytest.mark.parametrize("name", METHODS)
def test_a_constant_image_gives_a_finite_map(name: str) -> None:
    images = torch.cat([torch.zeros(1, 1, 8, 8), torch.full((1, 1, 8, 8), 0.5)])
    maps = _method(name).explain(_small_cnn(), images, torch.tensor([0, 1]))
    assert torch.isfinite(maps).all()
    assert maps.min() >= 0.0 and maps.max() <= 1.0


@pytest.mark.parametrize("name", METHODS)
def test_the_model_is_left_exactly_as_it_was(name: str) -> None:
    model = _small_cnn()
    model.train()
    model.features.block1.eval()  # mixed flags must come back as they were
    model.features.block1[0].weight.requires_grad_(False)
    before = _model_state(model)
    images, targets = _batch(3)
    images.requires_grad_(True)
    _method(name).explain(model, images, targets)
    after = _model_state(model)
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    for key, value in before["state"].items():
        assert torch.equal(after["state"][key], value), key
    assert all(parameter.grad is None for parameter in model.parameters())
    assert _hooks(model) == 0
    assert images.grad is None and images.requires_grad


@pytest.mark.parametrize("name", METHODS)
def test_the_target_class_decides_the_map(name: str) -> None:
    model = _two_halves()
    images = _halves_image().repeat(2, 1, 1, 1)
    maps = _method(name).explain(model, images, torch.tensor([0, 1]))
    left, right = maps[..., :4].sum(dim=(1, 2)), maps[..., 4:].sum(dim=(1, 2))
    assert left[0] > 2 * right[0]  # class 0 reads the positive (left) pixels
    assert right[1] > 2 * left[1]  # class 1 the negative (right) ones


@pytest.mark.parametrize("name", METHODS)
def test_explain_works_under_the_callers_no_grad_and_inference_mode(name: str) -> None:
    model = _small_cnn()
    expected = _method(name).explain(model, *_batch(2))
    with torch.no_grad():
        assert torch.equal(_method(name).explain(model, *_batch(2)), expected)
    with torch.inference_mode():
        images, targets = _batch(2)
        assert torch.equal(_method(name).explain(model, images, targets), expected)


def test_an_empty_batch_gives_no_maps() -> None:
    maps = _method("gradcam").explain(
        _small_cnn(), torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long)
    )
    assert maps.shape == (0, 8, 8)


def test_malformed_batches_are_refused() -> None:
    model, method = _small_cnn(), _method("saliency")
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        method.explain(model, torch.zeros(1, 8, 8), torch.tensor([0]))
    with pytest.raises(ValueError, match="class indices"):
        method.explain(model, torch.zeros(2, 1, 8, 8), torch.tensor([0]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", METHODS)
def test_maps_stay_on_the_cuda_device(name: str) -> None:
    images, targets = _batch(2)
    maps = _method(name).explain(_small_cnn().cuda(), images.cuda(), targets.cuda())
    assert maps.device == images.cuda().device
    assert maps.shape == (2, 16, 16)


def test_normalisation_zeroes_flat_and_non_finite_maps() -> None:
    maps = torch.stack(
        [
            torch.zeros(3, 3),
            torch.full((3, 3), 7.0),
            torch.full((3, 3), float("nan")),
            torch.arange(9.0).view(3, 3),
        ]
    )
    normalised = normalize_maps(maps)
    assert torch.equal(normalised[:3], torch.zeros(3, 3, 3))
    torch.testing.assert_close(normalised[3], torch.arange(9.0).view(3, 3) / 8)


# -------------------------------------------------------------------------------------------
# Grad-CAM and Opti-CAM: the target layer
# -------------------------------------------------------------------------------------------


def test_layer_detection_on_small_cnn() -> None:
    images, _ = _batch(1)
    name, module = find_target_layer(_small_cnn(width=32), images)
    assert name == "features.block3"
    assert isinstance(module, nn.Sequential)


def test_layer_detection_on_resnet18_skips_a_layer_that_is_1x1() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=3).eval()
    # At 32x32, layer4's output is 1x1 (a constant map), so the last block larger is layer3.
    assert find_target_layer(model, torch.randn(1, 3, 32, 32))[0] == "layer3"
    assert find_target_layer(model, torch.randn(1, 3, 64, 64))[0] == "layer4"
    method = _method("gradcam")
    assert method.explain(model, torch.randn(2, 3, 32, 32), torch.tensor([0, 2])).shape == (
        2,
        32,
        32,
    )
    assert method.target_layer == "layer3"


def test_layer_detection_skips_pooling_after_the_last_convolution() -> None:
    # VGG-like: avgpool still outputs 2x2 maps but contains no convolution.
    model = nn.Sequential(
        OrderedDict(
            features=nn.Sequential(
                nn.Conv2d(3, 4, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(4, 8, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ),
            avgpool=nn.AdaptiveAvgPool2d((2, 2)),
            flatten=nn.Flatten(),
            classifier=nn.Linear(32, 3),
        )
    )
    assert find_target_layer(model, torch.randn(1, 3, 16, 16))[0] == "features"


def test_layer_option_overrides_detection() -> None:
    model = _small_cnn()
    method = GradCam(layer="features.block2")
    assert method.explain(model, *_batch(2)).shape == (2, 16, 16)
    assert method.target_layer == "features.block2"


def test_unknown_layer_lists_the_candidates() -> None:
    model = _small_cnn()
    before = _model_state(model)
    with pytest.raises(ValueError, match=r"no submodule named 'nope'.*features\.block3"):
        GradCam(layer="nope").explain(model, *_batch(2))
    assert _model_state(model)["training"] == before["training"]
    assert _model_state(model)["requires_grad"] == before["requires_grad"]
    assert _hooks(model) == 0


def test_a_layer_without_4d_output_is_refused() -> None:
    model = _small_cnn()
    with pytest.raises(ValueError, match="'classifier' must output a"):
        GradCam(layer="classifier").explain(model, *_batch(2))
    assert _hooks(model) == 0


@pytest.mark.parametrize("name", ["gradcam", "opticam"])
def test_a_model_without_convolutions_raises_no_convolutional_layer(name: str) -> None:
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))
    images, targets = _batch(2, size=8)
    with pytest.raises(NoConvolutionalLayer, match="use a gradient method"):
        _method(name).explain(mlp, images, targets)
    assert issubclass(NoConvolutionalLayer, ValueError)
    assert _method("saliency").explain(mlp, images, targets).shape == (2, 8, 8)


def test_gradcam_matches_a_hand_computation() -> None:
    # conv -> global average pooling -> linear: d logit_c / d A_k = W[c, k] / (h w) everywhere,
    # so alpha_k = W[c, k] / (h w) and the CAM is ReLU(sum_k W[c, k] A_k) up to a positive scale.
    torch.manual_seed(0)
    conv, head = nn.Conv2d(2, 4, 3, padding=1), nn.Linear(4, 3)
    model = nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
    images, targets = torch.randn(3, 2, 8, 8), torch.tensor([0, 1, 2])
    with torch.no_grad():
        cams = torch.relu(torch.einsum("nk,nkhw->nhw", head.weight[targets], conv(images)))
    low = cams.flatten(1).amin(dim=1).view(3, 1, 1)
    high = cams.flatten(1).amax(dim=1).view(3, 1, 1)
    expected = (cams - low) / (high - low)
    torch.testing.assert_close(GradCam().explain(model, images, targets), expected)


def test_opticam_raises_the_target_logit_of_the_masked_image() -> None:
    model = _small_cnn().eval()
    images, targets = _batch(4)
    with torch.no_grad():
        uniform = OptiCam(iterations=1, lr=1e-9).explain(model, images, targets)
        optimised = OptiCam().explain(model, images, targets)
        before = model(images * uniform[:, None]).gather(1, targets[:, None])
        after = model(images * optimised[:, None]).gather(1, targets[:, None])
    assert (after > before).all()


# -------------------------------------------------------------------------------------------
# Gradient methods
# -------------------------------------------------------------------------------------------


def test_saliency_is_the_absolute_input_gradient() -> None:
    model = _small_cnn().eval()
    images, targets = _batch(3)
    leaf = images.clone().requires_grad_(True)
    model(leaf).gather(1, targets[:, None]).sum().backward()
    assert leaf.grad is not None
    expected = normalize_maps(leaf.grad.abs().amax(dim=1))
    model.zero_grad(set_to_none=True)
    torch.testing.assert_close(Saliency().explain(model, images, targets), expected)


def test_integrated_gradients_are_complete() -> None:
    model = _small_cnn().eval()
    images, targets = _batch(4)
    attributions = integrated_gradients(model, images, targets, steps=16)
    with torch.no_grad():
        logits = model(images).gather(1, targets[:, None])[:, 0]
        baseline = model(torch.zeros_like(images)).gather(1, targets[:, None])[:, 0]
    torch.testing.assert_close(
        attributions.sum(dim=(1, 2, 3)), logits - baseline, atol=1e-4, rtol=1e-3
    )


def test_smoothgrad_is_deterministic_and_follows_the_seed() -> None:
    model = _small_cnn()
    images, targets = _batch(3)
    first = SmoothGrad(samples=4).explain(model, images, targets)
    assert torch.equal(SmoothGrad(samples=4).explain(model, images, targets), first)
    assert not torch.allclose(SmoothGrad(samples=4, seed=1).explain(model, images, targets), first)


def test_smoothgrad_noise_depends_on_neither_position_nor_pass_size() -> None:
    model = _small_cnn()
    images, targets = _batch(4)
    reference = SmoothGrad(samples=5).explain(model, images, targets)
    reversed_maps = SmoothGrad(samples=5).explain(model, images.flip(0), targets.flip(0))
    torch.testing.assert_close(reversed_maps.flip(0), reference, atol=BATCH_ATOL, rtol=0)
    one_copy_per_pass = SmoothGrad(samples=5, max_batch=1).explain(model, images, targets)
    torch.testing.assert_close(one_copy_per_pass, reference, atol=BATCH_ATOL, rtol=0)


def test_smoothgrad_without_noise_is_saliency() -> None:
    model = _small_cnn()
    images, targets = _batch(3)
    torch.testing.assert_close(
        SmoothGrad(samples=2, noise=0.0).explain(model, images, targets),
        Saliency().explain(model, images, targets),
    )
