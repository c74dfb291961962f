"""The data-quality step on multi-label data: labels are ``(N, C)`` multi-hot label sets.

Duplicates conflict when their label *sets* differ, class balance counts the positive images of
every label, label errors run confident learning per label, and sample ids and thumbnails are as
for single-label data. The data set is small, in memory, with planted copies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bnnr_data_quality.duplicates import DuplicatesCheck
from bnnr_data_quality.labels import ClassBalanceCheck, LabelErrorsCheck

from bnnr_core.analysis.data import EvalData, SplitSource
from bnnr_core.analysis.data_quality import (
    CheckSkipped,
    DataQualityOptions,
    DataQualityView,
    build_view,
    run_data_quality,
)
from bnnr_core.analysis.evaluation import Evaluation
from bnnr_core.analysis.findings import check_pattern
from bnnr_core.plugins import load_plugins

NAMES = ("cat", "dog", "sun", "car")
SIDE = 32


def natural(count: int, seed: int) -> np.ndarray:
    """``count`` distinct colour images, uint8 ``(count, 3, SIDE, SIDE)``: a smooth random
    field with a sharp rectangle and noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (count, 3, 4, 4))
    pixels = np.repeat(np.repeat(coarse, SIDE // 4, axis=2), SIDE // 4, axis=3)
    for image in range(count):
        top, left = rng.integers(0, SIDE - 12, 2)
        pixels[image, :, top : top + 10, left : left + 10] = rng.uniform(0, 255, (3, 1, 1))
    pixels += rng.normal(0, 6, pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def label_sets(count: int, seed: int) -> np.ndarray:
    """Random multi-hot ``(count, 4)``: cat, dog and sun common, car rare (two images)."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((count, len(NAMES))) < 0.5).astype(np.int64)
    labels[:, 3] = 0
    labels[[4, 5], 3] = 1
    return labels


def source(images: np.ndarray, labels: np.ndarray, name: str) -> SplitSource:
    return SplitSource(
        name=name,
        labels=labels,
        sample_ids=tuple(f"multi:{name}:{k}" for k in range(len(labels))),
        arrays=images,
    )


@pytest.fixture(scope="module")
def planted() -> dict[str, Any]:
    """60 evaluation and 40 training images; eval 10 copies eval 0 under another label set,
    eval 11 copies eval 1 under the same set, train 5 copies eval 2 under another set."""
    images, labels = natural(60, seed=1), label_sets(60, seed=1)
    train, train_labels = natural(40, seed=2), label_sets(40, seed=2)
    labels[[0, 1, 2]] = [[1, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]]
    images[10], labels[10] = images[0], [0, 0, 1, 0]
    images[11], labels[11] = images[1], labels[1]
    train[5], train_labels[5] = images[2], [1, 1, 0, 0]
    return {
        "eval": source(images, labels, "val"),
        "train": source(train, train_labels, "train"),
    }


def eval_data(planted: dict[str, Any]) -> EvalData:
    raw = planted["eval"]

    def iterate(*_: Any) -> Any:  # the step reads raw images only
        raise AssertionError("data quality must not iterate batches")

    return EvalData(
        source="manifest",
        location="labels.csv",
        split="val",
        class_names=NAMES,
        labels=raw.labels,
        sample_ids=raw.sample_ids,
        native_channels=3,
        native_size=(SIDE, SIDE),
        train_samples=len(planted["train"]),
        iterate=iterate,
        raw=raw,
        train=lambda: planted["train"],
    )


def view_of(planted: dict[str, Any], evaluation: Evaluation | None = None) -> DataQualityView:
    return build_view(
        planted["eval"], class_names=NAMES, train_source=planted["train"], evaluation=evaluation
    )


def run(check: Any, view: DataQualityView) -> list[dict[str, Any]]:
    return list(check.run(view, config=dict(check.defaults)))


def warning(result: Any, kind: str, split: str = "eval") -> dict[str, Any]:
    (found,) = [
        entry
        for entry in result.sections["data_quality"]["warnings"]
        if entry["type"] == kind and entry["split"] == split
    ]
    return found


# -------------------------------------------------------------------------------------------
# The whole step
# -------------------------------------------------------------------------------------------


def test_the_step_runs_on_multi_hot_labels(planted: dict[str, Any], tmp_path: Path) -> None:
    result = run_data_quality(
        host=load_plugins(),
        data=eval_data(planted),
        evaluation=None,
        options=DataQualityOptions(),
        artifacts_dir=tmp_path / "artifacts",
    )
    scope = result.scope
    assert scope["status"] == "ok" and scope["errors"] == []
    assert {"duplicates", "class_balance"} <= set(scope["checks"])
    assert "label_errors" in scope["skipped"]  # no evaluation given
    assert sorted(warning(result, "exact_duplicates")["indices"]) == [0, 1, 10, 11]
    assert sorted(warning(result, "label_conflicts")["indices"]) == [0, 2, 10]
    leak = warning(result, "leakage")
    assert leak["indices"] == [2] and leak["sample_ids"] == ["multi:val:2"]
    assert leak["details"][0]["train_sample_ids"] == ["multi:train:5"]

    groups = {
        tuple(zip(g["splits"], g["indices"], strict=True)): g
        for g in result.sections["data_quality"]["duplicate_groups"]
    }
    pairs = [(("eval", 0), ("eval", 10)), (("eval", 1), ("eval", 11)), (("eval", 2), ("train", 5))]
    assert set(groups) == set(pairs)
    conflict = groups[(("eval", 0), ("eval", 10))]
    assert conflict["labels"] == ["cat;dog", "sun"] and conflict["label_conflict"] is True
    same = groups[(("eval", 1), ("eval", 11))]
    assert same["labels"] == ["sun", "sun"] and same["label_conflict"] is False
    leaked = groups[(("eval", 2), ("train", 5))]
    assert leaked["labels"] == ["cat", "cat;dog"] and leaked["label_conflict"] is True
    assert leaked["sample_ids"] == ["multi:val:2", "multi:train:5"]
    thumbnails = [f"artifacts/data_quality/eval_{index}.png" for index in (0, 10)]
    assert conflict["thumbnail_paths"] == thumbnails
    assert (tmp_path / "artifacts" / "data_quality" / "eval_0.png").is_file()

    clashes = {
        p["metadata"]["split"]: p
        for p in result.patterns
        if p["pattern_type"] == "duplicate_label_conflict"
    }
    assert all(p["metadata"]["label_sets"] for p in clashes.values())
    # In the training split the only conflict is cat against cat;dog: they disagree on dog.
    assert (clashes["train"]["class_a"], clashes["train"]["class_b"]) == ("1", "")


def test_an_empty_label_set_is_a_label_set_like_any_other(planted: dict[str, Any]) -> None:
    raw = planted["eval"]
    labels = raw.labels.copy()
    labels[1] = 0
    labels[11] = 0  # the copy of 1: both without labels, no conflict
    view = build_view(source(raw.arrays, labels, "val"), class_names=NAMES)
    found = run(DuplicatesCheck(), view)
    groups = [g for issue in found for g in issue.get("groups", ())]
    same = next(g for g in groups if g["indices"] == [1, 11])
    assert same["labels"] == ["(none)", "(none)"] and not same["label_conflict"]


# -------------------------------------------------------------------------------------------
# class_balance
# -------------------------------------------------------------------------------------------


def test_class_balance_counts_positive_images_per_label(planted: dict[str, Any]) -> None:
    found = run(ClassBalanceCheck(), view_of(planted))
    issue = next(issue for issue in found if issue["split"] == "eval")
    counts = planted["eval"].labels.sum(axis=0)
    assert [d["class_name"] for d in issue["details"]] == ["car"]
    assert issue["details"][0]["count"] == counts[3] == 2
    assert issue["details"][0]["per_label"] is True
    assert "per label" in issue["message"] and "most frequent label" in issue["message"]
    assert issue["summary"]["imbalance_ratio"] == pytest.approx(2 / counts.max())
    pattern = check_pattern(issue["pattern"])
    assert pattern["title"] == "Strong label imbalance" and pattern["metadata"]["per_label"]


# -------------------------------------------------------------------------------------------
# label_errors: confident learning per label
# -------------------------------------------------------------------------------------------


def multilabel_evaluation(targets: np.ndarray, flips: dict[tuple[int, int], float]) -> Evaluation:
    """Sigmoid outputs confident on the targets (0.8-0.97 for a present label, 0.03-0.2 for an
    absent one), except ``flips``: (row, label) -> the probability given instead."""
    rng = np.random.default_rng(3)
    sure = rng.uniform(0.8, 0.97, targets.shape)
    probabilities = np.where(targets > 0, sure, 1 - sure)
    for (row, label), value in flips.items():
        probabilities[row, label] = value
    return Evaluation(
        task="multilabel",
        class_names=NAMES,
        probabilities=probabilities,
        targets=targets,
        predictions=(probabilities >= 0.5).astype(np.int64),
        per_sample_loss=np.zeros(len(targets)),
    )


def test_label_errors_flag_labels_the_model_confidently_disputes(planted: dict[str, Any]) -> None:
    targets = planted["eval"].labels
    present = [(row, int(np.flatnonzero(targets[row])[0])) for row in (3, 17, 25)]
    absent = [(40, int(np.flatnonzero(targets[40] == 0)[0]))]
    flips = {present[0]: 0.01, present[1]: 0.05, present[2]: 0.03, absent[0]: 0.98}
    view = view_of(planted, multilabel_evaluation(targets, flips))
    (issue,) = run(LabelErrorsCheck(), view)
    assert issue["indices"] == [3, 40, 25, 17]  # lowest probability of the given value first
    first = issue["details"][0]
    label = NAMES[present[0][1]]
    assert first["labels"] == [label] and first["given_probability"] == 0.01
    assert label in first["given"].split(";") and label not in first["suggested"].split(";")
    added = issue["details"][1]
    assert NAMES[absent[0][1]] in added["suggested"].split(";")
    thresholds = issue["thresholds"]["label_thresholds"]
    assert set(thresholds) == set(NAMES)
    assert thresholds["car"] == {"present": None, "absent": None}  # 2 images: not checked
    assert check_pattern(issue["pattern"])["metadata"]["per_label"] is True


def test_label_errors_find_nothing_on_a_model_that_agrees(planted: dict[str, Any]) -> None:
    view = view_of(planted, multilabel_evaluation(planted["eval"].labels, {}))
    assert run(LabelErrorsCheck(), view) == []


def test_label_errors_skip_when_no_label_can_be_checked(planted: dict[str, Any]) -> None:
    targets = np.ones_like(planted["eval"].labels)  # every label on every image
    raw = planted["eval"]
    view = build_view(
        source(raw.arrays, targets, "val"),
        class_names=NAMES,
        evaluation=multilabel_evaluation(targets, {}),
    )
    with pytest.raises(CheckSkipped, match="multi-label"):
        run(LabelErrorsCheck(), view)


# -------------------------------------------------------------------------------------------
# Labels of the wrong shape
# -------------------------------------------------------------------------------------------


def test_labels_of_the_wrong_shape_are_rejected(planted: dict[str, Any]) -> None:
    raw = planted["eval"]
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        build_view(source(raw.arrays, raw.labels[:, :3], "val"), class_names=NAMES)
    single = source(planted["train"].arrays, np.zeros(40, dtype=np.int64), "train")
    with pytest.raises(ValueError, match="different label kinds"):
        build_view(raw, class_names=NAMES, train_source=single)
