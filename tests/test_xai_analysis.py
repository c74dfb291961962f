"""The XAI step of analyze: probe selection, map statistics against hand computations,
faithfulness against a model whose evidence is known, quality, sections, patterns, overlays, and
the failure paths (unknown method, failing batches, no convolutional layer)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from bnnr_core import hookimpl
from bnnr_core.analysis import saliency as sal
from bnnr_core.analysis.data import InputSpec
from bnnr_core.analysis.evaluation import Evaluation
from bnnr_core.analysis.findings import check_pattern
from bnnr_core.analysis.xai import (
    SECTION_KEYS,
    XaiOptions,
    XaiResult,
    run_xai,
    select_probe,
)
from bnnr_core.errors import BnnrError
from bnnr_core.plugins import PluginHost, load_plugins
from bnnr_core.testing import make_tiny_dataset, make_tiny_model

SPEC = InputSpec(channels=1, size=(8, 8), mean=(0.2,), std=(0.5,))

# -------------------------------------------------------------------------------------------
# Fakes
# -------------------------------------------------------------------------------------------


class IntensityMethod:
    """Maps = min-max of the image; records every call's images and targets."""

    batched_backward = True

    def __init__(self, name: str = "intensity", fail_on: set[int] | None = None) -> None:
        self.name = name
        self.fail_on = fail_on or set()
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def explain(
        self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        self.calls.append((images.detach().cpu().clone(), targets.detach().cpu().clone()))
        if len(self.calls) in self.fail_on:
            raise RuntimeError("boom")
        values = images[:, 0]
        low = values.flatten(1).amin(1).view(-1, 1, 1)
        high = values.flatten(1).amax(1).view(-1, 1, 1)
        return (values - low) / (high - low).clamp_min(1e-6)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "options": {}}


class ConstantMethod:
    """A method that says nothing: every map is flat."""

    name = "constant"
    batched_backward = True

    def explain(
        self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        return torch.zeros(images.shape[0], *images.shape[2:], device=images.device)


class NoConvMethod:
    """Stands in for Grad-CAM on a model without convolutional layers."""

    name = "gradcam"
    batched_backward = True

    def __init__(self, layer: str | None = None) -> None:
        self.layer = layer

    def explain(
        self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        raise ValueError("the model has no nn.Conv2d layer")


class Methods:
    """A plugin registering ``factories`` as ``xai_method`` components."""

    def __init__(self, **factories: Callable[..., Any]) -> None:
        self.factories = factories

    @hookimpl
    def bnnr_register_xai_methods(self, register: Any) -> None:
        for name, factory in self.factories.items():
            register(name, factory)


def _host(**factories: Callable[..., Any]) -> PluginHost:
    host = load_plugins(autoload=False, strict=False)
    if factories:
        host.register(Methods(**factories), "fake_xai")
    return host


def _evaluation(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, classes: int
) -> Evaluation:
    with torch.no_grad():
        probabilities = torch.softmax(model(images), dim=1).numpy().astype(np.float64)
    targets = labels.numpy()
    return Evaluation(
        task="classification",
        class_names=tuple(f"c{k}" for k in range(classes)),
        probabilities=probabilities,
        targets=targets,
        predictions=probabilities.argmax(axis=1),
        per_sample_loss=np.zeros(len(targets)),
        sample_ids=tuple(f"tiny:{i}" for i in range(len(targets))),
    )


@pytest.fixture
def tiny() -> tuple[nn.Module, torch.Tensor, Evaluation]:
    dataset = make_tiny_dataset(per_class=16)
    images, labels = dataset.tensors
    images = (images - 0.2) / 0.5
    model = make_tiny_model()
    return model, images, _evaluation(model, images, labels, 3)


def _run(
    host: PluginHost,
    model: nn.Module,
    images: torch.Tensor,
    evaluation: Evaluation,
    artifacts: Path | None = None,
    spec: InputSpec = SPEC,
    **options: Any,
) -> XaiResult:
    return run_xai(
        host=host,
        model=model,
        evaluation=evaluation,
        fetch_images=lambda positions: images[torch.as_tensor(np.asarray(positions))],
        spec=spec,
        options=XaiOptions(**options),
        artifacts_dir=artifacts,
    )


# -------------------------------------------------------------------------------------------
# Probe selection
# -------------------------------------------------------------------------------------------


def _synthetic_evaluation(sizes: list[int], seed: int = 0, nonfinite: int = 0) -> Evaluation:
    """Classes of ``sizes`` samples; random probabilities; ``nonfinite`` NaN rows at the end."""
    rng = np.random.default_rng(seed)
    targets = np.repeat(np.arange(len(sizes)), sizes)
    logits = rng.normal(size=(targets.size, len(sizes)))
    logits[np.arange(targets.size), targets] += 1.5
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    predictions = probabilities.argmax(axis=1)
    if nonfinite:
        probabilities[-nonfinite:] = np.nan
        predictions[-nonfinite:] = -1
    return Evaluation(
        task="classification",
        class_names=tuple(str(k) for k in range(len(sizes))),
        probabilities=probabilities,
        targets=targets,
        predictions=predictions,
        per_sample_loss=np.zeros(targets.size),
    )


def test_the_quality_probe_is_stratified_within_the_budget_and_skips_nonfinite_rows() -> None:
    evaluation = _synthetic_evaluation([10, 50, 50], nonfinite=5)
    finite = evaluation.predictions >= 0
    quiet = {"max_worst": 0, "pairs": 0, "max_gallery_classes": 0}
    probe = select_probe(evaluation, XaiOptions(samples=30, **quiet))
    assert np.bincount(evaluation.targets[probe.stratified], minlength=3).tolist() == [10, 10, 10]
    assert finite[probe.stratified].all()
    assert probe.rows.tolist() == probe.stratified.tolist()  # nothing else was asked for
    probe = select_probe(evaluation, XaiOptions(samples=100, **quiet))
    # class 0 has 10 rows: the other two share the rest (class 2 lost 5 non-finite rows).
    assert np.bincount(evaluation.targets[probe.stratified], minlength=3).tolist() == [10, 45, 45]
    probe = select_probe(evaluation, XaiOptions(samples=1000, **quiet))
    assert probe.stratified.size == int(finite.sum())
    for budget in (0, 1, 7, 29):
        assert select_probe(evaluation, XaiOptions(samples=budget, **quiet)).rows.size <= budget


def test_the_probe_is_seeded() -> None:
    evaluation = _synthetic_evaluation([40, 40, 40])
    first = select_probe(evaluation, XaiOptions(samples=30, seed=3))
    again = select_probe(evaluation, XaiOptions(samples=30, seed=3))
    other = select_probe(evaluation, XaiOptions(samples=30, seed=4))
    assert first.keys.tolist() == again.keys.tolist()
    assert first.stratified.tolist() != other.stratified.tolist()


def test_worst_errors_are_the_most_confident_and_pairs_come_from_the_confusion_matrix() -> None:
    evaluation = _synthetic_evaluation([30, 30, 30, 30])
    targets, predictions = evaluation.targets, evaluation.predictions
    confidence = evaluation.probabilities.max(axis=1)
    probe = select_probe(evaluation, XaiOptions(samples=8, max_worst=5, pairs=2))
    errors = np.flatnonzero(predictions != targets)
    expected = errors[np.argsort(-confidence[errors], kind="stable")][:5]
    assert probe.worst.tolist() == expected.tolist()
    assert np.all(np.diff(confidence[probe.worst]) <= 0)

    matrix = np.zeros((4, 4), dtype=int)
    np.add.at(matrix, (targets, predictions), 1)
    np.fill_diagonal(matrix, 0)
    cells = sorted(
        ((int(matrix[a, b]), a, b) for a in range(4) for b in range(4) if matrix[a, b]),
        key=lambda cell: (-cell[0], cell[1], cell[2]),
    )
    assert [(p.count, p.a, p.b) for p in probe.pairs] == cells[:2]
    for pair in probe.pairs:
        assert 0 < pair.confused.size <= 8
        assert (targets[pair.confused] == pair.a).all()
        assert (predictions[pair.confused] == pair.b).all()
        assert (targets[pair.correct] == pair.a).all()
        assert (predictions[pair.correct] == pair.a).all()
    # Every member of every set is explained, once; errors for both classes.
    for row in np.concatenate([probe.worst, *[p.confused for p in probe.pairs]]):
        assert [row, predictions[row]] in probe.keys.tolist()
        assert [row, targets[row]] in probe.keys.tolist()
    assert len({tuple(key) for key in probe.keys.tolist()}) == len(probe.keys)


def test_galleries_cover_the_classes_with_most_errors() -> None:
    evaluation = _synthetic_evaluation([20, 20, 20, 20, 20])
    errors = np.bincount(
        evaluation.targets[evaluation.predictions != evaluation.targets], minlength=5
    )
    probe = select_probe(evaluation, XaiOptions(samples=10, max_gallery_classes=2))
    expected = sorted(sorted(range(5), key=lambda c: (-errors[c], c))[:2])
    assert sorted(probe.gallery) == expected
    for cls, (best, worst) in probe.gallery.items():
        assert best.size <= 4 and worst.size <= 4
        assert (evaluation.predictions[best] == cls).all()
        assert (evaluation.predictions[worst] != cls).all()


# -------------------------------------------------------------------------------------------
# Statistics
# -------------------------------------------------------------------------------------------


def _stats(maps: np.ndarray) -> dict[str, np.ndarray]:
    values = sal.map_statistics(torch.as_tensor(maps, dtype=torch.float32))
    return {key: value.numpy() for key, value in values.items()}


def test_statistics_of_hand_made_maps() -> None:
    uniform = np.full((10, 10), 0.7)
    blob = np.zeros((10, 10))
    blob[4:6, 4:6] = 1.0
    border = np.zeros((10, 10))
    border[[0, -1], :] = border[:, [0, -1]] = 1.0
    stats = _stats(np.stack([uniform, blob, border]))
    share = 36 / 100  # a 1-pixel strip around 10x10
    assert sal.border_area_share(10, 10) == pytest.approx(share)

    assert stats["flat"].tolist() == [1.0, 0.0, 0.0]
    assert stats["entropy"] == pytest.approx(
        [1.0, math.log2(4) / math.log2(100), math.log2(36) / math.log2(100)], abs=1e-6
    )
    assert stats["coverage"] == pytest.approx([1.0, 0.04, 0.36])
    assert stats["edge_ratio"] == pytest.approx([share, 0.0, 1.0], abs=1e-6)
    assert stats["border_ratio"] == pytest.approx([1.0, 0.0, 1 / share], abs=1e-5)

    def gini(values: np.ndarray) -> float:  # mean absolute difference over twice the mean
        flat = values.ravel()
        return float(np.abs(flat[:, None] - flat[None, :]).mean() / (2 * flat.mean()))

    assert stats["gini"] == pytest.approx([0.0, gini(blob), gini(border)], abs=1e-5)
    assert stats["gini"][1] == pytest.approx(0.96)
    assert stats["center_x"] == pytest.approx([0.5, 0.5, 0.5], abs=1e-6)
    assert stats["center_y"] == pytest.approx([0.5, 0.5, 0.5], abs=1e-6)
    for key in ("quadrant_tl", "quadrant_tr", "quadrant_bl", "quadrant_br"):
        assert stats[key] == pytest.approx([0.25, 0.25, 0.25], abs=1e-6)
    assert stats["n_peaks"].tolist() == [1.0, 1.0, 1.0]
    assert stats["peak_to_mean"] == pytest.approx([1.0, 25.0, 1 / share], abs=1e-4)
    assert stats["peak_value"] == pytest.approx([0.7, 1.0, 1.0])


def test_statistics_locate_and_count_regions() -> None:
    corner = np.zeros((9, 12))
    corner[0:2, 0:3] = 1.0  # top-left, 6 pixels
    two = np.zeros((9, 12))
    two[1:3, 1:3] = 1.0
    two[6:8, 8:10] = 1.0
    two[6, 10] = 0.6  # above half the peak, below the peak level, joined to the second region
    stats = _stats(np.stack([corner, two]))
    assert stats["center_x"][0] == pytest.approx(1 / 11)
    assert stats["center_y"][0] == pytest.approx(0.5 / 8)
    assert stats["quadrant_tl"][0] == pytest.approx(1.0)
    assert stats["n_peaks"].tolist() == [1.0, 2.0]
    assert stats["spatial_coherence"] == pytest.approx([1.0, 5 / 9])
    # A large map is pooled before regions are counted; the blobs stay apart.
    big = np.zeros((128, 128))
    big[10:30, 10:30] = big[90:110, 90:110] = 1.0
    assert _stats(big[None])["n_peaks"].tolist() == [2.0]


# -------------------------------------------------------------------------------------------
# Faithfulness
# -------------------------------------------------------------------------------------------


TOP_LEFT = torch.zeros(8, 8, dtype=torch.bool)
TOP_LEFT[:3, :3] = True
BORDER = torch.ones(8, 8, dtype=torch.bool)
BORDER[1:-1, 1:-1] = False
CENTRE = torch.zeros(8, 8, dtype=torch.bool)
CENTRE[2:6, 2:6] = True


class RegionModel(nn.Module):
    """Two classes; the logit of class 1 depends only on the mean of the pixels in ``region``."""

    def __init__(self, region: torch.Tensor = TOP_LEFT) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(12.0))
        self.register_buffer("region", region.float())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        mean = (images[:, 0] * self.region).sum(dim=(1, 2)) / self.region.sum()
        evidence = self.scale * (mean - 0.6)
        return torch.stack([-evidence, evidence], dim=1)


def _region_images(count: int, seed: int = 0, region: torch.Tensor = TOP_LEFT) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    images = 0.3 * torch.rand((count, 1, 8, 8), generator=generator)
    images[:, 0, region] = 1.0
    return images


class OracleMethod:
    """Returns the region the model reads: the true evidence."""

    name = "oracle"
    batched_backward = True

    def __init__(self, region: torch.Tensor = TOP_LEFT) -> None:
        self.region = region

    def explain(
        self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        return self.region.float().expand(images.shape[0], -1, -1).clone()


class NoiseMethod:
    name = "noise"
    batched_backward = True

    def explain(
        self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        generator = torch.Generator().manual_seed(int(images.sum() * 1000) % 10_000)
        return torch.rand((images.shape[0], *images.shape[2:]), generator=generator)


def test_faithfulness_curves_separate_true_evidence_from_random_and_flat_maps() -> None:
    model = RegionModel().eval()
    images = _region_images(16)
    targets = torch.ones(16, dtype=torch.long)
    keys = torch.as_tensor(sal.tie_keys(0, np.arange(16), 64))
    oracle = OracleMethod().explain(model, images, targets)
    flat = torch.zeros(16, 8, 8)
    steps = 8
    curves = sal.faithfulness_curves(model, images, oracle, targets, keys, steps=steps).numpy()
    assert curves.shape == (16, 4, steps + 1)
    with torch.no_grad():
        original = torch.softmax(model(images), 1)[:, 1].numpy()
        blank = images.mean(dim=(2, 3), keepdim=True).expand_as(images)
        empty = torch.softmax(model(blank), 1)[:, 1].numpy()
    for index in (0, 2):  # deletion curves start at the image and end at the mean image
        assert curves[:, index, 0] == pytest.approx(original, abs=1e-6)
        assert curves[:, index, -1] == pytest.approx(empty, abs=1e-6)
    # Step 1 deletes round(64 / 8) = 8 pixels: the 8 evidence pixels with the smallest tie keys
    # (the oracle map ties all 9). Recomputed by hand for every image.
    region = np.array([0, 1, 2, 8, 9, 10, 16, 17, 18])
    by_hand = images.clone().view(16, 64)
    for i in range(16):
        removed = region[np.argsort(keys[i, region].numpy(), kind="stable")[:8]]
        by_hand[i, removed] = blank[i, 0, 0, 0]
    with torch.no_grad():
        expected = torch.softmax(model(by_hand.view(16, 1, 8, 8)), 1)[:, 1].numpy()
    assert curves[:, 0, 1] == pytest.approx(expected, abs=1e-6)
    auc = sal.curve_auc(curves)
    assert (auc[:, 2] - auc[:, 0] > 0.2).all()  # deletion beats random
    assert (auc[:, 1] - auc[:, 3] > 0.2).all()  # insertion beats random
    assert curves[:, 0, 1].max() < 0.5

    flat_curves = sal.faithfulness_curves(model, images, flat, targets, keys, steps=steps).numpy()
    # A flat map ranks pixels by the random keys alone: it *is* the random map.
    np.testing.assert_allclose(flat_curves[:, 0], flat_curves[:, 2])
    np.testing.assert_allclose(flat_curves[:, 1], flat_curves[:, 3])


def test_random_curves_do_not_depend_on_the_batch() -> None:
    model = RegionModel().eval()
    images = _region_images(6)
    targets = torch.ones(6, dtype=torch.long)
    maps = NoiseMethod().explain(model, images, targets)
    keys = torch.as_tensor(sal.tie_keys(5, np.arange(6), 64))
    whole = sal.faithfulness_curves(model, images, maps, targets, keys, steps=5)
    tail = sal.faithfulness_curves(model, images[3:], maps[3:], targets[3:], keys[3:], steps=5)
    chunked = sal.faithfulness_curves(model, images, maps, targets, keys, steps=5, max_elements=1)
    torch.testing.assert_close(whole[3:], tail)
    torch.testing.assert_close(whole, chunked)


def _region_run(
    method: Any, tmp_path: Path | None = None, region: torch.Tensor = TOP_LEFT, **options: Any
) -> XaiResult:
    model = RegionModel(region).eval()
    images = _region_images(24, region=region)
    labels = torch.ones(24, dtype=torch.long)
    labels[:2] = 0  # two errors: they get true-class maps too
    evaluation = _evaluation(model, images, labels, 2)
    host = _host(**{method.name: lambda **_: method})
    spec = InputSpec(channels=1, size=(8, 8))
    return _run(host, model, images, evaluation, tmp_path, spec, method=method.name, **options)


def test_maps_of_the_true_evidence_are_faithful_and_score_high() -> None:
    result = _region_run(OracleMethod())
    faithfulness = result.sections["xai_quality_summary"]["faithfulness"]
    assert faithfulness["faithful"] is True
    assert faithfulness["deletion_margin"] > 0.2
    quality = result.sections["xai_quality_per_class"]["1"]
    assert quality["mean_quality"] > 0.5
    assert "unfaithful" not in quality["flags"]
    assert not [p for p in result.patterns if p["pattern_type"] == "unfaithful_saliency"]
    assert not [p for p in result.patterns if p["pattern_type"] == "background_focus_suspected"]


def test_faithful_maps_on_the_border_raise_background_focus() -> None:
    result = _region_run(OracleMethod(BORDER), region=BORDER)
    quality = result.sections["xai_quality_per_class"]["1"]
    assert "background_focus" in quality["flags"]
    assert quality["components"]["border_ratio"] == pytest.approx(64 / 28)
    [pattern] = [p for p in result.patterns if p["pattern_type"] == "background_focus_suspected"]
    assert pattern["class_a"] == "1" and check_pattern(pattern)["section"] == "xai"
    assert result.sections["xai_diagnoses"]["1"]["severity"] == "warning"
    assert "border" in result.sections["xai_insights"]["1"]


@pytest.mark.parametrize("method", [ConstantMethod(), NoiseMethod()], ids=["flat", "noise"])
def test_flat_and_random_maps_are_flagged_unfaithful_and_score_low(method: Any) -> None:
    result = _region_run(method)
    summary = result.sections["xai_quality_summary"]
    assert summary["faithfulness"]["faithful"] is False
    assert result.sections["xai_quality_per_class"]["1"]["mean_quality"] < 0.1  # 22 maps
    [pattern] = [p for p in result.patterns if p["pattern_type"] == "unfaithful_saliency"]
    assert pattern["class_a"] == ""  # no class: the maps fail overall
    assert pattern["section"] == "xai" and pattern["severity"] == "medium"
    check_pattern(pattern)
    diagnosis = result.sections["xai_diagnoses"]["1"]
    assert diagnosis["severity"] == "critical"
    assert "NOT faithful" in diagnosis["text"]
    if isinstance(method, ConstantMethod):  # the random map itself: margins exactly 0
        assert summary["mean_quality_score"] == 0.0
        assert summary["faithfulness"]["deletion_margin"] == 0.0


class WeakMethod:
    """Finds 2 of the 16 pixels the model reads, and ranks the rest by noise."""

    name = "weak"
    batched_backward = True

    def explain(
        self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        generator = torch.Generator().manual_seed(1)
        maps = 0.6 * torch.rand(images.shape[0], 64, generator=generator)
        maps[:, CENTRE.flatten().nonzero()[:2, 0]] = 1.0
        return maps.view(-1, 8, 8)


def test_faithful_but_weak_maps_are_low_quality() -> None:
    result = _region_run(WeakMethod(), region=CENTRE)
    quality = result.sections["xai_quality_per_class"]["1"]
    components = quality["components"]
    assert sal.FAITHFUL_MARGIN <= components["deletion_margin"] < 0.1  # beats random, barely
    assert quality["mean_quality"] < sal.LOW_QUALITY
    assert quality["flags"] == ["severity:warning", "low_quality"]
    [pattern] = result.patterns
    assert pattern["pattern_type"] == "low_xai_quality" and pattern["class_a"] == "1"
    assert check_pattern(pattern)["legacy"] == [
        {"type": "low_xai_quality", "class": "1", "quality_score": quality["mean_quality"]}
    ]


def test_quality_score_rewards_faithfulness_and_focus_only() -> None:
    assert sal.quality_score(0.0, 0.0, 1.0) == 0.0  # focused but no better than random
    assert sal.quality_score(-0.1, 0.05, 0.9) == 0.0
    assert sal.quality_score(0.2, 0.2, 0.0) == pytest.approx(0.5)
    assert sal.quality_score(0.2, 0.2, 1.0) == pytest.approx(1.0)
    assert sal.quality_score(0.1, 0.1, 0.5) == pytest.approx(0.5 * 0.75)
    assert sal.quality_score(float("nan"), 0.1, 0.5) == 0.0


# -------------------------------------------------------------------------------------------
# The step
# -------------------------------------------------------------------------------------------


def test_every_map_is_computed_once_and_errors_explain_both_classes(
    tiny: tuple[nn.Module, torch.Tensor, Evaluation],
) -> None:
    model, images, evaluation = tiny
    method = IntensityMethod()
    host = _host(intensity=lambda **_: method)
    result = _run(host, model, images, evaluation, method="intensity", batch_size=7)
    probe = select_probe(evaluation, XaiOptions())
    explained = torch.cat([targets for _, targets in method.calls])
    assert len(explained) == len(probe.keys) == result.scope["probe"]["maps"]
    assert all(len(targets) <= 7 for _, targets in method.calls)
    # Which image each explained row was: images are distinct, so match them back.
    seen = [
        (int(torch.nonzero((images == image).flatten(1).all(1))[0]), int(target))
        for batch, targets in method.calls
        for image, target in zip(batch, targets, strict=True)
    ]
    assert sorted(seen) == sorted(map(tuple, probe.keys.tolist()))
    errors = np.flatnonzero(evaluation.predictions != evaluation.targets)
    assert errors.size
    for row in errors:
        assert (row, evaluation.predictions[row]) in seen and (row, evaluation.targets[row]) in seen
    examples = [
        e for entries in result.sections["xai_examples_per_class"].values() for e in entries
    ]
    assert examples
    for entry in examples:
        row = entry["index"]
        assert entry["explained"] == "predicted"
        assert entry["explained_class"] == entry["pred_label"] == evaluation.predictions[row]
        assert entry["true_label"] == evaluation.targets[row] != entry["pred_label"]
        assert entry["true_class_map"]["explained"] == "true"
        assert entry["true_class_map"]["explained_class"] == entry["true_label"]
        assert entry["overlay_path"] == entry["overlay_true_path"] == entry["image_path"] == ""
    confidences = [e["confidence"] for e in sorted(examples, key=lambda e: -e["confidence"])]
    worst = evaluation.probabilities.max(axis=1)[errors]
    assert confidences == pytest.approx(sorted(worst, reverse=True)[: len(confidences)])


def test_sections_have_the_reference_keys(
    tiny: tuple[nn.Module, torch.Tensor, Evaluation], tmp_path: Path
) -> None:
    model, images, evaluation = tiny
    host = _host(intensity=lambda **_: IntensityMethod())
    result = _run(host, model, images, evaluation, tmp_path / "artifacts", method="intensity")
    sections = result.sections
    assert set(sections) == set(SECTION_KEYS)
    summary = sections["xai_quality_summary"]
    assert {"mean_quality_score", "total_samples", "method", "faithfulness"} <= set(summary)
    assert summary["total_samples"] == 48 and summary["method"] == "intensity"
    for class_id, entry in sections["xai_quality_per_class"].items():
        assert set(entry) == {
            "class_id",
            "class_name",
            "mean_quality",
            "sample_count",
            "flags",
            "components",
        }
        assert entry["class_id"] == class_id and entry["class_name"] == f"c{class_id}"
        assert 0.0 <= entry["mean_quality"] <= 1.0
    for class_id, diagnosis in sections["xai_diagnoses"].items():
        assert {
            "text",
            "severity",
            "quality_score",
            "quality_breakdown",
            "confused_with",
            "trend",
            "short_text",
            "augmentation_impact",
            "baseline_delta",
            "evidence",
        } <= set(diagnosis)
        assert diagnosis["severity"] in {"ok", "warning", "critical"}
        assert diagnosis["trend"] == "new" and diagnosis["baseline_delta"] == {}
        for confused in diagnosis["confused_with"]:
            assert set(confused) == {"class", "class_name", "count"}
            assert confused["class"] in {"0", "1", "2"} and confused["class"] != class_id
        assert sections["xai_insights"][class_id] in diagnosis["text"]
    pairs = sections["confusion_pair_xai"]
    assert 1 <= len(pairs) <= 3
    for pair in pairs:
        assert {
            "class_a",
            "class_b",
            "count",
            "sample_overlays",
            "heuristic_description",
            "mean_overlay_correct_a",
            "mean_overlay_confused_ab",
            "stats_correct",
            "stats_confused",
        } <= set(pair)
        assert len(pair["sample_overlays"]) <= 8
        assert set(pair["stats_confused"]) == set(sal.STAT_KEYS)
        assert pair["heuristic_description"]
        for overlay in pair["sample_overlays"]:
            assert overlay["type"] == "confused"
            assert (overlay["true_label"], overlay["pred_label"]) == (
                int(pair["class_a"]),
                int(pair["class_b"]),
            )
    for class_id, gallery in sections["best_worst_examples"].items():
        assert len(gallery["best"]) <= 4 and len(gallery["worst"]) <= 4
        for entry in gallery["best"] + gallery["worst"]:
            assert {"overlay_path", "true_label", "pred_label", "confidence", "description"} <= set(
                entry
            )
            assert entry["true_label"] == int(class_id)
    for entries in sections["xai_examples_per_class"].values():
        for entry in entries:
            assert set(sal.FAITHFULNESS_KEYS) | {"faithful", "sample_id", "index"} <= set(entry)
    for pattern in result.patterns:
        assert check_pattern(pattern)["section"] == "xai"
    assert result.scope["status"] == "ok" and result.scope["errors"] == []
    # Plain JSON: no numpy scalars, no NaN.
    json.dumps({"sections": sections, "scope": result.scope}, allow_nan=False)


def test_overlays_are_written_once_with_relative_paths_and_identical_bytes(
    tiny: tuple[nn.Module, torch.Tensor, Evaluation], tmp_path: Path
) -> None:
    model, images, evaluation = tiny
    outputs = []
    for name in ("first", "second"):
        host = _host(intensity=lambda **_: IntensityMethod())
        artifacts = tmp_path / name / "artifacts"
        result = _run(host, model, images, evaluation, artifacts, method="intensity")
        outputs.append((tmp_path / name, result))
    (first_dir, first), (second_dir, second) = outputs
    assert first.sections == second.sections
    files = sorted(path.relative_to(first_dir).as_posix() for path in first.files)
    assert files == sorted(p.relative_to(first_dir).as_posix() for p in first_dir.rglob("*.png"))
    assert files == sorted(p.relative_to(second_dir).as_posix() for p in second.files)
    for relative in files:
        assert (first_dir / relative).read_bytes() == (second_dir / relative).read_bytes()

    paths = []
    for entries in first.sections["xai_examples_per_class"].values():
        for entry in entries:
            paths += [entry["overlay_path"], entry["overlay_true_path"], entry["image_path"]]
    for pair in first.sections["confusion_pair_xai"]:
        # No mean overlay of correct class-a images when the model never gets class a right.
        assert (pair["mean_overlay_correct_a"] == "") == (pair["correct_count"] == 0)
        paths += [pair["mean_overlay_correct_a"] or pair["mean_overlay_confused_ab"]]
        paths += [pair["mean_overlay_confused_ab"]]
        paths += [overlay["overlay_path"] for overlay in pair["sample_overlays"]]
    for gallery in first.sections["best_worst_examples"].values():
        paths += [entry["overlay_path"] for entry in gallery["best"] + gallery["worst"]]
    assert paths and all(path.startswith("artifacts/") for path in paths)
    assert set(paths) <= set(files)
    assert any(path.startswith("artifacts/xai_examples/err_0000") for path in paths)
    assert any("/class_examples/class_" in path for path in paths)
    assert any("/confusion_pairs/" in path for path in paths)

    from PIL import Image

    examples = first.sections["xai_examples_per_class"]
    with Image.open(first_dir / next(iter(examples.values()))[0]["overlay_path"]) as image:
        assert image.mode == "RGB" and min(image.size) >= sal.MIN_OVERLAY_SIDE


def test_overlay_rendering_undoes_the_normalisation() -> None:
    images = torch.tensor([[[[0.0, 0.8], [-0.4, 1.6]]]])  # (1, 1, 2, 2), mean 0.2, std 0.5
    shown = sal.display_images(images, (0.2,), (0.5,))
    assert shown.shape == (1, 2, 2, 3)
    assert shown[0, :, :, 0].tolist() == [[51, 153], [0, 255]]
    assert (shown[..., 0] == shown[..., 2]).all()
    heat = sal.overlay(shown[0], np.array([[0, 255], [128, 0]], dtype=np.uint8))
    assert heat.shape == (2, 2, 3)
    assert tuple(heat[0, 1]) == tuple(np.round(0.5 * 153 + 0.5 * sal.JET[255]).astype(int))
    assert sal.enlarge(heat).shape == (96, 96, 3)
    assert sal.png_bytes(heat) == sal.png_bytes(heat.copy())


def test_a_failing_batch_makes_the_step_partial_and_keeps_the_rest(
    tiny: tuple[nn.Module, torch.Tensor, Evaluation], tmp_path: Path
) -> None:
    model, images, evaluation = tiny
    method = IntensityMethod(fail_on={2})
    host = _host(intensity=lambda **_: method)
    result = _run(host, model, images, evaluation, tmp_path, method="intensity", batch_size=8)
    assert result.scope["status"] == "partial"
    assert len(result.scope["errors"]) == 1 and "boom" in result.scope["errors"][0]
    summary = result.sections["xai_quality_summary"]
    assert 0 < summary["maps_computed"] < result.scope["probe"]["maps"]
    assert summary["maps_computed"] == result.scope["probe"]["maps"] - len(method.calls[1][1])
    assert result.sections["xai_quality_per_class"]
    assert result.files


def test_an_unknown_method_is_refused_with_the_available_names(
    tiny: tuple[nn.Module, torch.Tensor, Evaluation],
) -> None:
    model, images, evaluation = tiny
    host = _host(intensity=lambda **_: IntensityMethod(), constant=lambda **_: ConstantMethod())
    with pytest.raises(BnnrError, match=r"'gradcamm'.*constant, intensity"):
        _run(host, model, images, evaluation, method="gradcamm")


def test_without_any_method_the_step_is_skipped(
    tiny: tuple[nn.Module, torch.Tensor, Evaluation],
) -> None:
    model, images, evaluation = tiny
    result = _run(_host(), model, images, evaluation)
    assert result.scope["status"] == "skipped"
    assert "no XAI method" in result.scope["reason"]
    assert result.sections == {
        key: [] if key == "confusion_pair_xai" else {} for key in SECTION_KEYS
    }
    assert result.patterns == [] and result.files == []


def test_a_method_failing_on_the_first_batch_falls_back_to_saliency(
    tiny: tuple[nn.Module, torch.Tensor, Evaluation],
) -> None:
    model, images, evaluation = tiny
    fallback = IntensityMethod(name="saliency")
    host = _host(gradcam=NoConvMethod, saliency=lambda **_: fallback)
    result = _run(host, model, images, evaluation, method="gradcam")
    scope = result.scope
    assert scope["method"] == "saliency" and scope["status"] == "ok"
    assert "gradcam failed on the first batch" in scope["fallback"]
    assert "no nn.Conv2d" in scope["fallback"]
    assert result.sections["xai_quality_summary"]["method"] == "saliency"
    # With the layer named by the user, the failure is the user's to fix.
    with pytest.raises(BnnrError, match="--xai-layer features"):
        _run(host, model, images, evaluation, method="gradcam", layer="features")


def test_auto_takes_the_cheapest_method_that_beats_random_and_records_why() -> None:
    oracle = OracleMethod()
    host = _host(
        gradcam=NoConvMethod,
        saliency=lambda **_: ConstantMethod(),
        zzz_oracle=lambda **_: oracle,
    )
    model = RegionModel().eval()
    images = _region_images(40)
    evaluation = _evaluation(model, images, torch.ones(40, dtype=torch.long), 2)
    spec = InputSpec(channels=1, size=(8, 8))
    result = _run(host, model, images, evaluation, spec=spec, method="auto")
    choice = result.scope["method_choice"]
    assert choice["mode"] == "auto" and choice["calibration_images"] == 32
    by_name = {c["name"]: c for c in choice["candidates"]}
    assert list(by_name) == ["gradcam", "saliency", "zzz_oracle"]
    assert by_name["gradcam"]["status"] == "failed"
    assert by_name["saliency"]["status"] == "evaluated" and not by_name["saliency"]["faithful"]
    assert by_name["saliency"]["deletion_margin"] == 0.0
    assert by_name["zzz_oracle"]["status"] == "chosen" and by_name["zzz_oracle"]["faithful"]
    assert result.scope["method"] == "zzz_oracle"
    assert "gradcam" in result.scope["fallback"]

    # The chosen method's calibration maps are reused, not recomputed.
    calls: list[int] = []
    counting = IntensityMethod(name="saliency")
    original = counting.explain
    counting.explain = lambda m, x, t: calls.append(len(t)) or original(m, x, t)  # type: ignore[method-assign]
    host = _host(saliency=lambda **_: counting)
    result = _run(host, model, images, evaluation, spec=spec)
    assert sum(calls) == result.scope["probe"]["maps"] == 40


def test_the_layer_option_reaches_methods_that_take_it(
    tiny: tuple[nn.Module, torch.Tensor, Evaluation],
) -> None:
    model, images, evaluation = tiny
    built: list[str | None] = []

    def with_layer(layer: str | None = None) -> IntensityMethod:
        built.append(layer)
        return IntensityMethod(name="gradcam")

    host = _host(gradcam=with_layer, saliency=lambda: IntensityMethod(name="saliency"))
    _run(host, model, images, evaluation, method="gradcam", layer="0")
    assert built == ["0"]
    result = _run(host, model, images, evaluation, method="saliency", layer="0")
    assert result.scope["status"] == "ok"
    assert "takes no layer option" in result.scope["notes"][0]


def test_the_model_is_left_as_it_was(
    tiny: tuple[nn.Module, torch.Tensor, Evaluation], tmp_path: Path
) -> None:
    model, images, evaluation = tiny
    model.train()
    model[0].requires_grad_(False)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    flags = {name: p.requires_grad for name, p in model.named_parameters()}

    class GradLeaking(IntensityMethod):
        def explain(
            self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor
        ) -> torch.Tensor:
            assert not model.training
            model(images).sum().backward()  # leaves .grad behind
            return super().explain(model, images, targets)

    host = _host(leaky=lambda **_: GradLeaking(name="leaky"))
    result = _run(host, model, images, evaluation, tmp_path, method="leaky")
    assert result.scope["status"] == "ok"
    assert model.training and all(module.training for module in model.modules())
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_rows_are_mapped_to_dataset_positions(
    tiny: tuple[nn.Module, torch.Tensor, Evaluation],
) -> None:
    model, images, evaluation = tiny
    # Rows are images 1..47 of the data set (image 0 was unreadable).
    shifted = Evaluation(
        task="classification",
        class_names=evaluation.class_names,
        probabilities=evaluation.probabilities[1:],
        targets=evaluation.targets[1:],
        predictions=evaluation.predictions[1:],
        per_sample_loss=evaluation.per_sample_loss[1:],
        dataset_indices=np.arange(1, 48),
    )
    fetched: list[list[int]] = []

    def fetch(positions: np.ndarray) -> torch.Tensor:
        fetched.append(np.asarray(positions).tolist())
        return images[torch.as_tensor(np.asarray(positions))]

    method = IntensityMethod()
    run_xai(
        host=_host(intensity=lambda **_: method),
        model=model,
        evaluation=shifted,
        fetch_images=fetch,
        spec=SPEC,
        options=XaiOptions(method="intensity"),
        artifacts_dir=None,
    )
    assert min(min(batch) for batch in fetched) >= 1
    first_batch = method.calls[0][0]
    assert torch.equal(first_batch[0], images[fetched[0][0]])


def test_multilabel_evaluations_take_the_multilabel_path(
    tiny: tuple[nn.Module, torch.Tensor, Evaluation],
) -> None:
    model, images, evaluation = tiny
    multi = Evaluation(
        task="multilabel",
        class_names=evaluation.class_names,
        probabilities=evaluation.probabilities,
        targets=np.eye(3, dtype=np.int64)[evaluation.targets],
        predictions=np.eye(3, dtype=np.int64)[evaluation.predictions],
        per_sample_loss=evaluation.per_sample_loss,
    )
    result = _run(_host(intensity=lambda **_: IntensityMethod()), model, images, multi)
    assert result.scope["status"] == "ok", result.scope
    assert "multilabel_high_loss" in result.sections["xai_examples_per_class"]
    assert result.sections["confusion_pair_xai"] == []


# -------------------------------------------------------------------------------------------
# The real methods, once their plugin is installed
# -------------------------------------------------------------------------------------------


@pytest.mark.skipif(
    "gradcam" not in load_plugins().available("xai_method"),
    reason="the bnnr_xai plugin is not installed",
)
def test_real_gradcam_on_the_small_cnn(tmp_path: Path) -> None:
    from bnnr_core.analysis.data import input_spec, load_eval_data
    from bnnr_core.datasets.digits import MEAN, STD

    host = load_plugins()
    torch.manual_seed(0)
    model = host.component("architecture", "small_cnn").create(num_classes=10, in_channels=1)
    model.eval()
    data = load_eval_data("digits")
    spec = input_spec(
        data, model_channels=1, model_input_size=(1, 8, 8), model_mean=MEAN, model_std=STD
    )
    subset = np.arange(0, 360, 3)
    images = data.images(subset, spec)
    evaluation = _evaluation(model, images, torch.as_tensor(data.labels[subset]), 10)
    result = run_xai(
        host=host,
        model=model,
        evaluation=evaluation,
        fetch_images=lambda positions: images[torch.as_tensor(np.asarray(positions))],
        spec=spec,
        options=XaiOptions(method="gradcam", samples=60, max_worst=5),
        artifacts_dir=tmp_path / "artifacts",
    )
    assert result.scope["status"] == "ok", result.scope
    assert result.scope["method"] == "gradcam"
    assert result.scope["method_details"]["target_layer"] == "features.block3"
    assert result.sections["xai_quality_summary"]["total_samples"] == 60
    assert result.files


@pytest.mark.skipif(
    not {"gradcam", "saliency"} <= set(load_plugins().available("xai_method")),
    reason="the bnnr_xai plugin is not installed",
)
def test_real_gradcam_on_a_model_without_convolutions_falls_back_to_saliency() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()
    dataset = make_tiny_dataset(per_class=8)
    images, labels = dataset.tensors
    evaluation = _evaluation(model, images, labels, 3)
    result = _run(load_plugins(), model, images, evaluation, method="gradcam")
    assert result.scope["method"] == "saliency" and result.scope["status"] == "ok"
    assert result.scope["fallback"].startswith("gradcam failed on the first batch")
