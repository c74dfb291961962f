"""The analyze engine through the Python API: one pass, the caller's model untouched, plugins
isolated, class names matched by name."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import bnnr
from bnnr_core.datasets.digits import MEAN, STD, load_digits
from bnnr_core.demo import save_digits_checkpoint
from bnnr_core.errors import BnnrError
from bnnr_core.markers import hookimpl
from bnnr_core.plugins import load_plugins


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_digits_checkpoint(
        load_plugins(), tmp_path_factory.mktemp("ckpt") / "digits.pt", epochs=1
    )


def _module(checkpoint: Path) -> torch.nn.Module:
    return bnnr.load_model(checkpoint, host=load_plugins()).model


def test_a_model_in_memory_is_used_in_place_and_left_as_it_was(checkpoint: Path) -> None:
    model = _module(checkpoint).train()
    model.features.block1.requires_grad_(False)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    grads = {name: p.requires_grad for name, p in model.named_parameters()}
    calls: list[int] = []
    model.register_forward_hook(lambda _m, inputs, _o: calls.append(inputs[0].shape[0]))

    result = bnnr.analyze(
        model,
        "digits",
        mean=MEAN,
        std=STD,
        batch_size=100,
        cv_folds=3,
        xai=False,
        data_quality=False,
    )

    assert model.training and all(module.training for module in model.modules())
    assert {name: p.requires_grad for name, p in model.named_parameters()} == grads
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name  # batch-norm statistics included
    assert next(model.parameters()).device.type == "cpu"
    # One probe image, then the 360 images once, in batches of 100: folds reuse the cache.
    assert calls == [1, 100, 100, 100, 60]
    report = result.report
    assert report["provenance"]["model"]["format"] == "module"
    # Saliency maps need gradients; the model still comes back as it was.
    bnnr.analyze(model, "digits", mean=MEAN, std=STD, n_bootstrap=20, data_quality=False)
    assert model.training and all(module.training for module in model.modules())
    assert {name: p.requires_grad for name, p in model.named_parameters()} == grads
    assert all(p.grad is None for p in model.parameters())
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    evaluation = result.evaluation
    accuracy = float(np.mean(evaluation.predictions == evaluation.targets))
    assert report["metrics"]["accuracy"] == pytest.approx(accuracy)


def test_writing_through_the_api_follows_the_output_rules(checkpoint: Path, tmp_path: Path) -> None:
    result = bnnr.analyze(checkpoint, "digits", output=tmp_path / "out", n_bootstrap=50)
    written = bnnr.read_json(tmp_path / "out" / "analysis_report.json")
    assert written["metrics"] == pytest.approx(result.report["metrics"])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("x")
    with pytest.raises(BnnrError, match="not a BNNR analysis"):
        bnnr.analyze(checkpoint, "digits", output=tmp_path / "other")


class _Raising:
    name = "raising"

    def detect(self, evaluation: Any) -> list[dict[str, Any]]:
        raise RuntimeError("detector bug")


class _Malformed:
    name = "malformed"

    def detect(self, evaluation: Any) -> list[dict[str, Any]]:
        return [{"pattern_type": "odd", "severity": "urgent"}]


class _ThirdParty:
    @hookimpl
    def bnnr_register_failure_detectors(self, register: Any) -> None:
        register("raising", _Raising)
        register("malformed", _Malformed)


def test_a_broken_detector_is_reported_and_the_run_goes_on(checkpoint: Path) -> None:
    host = load_plugins()
    host.register(_ThirdParty(), name="third_party")
    report = bnnr.analyze(
        checkpoint, "digits", host=host, n_bootstrap=50, xai=False, data_quality=False
    ).report
    section = report["analysis_scope"]["sections"]["failure_patterns"]
    assert section["status"] == "partial"
    assert any("detector bug" in error for error in section["errors"])
    assert any("malformed" in error for error in section["errors"])
    assert all(
        p.get("detector") not in {"raising", "malformed"}
        for p in report["failure_patterns_extended"]
    )
    assert report["metrics"]["accuracy"] is not None


def test_without_detector_plugins_the_section_says_so_and_health_pays_for_it(
    checkpoint: Path,
) -> None:
    light = {"n_bootstrap": 50, "xai": False, "data_quality": False}
    full = bnnr.analyze(checkpoint, "digits", **light).report
    bare_host = load_plugins(environ={"BNNR_DISABLE_PLUGINS": "failures"})
    bare = bnnr.analyze(checkpoint, "digits", host=bare_host, **light).report
    assert bare["analysis_scope"]["sections"]["failure_patterns"]["status"] == "skipped"
    assert bare["findings"] == [] and bare["failure_patterns_extended"] == []
    assert "predictions" in bare["executive_summary"]["unchecked_sections"]
    assert bare["executive_summary"]["health_score"] <= full["executive_summary"]["health_score"]


def test_turning_optional_steps_off_never_raises_the_score(checkpoint: Path) -> None:
    scores = [
        bnnr.analyze(checkpoint, "digits", n_bootstrap=50, **flags).report["executive_summary"][
            "health_score"
        ]
        for flags in (
            {},
            {"xai": False},
            {"data_quality": False},
            {"xai": False, "data_quality": False},
        )
    ]
    assert scores[1] <= scores[0] and scores[2] <= scores[0] and scores[3] <= min(scores[1:3])


def _folder(root: Path, classes: dict[str, int]) -> Path:
    split = load_digits("eval")
    for name, digit in classes.items():
        (root / name).mkdir(parents=True)
        for index in np.flatnonzero(split.labels == digit)[:8]:
            Image.fromarray(split.images[index]).save(root / name / f"{index}.png")
    return root


def test_folder_classes_are_matched_to_the_checkpoint_by_name(
    checkpoint: Path, tmp_path: Path
) -> None:
    report = bnnr.analyze(
        checkpoint, _folder(tmp_path / "d", {"7": 7, "3": 3}), n_bootstrap=50
    ).report
    matrix = np.asarray(report["confusion"]["matrix"])
    assert matrix.shape == (10, 10)
    assert matrix.sum(axis=1).tolist() == [0, 0, 0, 8, 0, 0, 0, 8, 0, 0]
    assert report["true_distribution"]["3"] == 8 and report["true_distribution"]["7"] == 8


def test_a_folder_class_the_checkpoint_does_not_know(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(BnnrError, match="classes the model does not know \\(cat\\)"):
        bnnr.analyze(checkpoint, _folder(tmp_path / "d", {"3": 3, "cat": 5}))


def test_input_flags_that_contradict_the_checkpoint(checkpoint: Path) -> None:
    with pytest.raises(BnnrError, match="contradicts the checkpoint"):
        bnnr.analyze(checkpoint, "digits", image_size=(16, 16))
    with pytest.raises(BnnrError, match="contradict the normalisation"):
        bnnr.analyze(checkpoint, "digits", mean=(0.5,), std=(0.5,))


def test_grey_data_feeds_an_rgb_model_and_sizes_are_resampled(tmp_path: Path) -> None:
    seen: list[tuple[int, ...]] = []
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 10 * 10, 10)
    )
    torch.jit.save(torch.jit.script(model), str(tmp_path / "rgb.pt"))
    assert bnnr.load_model(tmp_path / "rgb.pt", host=load_plugins()).in_channels == 3
    model.register_forward_hook(lambda _m, inputs, _o: seen.append(tuple(inputs[0].shape[1:])))
    report = bnnr.analyze(model, "digits", image_size=(12, 12), n_bootstrap=20).report
    assert set(seen) == {(3, 12, 12)}
    assert report["provenance"]["input"]["source"]["size"] == "flags"
    assert math.isfinite(report["metrics"]["loss"])
