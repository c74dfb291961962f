"""The multi-label failure detectors (plugin ``failures``): where each fires and where it must not.

Most evaluations carry hand-written report sections, so the detectors are tested without the
multilabel plugin; the last tests feed them the real sections of ``bnnr_multilabel`` as well.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import bnnr_failures
import numpy as np
import pytest
from bnnr_failures import multilabel
from bnnr_failures.detectors import DETECTORS as CLASSIFICATION_DETECTORS
from bnnr_failures.multilabel import DETECTORS, fisher_greater
from scipy import stats

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

NAMES = ("person", "dog", "car", "tree", "sky", "boat")
ALLOWED_KEYS = {*PATTERN_KEYS, "recommendation", "legacy"}


# -------------------------------------------------------------------------------------------
# Hand-built evaluations
# -------------------------------------------------------------------------------------------


def _diagnostics(
    counts: list[tuple[int, int, int]], n: int, *, auroc: float | None = 0.9
) -> list[dict[str, Any]]:
    """class_diagnostics rows from per-label (tp, fp, fn)."""
    rows = []
    for i, (tp, fp, fn) in enumerate(counts):
        recall = tp / (tp + fn) if tp + fn else 0.0
        precision = tp / (tp + fp) if tp + fp else 0.0
        rows.append(
            {
                "class_id": str(i),
                "class_name": NAMES[i],
                "accuracy": (n - fp - fn) / n,
                "precision": precision,
                "recall": recall,
                "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
                "support": tp + fn,
                "pred_count": tp + fp,
                "cohen_kappa": None,
                "average_precision": None,
                "auroc": auroc,
                "threshold": 0.5,
                "severity": "ok",
                "rank": i + 1,
            }
        )
    return rows


def _evaluation(
    counts: list[tuple[int, int, int]] | None = None,
    *,
    n: int = 200,
    task: str = "multilabel",
    drop: tuple[str, ...] = (),
    auroc: float | None = 0.9,
    **sections: Any,
) -> Evaluation:
    """A multi-label evaluation with healthy defaults for every section a detector reads."""
    counts = counts or [(40, 4, 5), (30, 5, 4), (50, 3, 3), (20, 3, 2)]
    c = len(counts)
    f1 = [2 * tp / (2 * tp + fp + fn) for tp, fp, fn in counts]
    built: dict[str, Any] = {
        "metrics": {
            "f1_macro": float(np.mean(f1)),
            "f1_micro": 0.88,
            "f1_samples": 0.86,
            "subset_accuracy": 0.7,
            "mean_average_precision": 0.9,
        },
        "confusion": {
            "type": "multilabel_per_label",
            "labels": list(range(c)),
            "class_names": list(NAMES[:c]),
            "per_label": [
                {"tp": tp, "fp": fp, "fn": fn, "tn": n - tp - fp - fn} for tp, fp, fn in counts
            ],
            "n_samples": n,
            "excluded_nonfinite": 0,
        },
        "class_diagnostics": _diagnostics(counts, n, auroc=auroc),
        "thresholds": {
            "mode": "fixed",
            "default": 0.5,
            "per_label": {str(i): 0.5 for i in range(c)},
            "suggested": {str(i): 0.5 for i in range(c)},
        },
        "cooccurrence_errors": {"pairs": []},
        "distribution_summary": {
            "true_total": sum(tp + fn for tp, _, fn in counts),
            "pred_total": sum(tp + fp for tp, fp, _ in counts),
            "possible_collapse": False,
            "collapse_class": None,
            "collapse_share": None,
            "collapse_true_share": None,
            "rule": "the rule",
        },
        "calibration_summary": {
            "type": "per_label",
            "n_bins": 15,
            "n_samples": n,
            "ece_mean": 0.03,
            "per_label": {
                str(i): {"ece": 0.03, "mce": 0.1, "brier": 0.05, "direction": "calibrated"}
                for i in range(c)
            },
        },
    }
    built.update(sections)
    for key in drop:
        del built[key]
    return Evaluation(
        task=task,
        class_names=NAMES[:c],
        probabilities=np.full((n, c), 0.5),
        targets=np.zeros((n, c), dtype=np.int64),
        predictions=np.zeros((n, c), dtype=np.int64),
        per_sample_loss=np.zeros(n),
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
        assert pattern["recommendation"]["expected_impact"].startswith(
            "Literature context (not verified on this run): "
        )
        json.dumps(pattern, allow_nan=False)
    return patterns


# -------------------------------------------------------------------------------------------
# Every detector
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DETECTORS))
def test_a_healthy_model_triggers_no_detector(name: str) -> None:
    assert _detect(name, _evaluation()) == []


@pytest.mark.parametrize("name", list(DETECTORS))
def test_other_tasks_and_missing_sections_give_no_pattern(name: str) -> None:
    broken = [(0, 0, 30), (0, 90, 30), (2, 0, 1), (1, 40, 2)]
    bad: dict[str, Any] = {
        "metrics": {"f1_macro": 0.01},
        "cooccurrence_errors": {"pairs": [_pair("0", "1", 30, 40, (10, 100))]},
        "distribution_summary": {"possible_collapse": True, "pred_total": 130},
        "calibration_summary": {"n_samples": 500, "ece_mean": 0.4},
    }
    assert _detect(name, _evaluation(broken, task="classification", **bad)) == []
    everything = (
        "metrics",
        "confusion",
        "class_diagnostics",
        "thresholds",
        "cooccurrence_errors",
        "distribution_summary",
        "calibration_summary",
    )
    assert _detect(name, _evaluation(broken, drop=everything)) == []


def test_single_label_detectors_ignore_multilabel_evaluations() -> None:
    evaluation = _evaluation([(0, 0, 30), (0, 90, 30)], metrics={"f1_macro": 0.0})
    for detector in CLASSIFICATION_DETECTORS.values():
        assert detector().detect(evaluation) == []


def test_every_detector_satisfies_the_protocol() -> None:
    for name, detector_class in DETECTORS.items():
        detector = detector_class()
        assert isinstance(detector, FailureDetector)
        assert detector.name == name
    assert not set(DETECTORS) & set(CLASSIFICATION_DETECTORS)


# -------------------------------------------------------------------------------------------
# Recall
# -------------------------------------------------------------------------------------------


def test_zero_recall_fires_with_enough_positives_and_reads_the_ranking() -> None:
    evaluation = _evaluation([(40, 4, 5), (0, 0, 5), (0, 0, 4)], auroc=0.92)
    (pattern,) = _detect("multilabel_zero_recall", evaluation)
    assert pattern["class_a"] == "1" and pattern["severity"] == "critical"
    assert pattern["count"] == 5 and pattern["confidence"] == "medium"
    assert "threshold" in pattern["interpretation"] and "AUROC 0.92" in pattern["interpretation"]
    assert pattern["metadata"]["min_support"] == 5
    unlearned = _evaluation([(40, 4, 5), (0, 0, 25)], auroc=0.5)
    (pattern,) = _detect("multilabel_zero_recall", unlearned)
    assert "not learned" in pattern["interpretation"] and pattern["confidence"] == "high"
    assert _detect("multilabel_near_zero_recall", unlearned) == []


def test_near_zero_recall_fires_below_a_fifth_and_not_above() -> None:
    evaluation = _evaluation([(1, 0, 9), (2, 0, 8), (3, 1, 17)], auroc=None)
    patterns = _detect("multilabel_near_zero_recall", evaluation)
    assert [p["class_a"] for p in patterns] == ["0", "2"]  # recall 0.1 and 0.15, not 0.2
    assert all(p["severity"] == "high" for p in patterns)
    assert _detect("multilabel_zero_recall", evaluation) == []


# -------------------------------------------------------------------------------------------
# Macro F1
# -------------------------------------------------------------------------------------------


def test_low_macro_f1_is_critical_and_compares_with_predicting_everything() -> None:
    counts = [(5, 40, 35), (4, 30, 36), (3, 20, 30)]
    evaluation = _evaluation(counts, n=100)
    (pattern,) = _detect("low_multilabel_f1_macro", evaluation)
    assert pattern["severity"] == "critical" and pattern["confidence"] == "high"
    prevalences = [0.4, 0.4, 0.33]
    baseline = float(np.mean([2 * q / (1 + q) for q in prevalences]))
    assert pattern["metadata"]["all_positive_baseline_f1_macro"] == pytest.approx(baseline)
    assert "no better than predicting every label" in pattern["interpretation"]
    assert pattern["count"] == sum(fp + fn for _, fp, fn in counts)
    assert pattern["metadata"]["threshold"] == 0.35
    at_threshold = _evaluation(counts, n=100, metrics={"f1_macro": 0.35})
    assert _detect("low_multilabel_f1_macro", at_threshold) == []
    above_baseline = _evaluation([(10, 10, 60), (8, 10, 60)], n=1000)
    (pattern,) = _detect("low_multilabel_f1_macro", above_baseline)
    assert "not usable" in pattern["interpretation"]


# -------------------------------------------------------------------------------------------
# Threshold advice
# -------------------------------------------------------------------------------------------


def test_false_positive_bias_needs_count_and_ratio_and_suggests_a_higher_threshold() -> None:
    counts = [(40, 6, 2), (40, 5, 2), (40, 4, 0), (40, 30, 5)]
    suggested = {"0": 0.7, "1": 0.6, "2": 0.5, "3": 0.3}
    thresholds = {"mode": "fixed", "suggested": suggested}
    evaluation = _evaluation(counts, thresholds=thresholds)
    patterns = _detect("multilabel_fp_bias", evaluation)
    assert [p["class_a"] for p in patterns] == ["0", "3"]  # 6 >= 3·2; 5 < 6; 4 < 5
    first, second = patterns
    assert first["metadata"]["suggested_threshold"] == 0.7
    assert "from 0.50 to 0.70" in first["description"]
    assert first["severity"] == "medium" and first["count"] == 6
    # The F1-optimal threshold of label 3 is lower: no contradictory suggestion.
    assert "suggested_threshold" not in second["metadata"]
    assert "consider raising" in second["description"] and second["confidence"] == "high"
    assert _detect("multilabel_fn_bias", evaluation) == []


def test_false_negative_bias_mirrors_it() -> None:
    counts = [(40, 2, 6), (40, 0, 5), (40, 0, 4), (40, 2, 5)]
    thresholds = {"suggested": {"0": 0.2, "1": None, "2": 0.1, "3": 0.3}}
    patterns = _detect("multilabel_fn_bias", _evaluation(counts, thresholds=thresholds))
    assert [p["class_a"] for p in patterns] == ["0", "1"]  # 6 >= 6, 5 >= 3·max(0, 1)
    assert patterns[0]["metadata"]["suggested_threshold"] == 0.2
    assert "lowering its threshold from 0.50 to 0.20" in patterns[0]["description"]
    assert "suggested_threshold" not in patterns[1]["metadata"]  # tuning not informative
    assert patterns[0]["recommendation"]["priority"] == 3
    assert _detect("multilabel_fp_bias", _evaluation(counts, thresholds=thresholds)) == []


# -------------------------------------------------------------------------------------------
# Rare labels
# -------------------------------------------------------------------------------------------


def test_rare_label_with_low_recall_is_flagged() -> None:
    counts = [(95, 5, 5), (90, 5, 10), (1, 0, 2), (3, 0, 0), (80, 5, 20)]
    patterns = _detect("multilabel_rare_label", _evaluation(counts, n=400))
    # 306 positives: rare means <= max(3, 3.06) positives; label 3 is rare but recognised.
    assert [p["class_a"] for p in patterns] == ["2"]
    assert patterns[0]["metadata"]["max_rare_support"] == pytest.approx(3.06)
    assert patterns[0]["confidence"] == "low"
    frequent = [(95, 5, 5), (10, 0, 20), (80, 5, 20)]
    assert _detect("multilabel_rare_label", _evaluation(frequent, n=400)) == []


# -------------------------------------------------------------------------------------------
# Co-occurrence shortcuts
# -------------------------------------------------------------------------------------------


def _pair(a: str, b: str, count: int, co_present: int, base: tuple[int, int]) -> dict[str, Any]:
    """A cooccurrence_errors pair; ``base`` = (false positives of b without a, samples)."""
    conditional = count / co_present
    rate = base[0] / base[1] if base[1] else None
    return {
        "present_label": a,
        "predicted_label": b,
        "count": count,
        "co_present": co_present,
        "conditional_rate": conditional,
        "base_count": base[0],
        "base_total": base[1],
        "base_rate": rate,
        "lift": conditional / rate if rate else None,
        "excess": count - rate * co_present if rate is not None else count,
    }


def test_fisher_test_matches_scipy() -> None:
    tables = [(5, 5, 15, 85), (1, 0, 0, 1), (30, 10, 2, 200), (0, 5, 3, 4), (3, 0, 0, 0)]
    for table in tables:
        expected = stats.fisher_exact([table[:2], table[2:]], alternative="greater").pvalue
        assert fisher_greater(table) == pytest.approx(expected, rel=1e-9, abs=1e-300)
    assert fisher_greater((400, 600, 100, 4000)) == pytest.approx(
        stats.hypergeom.sf(399, 5100, 500, 1000), rel=1e-6
    )
    with pytest.raises(ValueError, match="counts"):
        fisher_greater((1, -1, 0, 0))


def test_cooccurrence_shortcut_needs_lift_count_and_significance() -> None:
    pairs = [
        _pair("0", "1", 30, 40, (10, 100)),  # 75 % vs 10 %: a shortcut
        _pair("2", "3", 4, 5, (1, 100)),  # count below 5
        _pair("1", "2", 20, 100, (7, 100)),  # lift 2.86 < 3
        _pair("3", "0", 5, 10, (3, 20)),  # lift 3.3 but chance-level over 12 pairs
        _pair("1", "3", 8, 8, (0, 0)),  # nothing to compare with
    ]
    evaluation = _evaluation(cooccurrence_errors={"pairs": pairs})
    (pattern,) = _detect("multilabel_cooccurrence_shortcut", evaluation)
    assert (pattern["class_a"], pattern["class_b"]) == ("0", "1")
    assert pattern["count"] == 30 and pattern["confidence"] == "high"
    assert pattern["metadata"]["pairs_tested"] == 12
    assert pattern["metadata"]["p_value"] < 0.01 / 12
    assert '"dog" whenever it sees "person"' in pattern["interpretation"]
    assert "lift[person→dog]=7.50" in pattern["evidence"]
    assert "7.5x as often" in pattern["description"]


def test_a_shortcut_without_any_other_false_positive_has_unbounded_lift() -> None:
    pairs = [_pair("2", "0", 12, 15, (0, 150)), _pair("3", "0", 4, 15, (0, 150))]
    (pattern,) = _detect(
        "multilabel_cooccurrence_shortcut", _evaluation(cooccurrence_errors={"pairs": pairs})
    )
    assert pattern["class_a"] == "2" and "lift" not in pattern["metadata"]
    assert "lift[car→person]=inf" in pattern["evidence"]
    assert "and never on the 150 images without car" in pattern["description"]


def test_cooccurrence_patterns_are_capped() -> None:
    pairs = [_pair(str(a), str(b), 30, 40, (5, 100)) for a in range(6) for b in range(6) if a != b]
    counts = [(40, 4, 5)] * 6
    evaluation = _evaluation(counts, cooccurrence_errors={"pairs": pairs})
    assert len(_detect("multilabel_cooccurrence_shortcut", evaluation)) == 8


# -------------------------------------------------------------------------------------------
# Prediction imbalance and calibration
# -------------------------------------------------------------------------------------------


def test_prediction_imbalance_follows_the_flag_and_speaks_of_predicted_positives() -> None:
    summary = {
        "true_total": 100,
        "pred_total": 150,
        "possible_collapse": True,
        "collapse_class": "2",
        "collapse_share": 0.8,
        "collapse_true_share": 0.25,
        "rule": "the rule",
    }
    (pattern,) = _detect(
        "multilabel_prediction_imbalance", _evaluation(distribution_summary=summary)
    )
    assert pattern["class_a"] == "2" and pattern["severity"] == "high"
    assert pattern["count"] == 120 and pattern["confidence"] == "high"
    assert "80.0% of the 150 predicted positives" in pattern["description"]
    assert "slot" not in pattern["description"]
    assert "rule=the rule" in pattern["evidence"]
    few = {**summary, "pred_total": 9}
    assert _detect("multilabel_prediction_imbalance", _evaluation(distribution_summary=few)) == []


@pytest.mark.parametrize(
    ("ece", "samples", "severity"),
    [(0.09, 500, None), (0.1, 500, "medium"), (0.25, 500, "high"), (0.3, 99, None)],
)
def test_poor_label_calibration(ece: float, samples: int, severity: str | None) -> None:
    per_label = {
        "0": {"ece": 0.05, "direction": "calibrated"},
        "1": {"ece": ece + 0.1, "direction": "overconfident"},
        "2": {"ece": ece + 0.05, "direction": "overconfident"},
        "3": {"ece": 0.12, "direction": "underconfident"},
    }
    summary = {"n_samples": samples, "ece_mean": ece, "per_label": per_label}
    patterns = _detect("multilabel_poor_calibration", _evaluation(calibration_summary=summary))
    assert [p["severity"] for p in patterns] == ([severity] if severity else [])
    if patterns:
        evidence = patterns[0]["evidence"]
        assert evidence[2].startswith("ece[dog]=") and evidence[3].startswith("ece[car]=")
        assert "mostly overconfident" in patterns[0]["description"]
        assert patterns[0]["metadata"]["poor_labels"] == 3


# -------------------------------------------------------------------------------------------
# Findings, recommendations, summary
# -------------------------------------------------------------------------------------------


def test_detector_output_becomes_findings_recommendations_and_a_summary() -> None:
    counts = [(0, 0, 30), (10, 60, 5), (12, 3, 15), (1, 0, 2)]
    evaluation = _evaluation(
        counts,
        n=300,
        auroc=0.55,
        cooccurrence_errors={"pairs": [_pair("2", "1", 25, 30, (15, 100))]},
        calibration_summary={"n_samples": 300, "ece_mean": 0.15, "per_label": {}},
    )
    patterns = [p for name in DETECTORS for p in _detect(name, evaluation)]
    types = {p["pattern_type"] for p in patterns}
    assert types == {
        "multilabel_zero_recall",
        "low_multilabel_f1_macro",
        "multilabel_cooccurrence_shortcut",
        "multilabel_fp_bias",
        "multilabel_fn_bias",
        "multilabel_poor_calibration",
        "multilabel_rare_label",
    }
    result = build_findings(patterns, class_names=evaluation.class_names)
    assert result.findings[0]["severity"] == "critical"
    structured, legacy = build_recommendations(result.findings, patterns)
    assert structured[0]["priority"] == 1 and legacy
    summary = executive_summary(
        metrics=evaluation.sections["metrics"],
        headline_metric="f1_macro",
        findings=result.findings,
        recommendations=structured,
        class_diagnostics=evaluation.sections["class_diagnostics"],
        sections_run={"predictions": True, "xai": True, "data_quality": True},
    )
    assert summary["health_status"] == "critical"
    json.dumps([result.findings, structured, summary], allow_nan=False)


# -------------------------------------------------------------------------------------------
# With the real multi-label report sections
# -------------------------------------------------------------------------------------------


def _real_evaluation(probs: np.ndarray, targets: np.ndarray) -> Evaluation:
    report = pytest.importorskip("bnnr_multilabel.report")
    n, c = probs.shape
    sections = report.multilabel_sections(
        probs, targets, np.zeros(n), class_names=list(NAMES[:c]), n_bootstrap=10
    )
    return Evaluation(
        task="multilabel",
        class_names=NAMES[:c],
        probabilities=probs,
        targets=targets,
        predictions=(probs >= 0.5).astype(np.int64),
        per_sample_loss=np.zeros(n),
        sections=json.loads(json.dumps(sections, allow_nan=False)),
    )


@pytest.mark.parametrize("seed", range(3))
def test_a_good_calibrated_model_on_real_sections_triggers_nothing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 4.0, size=(600, 5))
    probs = 1 / (1 + np.exp(-logits))
    targets = (rng.random((600, 5)) < probs).astype(np.int64)  # calibrated by construction
    evaluation = _real_evaluation(probs, targets)
    assert {name: _detect(name, evaluation) for name in DETECTORS} == {
        name: [] for name in DETECTORS
    }


def test_planted_failures_on_real_sections() -> None:
    rng = np.random.default_rng(1)
    n = 600
    targets = (rng.random((n, 5)) < [0.4, 0.3, 0.3, 0.3, 0.01]).astype(np.int64)
    logits = rng.normal(0.0, 1.0, size=(n, 5)) + 5.0 * (targets - 0.5)
    logits[:, 1] -= 4.0  # label 1 rarely predicted: false negatives
    logits[targets[:, 0] == 1, 2] = 3.0  # label 2 predicted whenever label 0 is present
    probs = 1 / (1 + np.exp(-logits))
    evaluation = _real_evaluation(probs, targets)
    shortcut = _detect("multilabel_cooccurrence_shortcut", evaluation)
    assert [(p["class_a"], p["class_b"]) for p in shortcut][:1] == [("0", "2")]
    assert [p["class_a"] for p in _detect("multilabel_fn_bias", evaluation)] == ["1"]
    assert "2" in [p["class_a"] for p in _detect("multilabel_fp_bias", evaluation)]
    fn = _detect("multilabel_fn_bias", evaluation)[0]
    assert fn["metadata"]["suggested_threshold"] < 0.5


# -------------------------------------------------------------------------------------------
# The plugin
# -------------------------------------------------------------------------------------------


def test_multilabel_detectors_load_through_the_real_entry_point() -> None:
    host = load_plugins(environ={})
    record = host.record("failures")
    assert record.status == "ok", record.error
    assert set(record.provides["failure_detector"]) == set(bnnr_failures.DETECTORS)
    assert set(bnnr_failures.MULTILABEL_DETECTORS) == set(DETECTORS)
    assert set(bnnr_failures.CLASSIFICATION_DETECTORS) == set(CLASSIFICATION_DETECTORS)
    for name in DETECTORS:
        component = host.component("failure_detector", name)
        assert component.plugin == "failures" and component.description
        detector = component.create()
        assert isinstance(detector, DETECTORS[name]) and detector.name == name
    assert isinstance(
        host.component("failure_detector", "confused_pair").create(),
        CLASSIFICATION_DETECTORS["confused_pair"],
    )


def test_importing_the_multilabel_detectors_does_not_import_numpy() -> None:
    code = (
        "import sys\n"
        "import bnnr_failures.multilabel\n"
        "heavy = [name for name in ('torch', 'numpy') if name in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert completed.returncode == 0, completed.stderr


def test_thresholds_are_module_constants() -> None:
    assert multilabel.LOW_F1_MACRO == 0.35
    assert (multilabel.BIAS_MIN_ERRORS, multilabel.BIAS_RATIO) == (5, 3)
    assert (multilabel.COOCCURRENCE_MIN_LIFT, multilabel.COOCCURRENCE_MIN_COUNT) == (3.0, 5)
    assert multilabel.ECE_MEDIUM == 0.1
