"""The multi-label path of analyze's XAI step: the probe (every wrong label of the highest-loss
images, and a label-stratified quality probe), maps of a real gradient method against a model
whose per-label evidence is known, sigmoid scoring of the faithfulness test, the sections'
shapes, overlays and determinism."""

from __future__ import annotations

import json
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
    MULTILABEL_NOTE,
    SECTION_KEYS,
    XaiOptions,
    XaiResult,
    run_xai,
    select_multilabel_probe,
)
from bnnr_core.analysis.xai import probe as xai_module
from bnnr_core.plugins import PluginHost, load_plugins

SPEC = InputSpec(channels=1, size=(8, 8), mean=None, std=None)
LABELS = 3
#: Label j's logit reads only the pixels of REGIONS[j]: label 0 the top row (all in the 1-pixel
#: border strip of an 8x8 image), labels 1 and 2 two inner 2x4 blocks (no border pixel).
REGIONS = torch.zeros(LABELS, 8, 8, dtype=torch.bool)
REGIONS[0, 0, :] = True
REGIONS[1, 2:4, 2:6] = True
REGIONS[2, 5:7, 2:6] = True
#: ``(row, label)`` cells whose ground truth is flipped: the model (which reads the image) gets
#: them wrong. Rows 3 and 6 have two wrong labels each.
FLIPS = ((0, 0), (1, 1), (2, 2), (3, 0), (3, 1), (4, 2), (5, 1), (6, 0), (6, 2))

needs_saliency = pytest.mark.skipif(
    "saliency" not in load_plugins().available("xai_method"),
    reason="the bnnr_xai plugin is not installed",
)


class RegionLabels(nn.Module):
    """Three labels; label j's logit is ``scale * (mean of REGIONS[j] - 0.6)``, so a drawn
    region (pixels at 1) gives a positive logit and the background (< 0.3) a negative one.
    ``mute`` labels get a large negative bias: they are never predicted present."""

    regions: torch.Tensor
    bias: torch.Tensor

    def __init__(self, mute: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(12.0))
        self.register_buffer("regions", REGIONS.float())
        bias = torch.zeros(LABELS)
        bias[list(mute)] = -100.0
        self.register_buffer("bias", bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        means = torch.einsum("nhw,lhw->nl", images[:, 0], self.regions)
        means = means / self.regions.sum(dim=(1, 2))
        return self.scale * (means - 0.6) + self.bias


def _data(
    count: int = 48, mute: tuple[int, ...] = ()
) -> tuple[nn.Module, torch.Tensor, Evaluation]:
    generator = torch.Generator().manual_seed(0)
    drawn = torch.rand((count, LABELS), generator=generator) < 0.5
    images = 0.3 * torch.rand((count, 1, 8, 8), generator=generator)
    for label in range(LABELS):
        images[drawn[:, label], 0] = torch.where(
            REGIONS[label], torch.ones(8, 8), images[drawn[:, label], 0]
        )
    targets = drawn.clone()
    for row, label in FLIPS:
        targets[row, label] = ~targets[row, label]
    model = RegionLabels(mute).eval()
    with torch.no_grad():
        logits = model(images)
    probabilities = torch.sigmoid(logits)
    loss = nn.functional.binary_cross_entropy_with_logits(
        logits, targets.float(), reduction="none"
    ).mean(dim=1)
    predictions = probabilities >= 0.5
    if not mute:
        assert torch.equal(predictions, drawn)  # the model reads the images perfectly
    evaluation = Evaluation(
        task="multilabel",
        class_names=("top", "mid", "low"),
        probabilities=probabilities.numpy().astype(np.float64),
        targets=targets.numpy().astype(np.int64),
        predictions=predictions.numpy().astype(np.int64),
        per_sample_loss=loss.numpy().astype(np.float64),
        sample_ids=tuple(f"ml:{i}" for i in range(count)),
    )
    return model, images, evaluation


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
    host.register(Methods(**factories), "fake_xai")
    return host


class Recording:
    """Wraps a method (the real ``saliency`` by default): records every ``(row, label)`` it
    explains, identifying rows by their image, and the maps it returns."""

    batched_backward = True

    def __init__(self, images: torch.Tensor, inner: Any = None, name: str = "saliency") -> None:
        self.name = name
        self.images = images
        self.inner = inner
        self.explained: list[tuple[int, int]] = []
        self.maps: list[torch.Tensor] = []

    def explain(
        self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        same = (images[:, None] == self.images[None]).flatten(2).all(dim=2)  # (B, N)
        rows = same.float().argmax(dim=1)
        assert same.any(dim=1).all()
        self.explained += [(int(r), int(t)) for r, t in zip(rows, targets, strict=True)]
        if self.inner is None:  # the image itself, min-max scaled
            values = images[:, 0]
            low = values.flatten(1).amin(1).view(-1, 1, 1)
            high = values.flatten(1).amax(1).view(-1, 1, 1)
            maps = (values - low) / (high - low).clamp_min(1e-6)
        else:
            maps = self.inner.explain(model, images, targets)
        self.maps.append(maps.detach().cpu())
        return maps


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


def _real_saliency() -> Any:
    return load_plugins().component("xai_method", "saliency").create()


def _run(
    host: PluginHost,
    model: nn.Module,
    images: torch.Tensor,
    evaluation: Evaluation,
    artifacts: Path | None = None,
    **options: Any,
) -> XaiResult:
    return run_xai(
        host=host,
        model=model,
        evaluation=evaluation,
        fetch_images=lambda positions: images[torch.as_tensor(np.asarray(positions))],
        spec=SPEC,
        options=XaiOptions(**options),
        artifacts_dir=artifacts,
    )


def _wrong_cells(evaluation: Evaluation) -> set[tuple[int, int]]:
    wrong = np.asarray(evaluation.targets) != np.asarray(evaluation.predictions)
    return {(int(r), int(c)) for r, c in np.argwhere(wrong)}


# -------------------------------------------------------------------------------------------
# Probe
# -------------------------------------------------------------------------------------------


def test_the_probe_takes_every_wrong_label_of_the_highest_loss_images() -> None:
    _, _, evaluation = _data()
    probe = select_multilabel_probe(evaluation, XaiOptions(samples=30))
    loss = evaluation.per_sample_loss
    error_rows = sorted({row for row, _ in FLIPS})
    assert sorted(probe.worst.tolist()) == error_rows
    assert (np.diff(loss[probe.worst]) <= 0).all()  # highest loss first
    explained = {(int(r), int(c)) for r, c in probe.error_keys()}
    assert explained == set(FLIPS) == _wrong_cells(evaluation)
    for row, labels, false_positive in zip(
        probe.worst, probe.wrong, probe.false_positive, strict=True
    ):
        assert false_positive.tolist() == [
            bool(evaluation.predictions[row, label]) and not evaluation.targets[row, label]
            for label in labels
        ]
        gaps = np.abs(evaluation.probabilities[row, labels] - evaluation.targets[row, labels])
        assert (np.diff(gaps) <= 0).all()  # the most wrong label first
    counts = probe.counts()
    assert counts["error_maps"] == len(FLIPS) and counts["wrong_labels_left_out"] == 0
    assert counts["false_positive_maps"] > 0 and counts["false_negative_maps"] > 0
    # The quality probe: 10 maps per label, each on an image where the label is predicted.
    stratified = probe.stratified
    assert np.bincount(stratified[:, 1], minlength=LABELS).tolist() == [10, 10, 10]
    assert evaluation.predictions[stratified[:, 0], stratified[:, 1]].all()
    assert len(np.unique(stratified, axis=0)) == len(stratified)
    # Every map once, sorted.
    assert len(np.unique(probe.keys, axis=0)) == len(probe.keys)
    assert {tuple(k) for k in probe.keys.tolist()} == explained | {
        tuple(k) for k in stratified.tolist()
    }
    # max_worst caps the images, not their labels.
    capped = select_multilabel_probe(evaluation, XaiOptions(samples=0, max_worst=2))
    assert capped.worst.tolist() == probe.worst[:2].tolist()
    assert len(capped.stratified) == 0
    assert sum(len(w) for w in capped.wrong) == sum(len(w) for w in probe.wrong[:2])


def test_the_probe_is_seeded_and_skips_nonfinite_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, evaluation = _data()
    probabilities = evaluation.probabilities.copy()
    probabilities[6] = np.nan  # a wrong row with non-finite outputs
    broken = Evaluation(
        task="multilabel",
        class_names=evaluation.class_names,
        probabilities=probabilities,
        targets=evaluation.targets,
        predictions=evaluation.predictions,
        per_sample_loss=evaluation.per_sample_loss,
    )
    first = select_multilabel_probe(broken, XaiOptions(samples=12, seed=3))
    again = select_multilabel_probe(broken, XaiOptions(samples=12, seed=3))
    other = select_multilabel_probe(broken, XaiOptions(samples=12, seed=4))
    assert np.array_equal(first.keys, again.keys)
    assert not np.array_equal(first.stratified, other.stratified)
    assert 6 not in first.rows.tolist()
    # A cap on wrong labels per image keeps the most wrong and counts the rest.
    monkeypatch.setattr(xai_module, "MAX_WRONG_LABELS", 1)
    capped = select_multilabel_probe(evaluation, XaiOptions(samples=0))
    assert all(len(labels) == 1 for labels in capped.wrong)
    assert capped.left_out == 2  # rows 3 and 6 have two wrong labels


# -------------------------------------------------------------------------------------------
# Maps and faithfulness
# -------------------------------------------------------------------------------------------


@needs_saliency
def test_gradient_maps_point_at_the_label_region_and_beat_random() -> None:
    model, images, evaluation = _data()
    method = Recording(images, _real_saliency())
    result = _run(_host(saliency=lambda **_: method), model, images, evaluation, samples=60)
    assert result.scope["status"] == "ok"
    # Every map puts (almost) all its mass on the region its label's logit reads.
    maps = torch.cat(method.maps)
    labels = torch.tensor([label for _, label in method.explained])
    inside = (maps * REGIONS[labels]).flatten(1).sum(1) / maps.flatten(1).sum(1).clamp_min(1e-12)
    assert inside.min() > 0.99
    per_class = result.sections["xai_quality_per_class"]
    assert sorted(per_class) == ["0", "1", "2"]
    for entry in per_class.values():
        components = entry["components"]
        assert components["deletion_margin"] > 0.3 and components["insertion_margin"] > 0.2
        assert components["faithful_share"] == 1.0 and entry["mean_quality"] > 0.8
    faithfulness = result.sections["xai_quality_summary"]["faithfulness"]
    assert faithfulness["faithful"] and faithfulness["deletion_margin"] > 0.3
    # A false positive's map is the evidence the model used: deleting it removes the label.
    examples = result.sections["xai_examples_per_class"]["multilabel_high_loss"]
    positives = [e for e in examples if e["error"] == "false_positive"]
    assert positives and all(e["faithful"] for e in positives)
    assert all(e["probability"] > 0.5 for e in positives)
    # Label 0 reads the top row, all of it in the border strip: background focus for label 0
    # only, computed per label like single-label classes.
    patterns = [check_pattern(p) for p in result.patterns]
    assert [(p["pattern_type"], p["class_a"]) for p in patterns] == [
        ("background_focus_suspected", "0")
    ]
    assert "label top (id 0)" in patterns[0]["description"]
    assert result.sections["xai_quality_summary"]["background_focus_classes"] == ["0"]
    centre = result.sections["xai_diagnoses"]["2"]["short_text"]
    assert "lower part" in centre


def test_false_positives_and_false_negatives_are_each_explained_once() -> None:
    model, images, evaluation = _data()
    method = Recording(images, name="intensity")
    result = _run(
        _host(intensity=lambda **_: method),
        model,
        images,
        evaluation,
        method="intensity",
        samples=30,
        batch_size=7,
    )
    probe = select_multilabel_probe(evaluation, XaiOptions(samples=30))
    # Each (image, label) map exactly once, and exactly the probe's.
    assert len(method.explained) == len(set(method.explained)) == len(probe.keys)
    assert set(method.explained) == {tuple(k) for k in probe.keys.tolist()}
    assert set(FLIPS) <= set(method.explained)
    # Every wrong label is listed, not only each image's first mismatch.
    examples = result.sections["xai_examples_per_class"]["multilabel_high_loss"]
    assert {(e["index"], e["target_label"]) for e in examples} == set(FLIPS)
    for entry in examples:
        row, label = entry["index"], entry["target_label"]
        predicted = bool(evaluation.predictions[row, label])
        assert entry["error"] == ("false_positive" if predicted else "false_negative")
        assert entry["probability"] == pytest.approx(evaluation.probabilities[row, label])
        assert entry["loss"] == pytest.approx(evaluation.per_sample_loss[row])
        assert entry["true_labels"] == np.flatnonzero(evaluation.targets[row]).tolist()
        assert entry["pred_labels"] == np.flatnonzero(evaluation.predictions[row]).tolist()
        assert entry["explained_class"] == label and entry["sample_id"] == f"ml:{row}"
    kinds = [e["error"] for e in examples]
    assert "false_positive" in kinds and "false_negative" in kinds
    assert sum(e["index"] == 3 for e in examples) == 2
    assert sum(e["index"] == 6 for e in examples) == 2
    # Highest-loss image first; its entries keep their rank.
    ranks = [e["rank"] for e in examples]
    assert ranks == sorted(ranks)
    losses = [e["loss"] for e in examples]
    assert losses == sorted(losses, reverse=True)
    probe_scope = result.scope["probe"]
    assert probe_scope["error_maps"] == len(FLIPS)
    assert probe_scope["false_positive_maps"] + probe_scope["false_negative_maps"] == len(FLIPS)
    assert probe_scope["maps"] == len(probe.keys)
    error_maps = result.sections["xai_quality_summary"]["error_maps"]
    assert error_maps["false_positive"]["maps"] == probe_scope["false_positive_maps"]
    assert error_maps["false_negative"]["maps"] == probe_scope["false_negative_maps"]


def test_faithfulness_scores_the_sigmoid_not_the_softmax() -> None:
    model = RegionLabels().eval()
    images = 0.3 * torch.rand((4, 1, 8, 8), generator=torch.Generator().manual_seed(1))
    images[:, 0][:, REGIONS.any(dim=0)] = 1.0  # all three labels present
    targets = torch.tensor([0, 1, 2, 1])
    maps = REGIONS[targets].float()
    keys = torch.as_tensor(sal.tie_keys(0, np.arange(4), 64))
    sigmoid = sal.faithfulness_curves(model, images, maps, targets, keys, steps=4, score="sigmoid")
    softmax = sal.faithfulness_curves(model, images, maps, targets, keys, steps=4)
    with torch.no_grad():
        logits = model(images)
    expected = torch.sigmoid(logits)[torch.arange(4), targets]
    assert sigmoid[:, 0, 0] == pytest.approx(expected.numpy(), abs=1e-6)
    assert (sigmoid[:, 0, 0] > 0.99).all()
    assert (softmax[:, 0, 0] < 0.4).all()  # three equal logits: softmax 1/3
    # Deleting the label's own region first lowers its sigmoid faster than random deletion.
    auc = sal.curve_auc(sigmoid.numpy())
    assert (auc[:, 2] - auc[:, 0] > 0.2).all()
    with pytest.raises(ValueError, match="softmax, sigmoid"):
        sal.faithfulness_curves(model, images, maps, targets, keys, steps=4, score="logit")

    # In the step: the curves start at the evaluation's sigmoid probability of the label.
    step_model, images, evaluation = _data()
    method = Recording(images, name="intensity")
    result = _run(
        _host(intensity=lambda **_: method), step_model, images, evaluation, method="intensity"
    )
    summary = result.sections["xai_quality_summary"]
    stratified = select_multilabel_probe(evaluation, XaiOptions()).stratified
    chosen = evaluation.probabilities[stratified[:, 0], stratified[:, 1]]
    start = summary["faithfulness"]["mean_curves"]["deletion"][0]
    assert start == pytest.approx(chosen.mean(), abs=1e-5)
    with torch.no_grad():
        soft = torch.softmax(step_model(images), dim=1).numpy()
    assert abs(soft[stratified[:, 0], stratified[:, 1]].mean() - start) > 0.2
    assert summary["faithfulness"]["score"] == "sigmoid probability of the explained label"
    assert result.scope["settings"]["faithfulness_score"] == "sigmoid"


# -------------------------------------------------------------------------------------------
# Sections, overlays, determinism
# -------------------------------------------------------------------------------------------

ENTRY_KEYS = {
    "index",
    "sample_id",
    "target_label",
    "target_name",
    "error",
    "loss",
    "probability",
    "overlay_path",
    "image_path",
    "deletion_auc",
    "insertion_auc",
    "random_deletion_auc",
    "random_insertion_auc",
    "faithful",
    "note",
}


def test_sections_have_the_multilabel_shapes(tmp_path: Path) -> None:
    model, images, evaluation = _data()
    result = _run(
        _host(intensity=lambda **_: Recording(images, name="intensity")),
        model,
        images,
        evaluation,
        tmp_path / "artifacts",
        method="intensity",
        samples=60,
    )
    sections = result.sections
    assert set(sections) == set(SECTION_KEYS)
    json.dumps(sections, allow_nan=False)
    json.dumps(result.scope, allow_nan=False)
    assert sections["confusion_pair_xai"] == [] and sections["best_worst_examples"] == {}
    assert any("not defined for multi-label" in note for note in result.scope["notes"])
    assert list(sections["xai_examples_per_class"]) == ["multilabel_high_loss"]
    examples = sections["xai_examples_per_class"]["multilabel_high_loss"]
    assert len(examples) == len(FLIPS)
    for entry in examples:
        assert set(entry) >= ENTRY_KEYS
        assert entry["error"] in ("false_positive", "false_negative")
        assert isinstance(entry["faithful"], bool) and entry["note"]
        assert entry["target_name"] == evaluation.class_names[entry["target_label"]]
    summary = sections["xai_quality_summary"]
    assert list(summary)[:2] == ["multilabel_probe_count", "multilabel_xai_note"]
    assert summary["multilabel_probe_count"] == len({row for row, _ in FLIPS})
    assert summary["multilabel_xai_note"] == MULTILABEL_NOTE
    assert "EVERY wrong label" in MULTILABEL_NOTE and "first mismatch" in MULTILABEL_NOTE
    assert summary["total_samples"] == 60 and summary["method"] == "intensity"
    assert summary["mean_quality_score"] is not None
    assert summary["explained"] == "predicted-present label"
    assert {"faithfulness", "error_maps", "classes_scored"} <= set(summary)
    per_class = sections["xai_quality_per_class"]
    assert sorted(per_class) == ["0", "1", "2"]
    for key, entry in per_class.items():
        assert set(entry) == {
            "class_id",
            "class_name",
            "mean_quality",
            "sample_count",
            "flags",
            "components",
        }
        assert entry["class_id"] == key and entry["sample_count"] == 20
    diagnoses, insights = sections["xai_diagnoses"], sections["xai_insights"]
    assert sorted(diagnoses) == sorted(insights) == ["0", "1", "2"]
    for key, diagnosis in diagnoses.items():
        assert diagnosis["confused_with"] == []
        assert "predicted present" in insights[key]
        errors = diagnosis["high_loss_errors"]
        flips = [label for _, label in FLIPS if label == int(key)]
        assert errors["false_positive"] + errors["false_negative"] == len(flips)
        assert "false positive on" in diagnosis["text"]
    for pattern in result.patterns:
        check_pattern(pattern)
        assert pattern["section"] == "xai"


def test_a_label_that_is_never_predicted_is_explained_through_its_false_negatives() -> None:
    model, images, evaluation = _data(mute=(2,))
    assert not evaluation.predictions[:, 2].any()
    result = _run(
        _host(intensity=lambda **_: Recording(images, name="intensity")),
        model,
        images,
        evaluation,
        method="intensity",
        samples=60,
    )
    sections = result.sections
    assert sorted(sections["xai_quality_per_class"]) == ["0", "1"]  # no quality probe for 2
    assert "2" not in sections["xai_diagnoses"]
    assert "not predicted present on any image" in sections["xai_insights"]["2"]
    examples = sections["xai_examples_per_class"]["multilabel_high_loss"]
    label_two = [e for e in examples if e["target_label"] == 2]
    assert label_two and all(e["error"] == "false_negative" for e in label_two)


def test_overlays_are_written_with_relative_paths_and_the_step_is_deterministic(
    tmp_path: Path,
) -> None:
    model, images, evaluation = _data()

    def run(folder: Path | None) -> XaiResult:
        host = _host(intensity=lambda **_: Recording(images, name="intensity"))
        return _run(host, model, images, evaluation, folder, method="intensity", samples=30)

    first = run(tmp_path / "a" / "artifacts")
    second = run(tmp_path / "b" / "artifacts")
    assert first.sections == second.sections and first.patterns == second.patterns
    examples = first.sections["xai_examples_per_class"]["multilabel_high_loss"]
    written = {path.relative_to(tmp_path / "a").as_posix() for path in first.files}
    for entry in examples:
        stem = f"artifacts/xai_multilabel/ml_{entry['rank']:04d}"
        assert entry["overlay_path"] == f"{stem}_label_{entry['target_label']}.png"
        assert entry["image_path"] == f"{stem}_image.png"
        for key in ("overlay_path", "image_path"):
            assert entry[key] in written
            assert (tmp_path / "a" / entry[key]).read_bytes() == (
                tmp_path / "b" / entry[key]
            ).read_bytes()
            assert (tmp_path / "a" / entry[key]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(written) == len(examples) + len({e["index"] for e in examples})
    # Without an output folder nothing is written and the paths are empty.
    bare = run(None)
    assert bare.files == []
    bare_examples = bare.sections["xai_examples_per_class"]["multilabel_high_loss"]
    assert {e["overlay_path"] for e in bare_examples} == {""}
    assert [e["deletion_auc"] for e in bare_examples] == [e["deletion_auc"] for e in examples]


# -------------------------------------------------------------------------------------------
# Method choice, fallback, refusals
# -------------------------------------------------------------------------------------------


@needs_saliency
def test_auto_and_the_fallback_work_as_for_single_label() -> None:
    model, images, evaluation = _data()
    host = _host(gradcam=NoConvMethod, saliency=lambda **_: _real_saliency())
    result = _run(host, model, images, evaluation, samples=60)
    choice = result.scope["method_choice"]
    records = {c["name"]: c for c in choice["candidates"]}
    assert records["gradcam"]["status"] == "failed"
    assert records["saliency"]["status"] == "chosen" and records["saliency"]["faithful"]
    assert choice["calibration_images"] == 32
    assert result.scope["method"] == "saliency"
    named = _run(host, model, images, evaluation, method="gradcam", samples=60)
    assert named.scope["status"] == "ok" and named.scope["method"] == "saliency"
    assert "gradcam failed on the first batch" in named.scope["fallback"]


def test_inconsistent_multilabel_arrays_are_skipped() -> None:
    model, images, evaluation = _data()
    broken = Evaluation(
        task="multilabel",
        class_names=evaluation.class_names,
        probabilities=evaluation.probabilities[:, :2],
        targets=evaluation.targets,
        predictions=evaluation.predictions,
        per_sample_loss=evaluation.per_sample_loss,
    )
    host = _host(intensity=lambda **_: Recording(images, name="intensity"))
    result = _run(host, model, images, broken, method="intensity")
    assert result.scope["status"] == "skipped" and "differ in shape" in result.scope["reason"]
    assert result.sections["confusion_pair_xai"] == [] and result.files == []


def test_single_label_runs_keep_the_softmax_score() -> None:
    from bnnr_core.testing import make_tiny_dataset, make_tiny_model

    images, labels = make_tiny_dataset(per_class=6).tensors
    model = make_tiny_model()
    with torch.no_grad():
        probabilities = torch.softmax(model(images), dim=1).numpy().astype(np.float64)
    evaluation = Evaluation(
        task="classification",
        class_names=("a", "b", "c"),
        probabilities=probabilities,
        targets=labels.numpy(),
        predictions=probabilities.argmax(axis=1),
        per_sample_loss=np.zeros(len(labels)),
    )
    host = _host(intensity=lambda **_: Recording(images, name="intensity"))
    result = _run(host, model, images, evaluation, method="intensity")
    summary = result.sections["xai_quality_summary"]
    assert "multilabel_probe_count" not in summary
    assert summary["faithfulness"]["score"] == "softmax probability of the explained class"
    assert result.scope["settings"]["faithfulness_score"] == "softmax"
    assert "For images of class a" in result.sections["xai_insights"]["0"]
