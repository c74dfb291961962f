"""The built-in failure detectors (plugin ``failures``): where each fires and where it must not.

Evaluations are built by hand from small confusion matrices; the report sections are computed
here with plain numpy, not by the classification plugin, so these tests depend on no other plugin.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import bnnr_failures
import numpy as np
import pytest
from bnnr_failures import detectors
from bnnr_failures.detectors import DETECTORS

from bnnr_core.analysis.evaluation import Evaluation
from bnnr_core.analysis.findings import (
    PATTERN_KEYS,
    build_findings,
    build_recommendations,
    check_pattern,
)
from bnnr_core.analysis.summary import executive_summary
from bnnr_core.plugins import load_plugins
from bnnr_core.protocols import FailureDetector

NAMES = ("cat", "dog", "bird", "fish", "frog")
ALLOWED_KEYS = {*PATTERN_KEYS, "recommendation", "legacy"}


# -------------------------------------------------------------------------------------------
# Hand-built evaluations
# -------------------------------------------------------------------------------------------


def _samples(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Targets and predictions with exactly the counts of ``matrix`` (rows true)."""
    targets, predictions = [], []
    for (true, predicted), count in np.ndenumerate(matrix):
        targets += [true] * int(count)
        predictions += [predicted] * int(count)
    return np.asarray(targets, dtype=np.int64), np.asarray(predictions, dtype=np.int64)


def _diagnostics(matrix: np.ndarray, names: tuple[str, ...]) -> list[dict[str, Any]]:
    support, predicted, tp = matrix.sum(axis=1), matrix.sum(axis=0), np.diag(matrix)
    rows = []
    for i in range(matrix.shape[0]):
        recall = tp[i] / support[i] if support[i] else 0.0
        precision = tp[i] / predicted[i] if predicted[i] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        severity = "critical" if support[i] and recall == 0 else "ok"
        rows.append(
            {
                "class_id": str(i),
                "class_name": names[i],
                "accuracy": float(recall),
                "precision": float(precision),
                "recall": float(recall),
                "f1": float(f1),
                "support": int(support[i]),
                "pred_count": int(predicted[i]),
                "cohen_kappa": None,
                "severity": severity,
                "rank": i + 1,
            }
        )
    return rows


def _distribution(matrix: np.ndarray, collapse: int | None = None) -> dict[str, Any]:
    true, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    over = [
        {
            "class": str(i),
            "class_name": NAMES[i],
            "true": int(true[i]),
            "pred": int(predicted[i]),
            "ratio": round(predicted[i] / true[i], 2) if true[i] else None,
        }
        for i in range(matrix.shape[0])
        if (true[i] and 5 * predicted[i] >= 6 * true[i]) or (not true[i] and predicted[i])
    ]
    total = int(true.sum())
    return {
        "true_total": total,
        "pred_total": int(predicted.sum()),
        "over_predicted": over,
        "under_predicted": [],
        "possible_collapse": collapse is not None,
        "collapse_class": None if collapse is None else str(collapse),
        "collapse_share": None if collapse is None else float(predicted[collapse] / total),
        "rule": "test rule",
    }


def _evaluation(
    matrix: list[list[int]],
    *,
    task: str = "classification",
    error_confidence: float = 0.6,
    drop: tuple[str, ...] = (),
    **sections: Any,
) -> Evaluation:
    """An evaluation whose every section matches ``matrix``; ``sections`` override them."""
    counts = np.asarray(matrix, dtype=np.int64)
    names = NAMES[: counts.shape[0]]
    targets, predictions = _samples(counts)
    n, c = targets.size, counts.shape[0]
    probabilities = np.full((n, c), 0.0)
    confidence = np.where(predictions == targets, 0.8, error_confidence)
    probabilities[:] = ((1 - confidence) / (c - 1))[:, None]
    probabilities[np.arange(n), predictions] = confidence
    recalls = np.diag(counts) / np.maximum(counts.sum(axis=1), 1)
    accuracy = float(np.trace(counts) / n)
    errors = np.flatnonzero(predictions != targets)
    order = errors[np.argsort(-confidence[errors], kind="stable")][:20]
    built: dict[str, Any] = {
        "metrics": {"accuracy": accuracy, "balanced_accuracy": float(recalls.mean())},
        "confusion": {
            "labels": list(range(c)),
            "class_names": list(names),
            "matrix": counts.tolist(),
            "excluded_nonfinite": 0,
        },
        "class_diagnostics": _diagnostics(counts, names),
        "distribution_summary": _distribution(counts),
        "calibration_summary": {
            "ece": 0.03,
            "n_samples": n,
            "mean_confidence": 0.8,
            "accuracy": accuracy,
            "direction": "calibrated",
        },
        "confident_errors": [
            {
                "index": int(i),
                "sample_id": f"img_{i}.png",
                "true_label": int(targets[i]),
                "true_name": names[targets[i]],
                "pred_label": int(predictions[i]),
                "pred_name": names[predictions[i]],
                "confidence": float(confidence[i]),
                "loss": 1.0,
            }
            for i in order
        ],
    }
    built.update(sections)
    for key in drop:
        del built[key]
    return Evaluation(
        task=task,
        class_names=names,
        probabilities=probabilities,
        targets=targets,
        predictions=predictions,
        per_sample_loss=np.zeros(n),
        sample_ids=tuple(f"img_{i}.png" for i in range(n)),
        sections=built,
    )


def _detect(name: str, evaluation: Evaluation) -> list[dict[str, Any]]:
    patterns = [dict(pattern) for pattern in DETECTORS[name]().detect(evaluation)]
    for pattern in patterns:
        assert check_pattern(pattern)
        assert set(pattern) <= ALLOWED_KEYS and set(PATTERN_KEYS) <= set(pattern)
        assert pattern["pattern_type"] == name
        assert pattern["evidence"] and all("=" in item for item in pattern["evidence"])
        assert pattern["interpretation"].strip()
        assert pattern["section"] == "predictions"
        assert all(isinstance(value, (int, float)) for value in pattern["metadata"].values())
        assert pattern["recommendation"]["expected_impact"].startswith("Literature context")
    return patterns


HEALTHY = [[94, 3, 3], [2, 95, 3], [3, 2, 95]]


# -------------------------------------------------------------------------------------------
# Every detector
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DETECTORS))
def test_a_healthy_model_triggers_no_detector(name: str) -> None:
    assert _detect(name, _evaluation(HEALTHY)) == []


@pytest.mark.parametrize("name", list(DETECTORS))
def test_other_tasks_and_missing_sections_give_no_pattern(name: str) -> None:
    broken = [[0, 10, 0], [0, 10, 0], [0, 10, 0]]
    assert _detect(name, _evaluation(broken, task="multilabel", error_confidence=0.99)) == []
    everything = (
        "metrics",
        "confusion",
        "class_diagnostics",
        "distribution_summary",
        "calibration_summary",
        "confident_errors",
    )
    assert _detect(name, _evaluation(broken, drop=everything, error_confidence=0.99)) == []


def test_every_detector_satisfies_the_protocol() -> None:
    for name, detector_class in DETECTORS.items():
        detector = detector_class()
        assert isinstance(detector, FailureDetector)
        assert detector.name == name


# -------------------------------------------------------------------------------------------
# Recall
# -------------------------------------------------------------------------------------------


def test_zero_recall_fires_for_a_class_never_predicted_correctly() -> None:
    evaluation = _evaluation([[0, 6, 25], [0, 31, 0], [0, 5, 26]])
    (pattern,) = _detect("zero_recall_class", evaluation)
    assert pattern["severity"] == "critical"
    assert pattern["class_a"] == "0" and pattern["class_b"] == ""
    assert pattern["count"] == 31
    assert 'class "cat" (id 0)' in pattern["description"].lower()
    assert "recall[cat]=0.000" in pattern["evidence"]
    assert "most_predicted_as[cat]=bird (id 2, 25 samples)" in pattern["evidence"]
    assert pattern["confidence"] == "high"
    assert pattern["metadata"]["min_support"] == detectors.RECALL_MIN_SUPPORT
    assert _detect("near_zero_recall", evaluation) == []


def test_zero_recall_needs_enough_support() -> None:
    evaluation = _evaluation([[0, 2, 2], [0, 50, 0], [0, 0, 50]])
    assert _detect("zero_recall_class", evaluation) == []
    (pattern,) = _detect("minority_class_suppression", evaluation)
    assert pattern["class_a"] == "0"


def test_near_zero_recall_fires_below_a_fifth_and_not_above() -> None:
    (pattern,) = _detect("near_zero_recall", _evaluation([[2, 18, 0], [0, 20, 0], [0, 0, 20]]))
    assert pattern["severity"] == "high"
    assert pattern["count"] == 18
    assert pattern["class_a"] == "0"
    assert "recall 10.0%" in pattern["description"]
    assert _detect("near_zero_recall", _evaluation([[5, 15, 0], [0, 20, 0], [0, 0, 20]])) == []


# -------------------------------------------------------------------------------------------
# Confused pairs
# -------------------------------------------------------------------------------------------


def test_confused_pair_severity_follows_count_and_share() -> None:
    evaluation = _evaluation([[10, 0, 21], [0, 88, 12], [0, 6, 94]])
    patterns = _detect("confused_pair", evaluation)
    cells = [(p["class_a"], p["class_b"], p["count"], p["severity"]) for p in patterns]
    # 21/31 is high; 12/100 has the count but not the share; 6/100 is medium.
    assert cells == [("0", "2", 21, "high"), ("1", "2", 12, "medium"), ("2", "1", 6, "medium")]
    assert "for 21 of its 31 samples (67.7%; pair #1)" in patterns[0]["description"]
    assert patterns[0]["metadata"]["min_share"] == detectors.CONFUSION_MIN_SHARE
    assert "both directions" in patterns[1]["interpretation"]
    assert "rarely the reverse" in patterns[0]["interpretation"]


def test_a_single_confusion_in_a_hundred_is_not_a_pair() -> None:
    assert _detect("confused_pair", _evaluation([[99, 1, 0], [0, 100, 0], [0, 4, 96]])) == []
    # Two confusions in a class of ten pass both floors.
    (pattern,) = _detect("confused_pair", _evaluation([[8, 2, 0], [0, 100, 0], [0, 0, 100]]))
    assert pattern["count"] == 2 and pattern["confidence"] == "low"


def test_confused_pairs_are_capped_and_legacy_lists_the_top_ten_cells() -> None:
    matrix = np.full((5, 5), 5)
    np.fill_diagonal(matrix, 80)
    matrix[0, 1] = 30
    matrix[4, 3] = 1
    patterns = _detect("confused_pair", _evaluation(matrix.tolist()))
    assert len(patterns) == detectors.CONFUSION_MAX_PATTERNS
    assert (patterns[0]["class_a"], patterns[0]["class_b"]) == ("0", "1")
    legacy = patterns[0]["legacy"]
    assert len(legacy) == detectors.CONFUSION_LEGACY_CELLS
    assert legacy[0] == {"type": "confused_pair", "true_class": "0", "pred_class": "1", "count": 30}
    assert all("legacy" not in pattern for pattern in patterns[1:])


def test_legacy_cells_include_noise_below_the_pattern_floors() -> None:
    (pattern,) = _detect("confused_pair", _evaluation([[70, 30, 0], [1, 99, 0], [0, 0, 100]]))
    cells = [(entry["true_class"], entry["pred_class"]) for entry in pattern["legacy"]]
    assert cells == [("0", "1"), ("1", "0")]


# -------------------------------------------------------------------------------------------
# Global accuracy, collapse, over-prediction
# -------------------------------------------------------------------------------------------


def test_low_overall_accuracy_is_critical_and_names_chance_level() -> None:
    matrix = np.full((5, 5), 10)
    np.fill_diagonal(matrix, 45)  # recall 45/85 = 0.53
    assert _detect("low_overall_accuracy", _evaluation(matrix.tolist())) == []
    np.fill_diagonal(matrix, 30)  # recall 30/70 = 0.43: low, well above chance 0.2
    (pattern,) = _detect("low_overall_accuracy", _evaluation(matrix.tolist()))
    assert pattern["severity"] == "critical"
    assert "chance level 20.0%" in pattern["description"]
    assert "clearly above chance" in pattern["interpretation"]
    assert pattern["count"] == 5 * 40
    assert pattern["metadata"]["threshold"] == detectors.LOW_BALANCED_ACCURACY
    np.fill_diagonal(matrix, 12)  # recall 12/52 = 0.23 <= 1.5 x 0.2
    (pattern,) = _detect("low_overall_accuracy", _evaluation(matrix.tolist()))
    assert "near chance level" in pattern["interpretation"]


def test_binary_accuracy_below_chance_suggests_swapped_labels() -> None:
    (pattern,) = _detect("low_overall_accuracy", _evaluation([[20, 30], [30, 20]]))
    assert "below chance level (50.0%)" in pattern["interpretation"]
    assert "class-index mapping" in pattern["interpretation"]


def test_binary_sixty_forty_predictions_are_not_a_collapse() -> None:
    evaluation = _evaluation([[45, 5], [15, 35]])  # true 50/50, predicted 60/40
    assert _detect("class_collapse", evaluation) == []
    assert _detect("over_predicted_class", evaluation) == []


def test_class_collapse_follows_the_distribution_summary() -> None:
    matrix = np.asarray([[40, 0, 0], [35, 5, 0], [36, 0, 4]])
    evaluation = _evaluation(matrix.tolist(), distribution_summary=_distribution(matrix, 0))
    (pattern,) = _detect("class_collapse", evaluation)
    assert pattern["severity"] == "high"
    assert pattern["class_a"] == "0"
    assert 'class "cat" (id 0) for 92.5% of the 120 samples' in pattern["description"]
    assert "rule=test rule" in pattern["evidence"]
    assert pattern["metadata"]["true_share"] == pytest.approx(1 / 3)
    assert pattern["confidence"] == "high"


def test_over_predicted_class_needs_count_and_ratio() -> None:
    evaluation = _evaluation([[10, 0, 0], [12, 18, 0], [8, 0, 22]])  # cat: 30 predicted, 10 true
    (pattern,) = _detect("over_predicted_class", evaluation)
    assert (pattern["class_a"], pattern["count"], pattern["severity"]) == ("0", 20, "medium")
    assert "(3.0x)" in pattern["description"]
    assert pattern["confidence"] == "high"
    # Ratio 4 but only 8 predictions; ratio 1.5 with 15 predictions.
    assert _detect("over_predicted_class", _evaluation([[2, 0, 0], [6, 44, 0], [0, 0, 50]])) == []
    assert _detect("over_predicted_class", _evaluation([[10, 0, 0], [5, 45, 0], [0, 0, 50]])) == []


def test_a_class_predicted_but_absent_is_over_predicted() -> None:
    matrix = np.asarray([[0, 0, 0], [12, 38, 0], [0, 0, 50]])
    (pattern,) = _detect("over_predicted_class", _evaluation(matrix.tolist()))
    assert "never occurs" in pattern["description"]
    assert "ratio[cat]=n/a" in pattern["evidence"]
    assert "ratio" not in pattern["metadata"]


# -------------------------------------------------------------------------------------------
# Confidence: confidently wrong predictions and calibration
# -------------------------------------------------------------------------------------------


def test_overconfident_errors_fire_and_list_the_worst_samples() -> None:
    evaluation = _evaluation([[30, 10], [10, 30]], error_confidence=0.95)
    (pattern,) = _detect("overconfident_errors", evaluation)
    assert (pattern["severity"], pattern["count"]) == ("medium", 20)
    assert pattern["evidence"][:3] == ["confident_errors=20", "errors=20", "confident_share=1.000"]
    assert pattern["evidence"][3].startswith("worst_sample=img_")
    assert "p=0.950" in pattern["evidence"][3]
    assert pattern["metadata"]["confidence_threshold"] == detectors.OVERCONFIDENT_THRESHOLD


def test_overconfident_errors_need_enough_confident_errors() -> None:
    matrix = [[30, 10], [10, 30]]
    assert _detect("overconfident_errors", _evaluation(matrix, error_confidence=0.85)) == []
    evaluation = _evaluation(matrix, error_confidence=0.6)
    probabilities = evaluation.probabilities.copy()
    wrong = np.flatnonzero(evaluation.predictions != evaluation.targets)
    probabilities[wrong[:4], evaluation.predictions[wrong[:4]]] = 0.99  # 4 errors: too few
    few = _evaluation(matrix)
    assert _detect("overconfident_errors", _with(few, probabilities=probabilities)) == []
    probabilities[wrong[:6], evaluation.predictions[wrong[:6]]] = 0.99  # 6 of 20 = 30 %
    assert len(_detect("overconfident_errors", _with(few, probabilities=probabilities))) == 1
    large = _evaluation([[300, 20], [20, 300]])  # 6 of 40 = 15 %
    probabilities = large.probabilities.copy()
    wrong = np.flatnonzero(large.predictions != large.targets)
    probabilities[wrong[:6], large.predictions[wrong[:6]]] = 0.99
    assert _detect("overconfident_errors", _with(large, probabilities=probabilities)) == []


def test_non_finite_rows_are_not_counted_as_errors() -> None:
    evaluation = _evaluation([[30, 6], [6, 30]], error_confidence=0.95)
    predictions = evaluation.predictions.copy()
    probabilities = evaluation.probabilities.copy()
    predictions[:20] = -1  # twenty non-finite rows (true class 0, all correct before)
    probabilities[:20] = np.nan
    masked = _with(evaluation, predictions=predictions, probabilities=probabilities)
    (pattern,) = _detect("overconfident_errors", masked)
    assert "errors=12" in pattern["evidence"]


def _with(evaluation: Evaluation, **arrays: np.ndarray) -> Evaluation:
    fields = {
        "task": evaluation.task,
        "class_names": evaluation.class_names,
        "probabilities": evaluation.probabilities,
        "targets": evaluation.targets,
        "predictions": evaluation.predictions,
        "per_sample_loss": evaluation.per_sample_loss,
        "sample_ids": evaluation.sample_ids,
        "sections": evaluation.sections,
    }
    return Evaluation(**{**fields, **arrays})


def _calibration(ece: float, n: int, direction: str) -> dict[str, Any]:
    confidence = 0.9 if direction == "overconfident" else 0.6
    return {
        "ece": ece,
        "mce": 0.4,
        "brier": 0.3,
        "n_bins": 15,
        "mean_confidence": confidence,
        "accuracy": 0.75,
        "confidence_gap": confidence - 0.75,
        "direction": direction,
        "n_samples": n,
        "bins": [],
    }


@pytest.mark.parametrize(
    ("ece", "severity"), [(0.08, None), (0.1, "medium"), (0.19, "medium"), (0.2, "high")]
)
def test_poor_calibration_severity(ece: float, severity: str | None) -> None:
    evaluation = _evaluation(HEALTHY, calibration_summary=_calibration(ece, 300, "overconfident"))
    patterns = _detect("poor_calibration", evaluation)
    assert [p["severity"] for p in patterns] == ([severity] if severity else [])


def test_poor_calibration_states_its_direction_and_needs_enough_samples() -> None:
    summary = _calibration(0.15, 300, "underconfident")
    (pattern,) = _detect("poor_calibration", _evaluation(HEALTHY, calibration_summary=summary))
    assert pattern["interpretation"].startswith("The model is underconfident (mean confidence")
    assert "direction=underconfident" in pattern["evidence"]
    assert pattern["confidence"] == "medium"
    summary = _calibration(0.15, 300, "overconfident")
    (pattern,) = _detect("poor_calibration", _evaluation(HEALTHY, calibration_summary=summary))
    assert "overconfident" in pattern["interpretation"]
    summary = _calibration(0.35, 40, "overconfident")
    assert _detect("poor_calibration", _evaluation(HEALTHY, calibration_summary=summary)) == []


# -------------------------------------------------------------------------------------------
# Minority classes
# -------------------------------------------------------------------------------------------


def test_minority_class_with_low_recall_is_flagged() -> None:
    matrix = [[1, 3, 0, 0], [0, 100, 0, 0], [0, 5, 95, 0], [0, 0, 8, 92]]
    (pattern,) = _detect("minority_class_suppression", _evaluation(matrix))
    assert (pattern["class_a"], pattern["severity"], pattern["count"]) == ("0", "medium", 4)
    assert pattern["confidence"] == "low"
    assert pattern["metadata"]["max_minority_support"] == pytest.approx(0.2 * 100)


def test_rare_classes_that_are_recognised_or_not_rare_are_not_flagged() -> None:
    recognised = [[4, 0, 0, 0], [0, 100, 0, 0], [0, 5, 95, 0], [0, 0, 8, 92]]
    assert _detect("minority_class_suppression", _evaluation(recognised)) == []
    not_rare = [[10, 20, 0, 0], [0, 100, 0, 0], [0, 5, 95, 0], [0, 0, 8, 92]]
    assert _detect("minority_class_suppression", _evaluation(not_rare)) == []


# -------------------------------------------------------------------------------------------
# Through findings, recommendations and the summary
# -------------------------------------------------------------------------------------------


def test_detector_output_becomes_linked_findings_recommendations_and_a_summary() -> None:
    matrix = [[0, 6, 21, 4], [0, 26, 4, 1], [0, 5, 12, 14], [0, 1, 0, 30]]  # BNNR 0.7's run
    calibration = _calibration(0.17, 124, "overconfident")
    evaluation = _evaluation(matrix, error_confidence=0.95, calibration_summary=calibration)
    patterns = [p for name in DETECTORS for p in _detect(name, evaluation)]
    result = build_findings(patterns, class_names=evaluation.class_names)
    types = [finding["finding_type"] for finding in result.findings]
    assert types == [
        "zero_recall_class",
        "confused_pair",
        "overconfident_errors",
        "poor_calibration",
    ]
    assert result.findings[0]["class_names"] == ["cat"]
    assert result.failure_patterns[0] == {
        "type": "confused_pair",
        "true_class": "0",
        "pred_class": "2",
        "count": 21,
    }
    structured, legacy = build_recommendations(result.findings, patterns)
    assert [item["title"] for item in structured] == [
        "Fix zero-recall classes: cat",
        "Improve probability calibration",
        "Review confidently wrong samples",
        "Reduce top class confusions: cat, bird, fish, dog",
    ]
    assert len(legacy) == 4
    summary = executive_summary(
        metrics=evaluation.sections["metrics"],
        headline_metric="balanced_accuracy",
        findings=result.findings,
        recommendations=structured,
        class_diagnostics=evaluation.sections["class_diagnostics"],
        sections_run={"predictions": True, "xai": False, "data_quality": True},
    )
    assert summary["health_status"] == "critical"
    assert summary["critical_class_names"] == ["cat"]
    # P = (0 + 26/31 + 12/31 + 30/31) / 4; predictions 0.25 + 0.10 + 2 x 0.04; xai 0.10.
    performance = (26 + 12 + 30) / 31 / 4
    assert summary["health_score"] == round(performance * (1 - 0.43 - 0.10), 4)


# -------------------------------------------------------------------------------------------
# The plugin
# -------------------------------------------------------------------------------------------


def test_detectors_load_through_the_real_entry_point() -> None:
    host = load_plugins(environ={})
    record = host.record("failures")
    assert record.status == "ok", record.error
    assert record.builtin is True
    assert record.provides == {"failure_detector": tuple(bnnr_failures.DETECTORS)}
    for name in bnnr_failures.DETECTORS:
        component = host.component("failure_detector", name)
        assert component.plugin == "failures"
        assert component.description
        detector = component.create()
        assert isinstance(detector, FailureDetector) and detector.name == name


def test_registered_names_match_the_detector_classes(register_temp_plugin: Any) -> None:
    from bnnr_failures.multilabel import DETECTORS as MULTILABEL_DETECTORS

    record = register_temp_plugin(bnnr_failures, "failures_copy")
    assert set(record.provides["failure_detector"]) == set(DETECTORS) | set(MULTILABEL_DETECTORS)


def test_importing_the_plugin_does_not_import_numpy() -> None:
    code = (
        "import sys\n"
        "import bnnr_failures\n"
        "from bnnr_core.plugins import load_plugins\n"
        "record = load_plugins(autoload=False).register(bnnr_failures, 'failures')\n"
        "assert record.status == 'ok' and record.provides, record\n"
        "heavy = [name for name in ('torch', 'numpy') if name in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
