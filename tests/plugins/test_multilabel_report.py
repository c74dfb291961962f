"""Report sections of the ``multilabel`` task: every number against an independent computation
(scikit-learn, exact fractions, or a plain Python loop written here)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import warnings
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from bnnr_multilabel import report as report_module
from bnnr_multilabel.report import multilabel_sections
from bnnr_multilabel.task import MultilabelTask
from bnnr_multilabel.thresholds import DEFAULT_GRID, f1_over_grid, tune_thresholds
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from sklearn import metrics as skm

from bnnr_core.protocols import AnalysisTask

KEYS = {
    "metrics",
    "metrics_ci",
    "metrics_tuned",
    "thresholds",
    "per_class_accuracy",
    "confusion",
    "cooccurrence_errors",
    "true_distribution",
    "pred_distribution",
    "distribution_summary",
    "class_diagnostics",
    "calibration_summary",
    "cv_results",
    "confident_errors",
}
CI_NAMES = ["f1_samples", "f1_macro", "f1_micro", "subset_accuracy", "hamming_loss", "loss"]
COUNT_METRICS = [
    "f1_samples",
    "f1_macro",
    "f1_micro",
    "precision_macro",
    "precision_micro",
    "recall_macro",
    "recall_micro",
    "subset_accuracy",
    "accuracy",
    "hamming_loss",
]

# -------------------------------------------------------------------------------------------
# Data sets and independent references
# -------------------------------------------------------------------------------------------


def _sigmoid(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


def _dataset(
    seed: int,
    n: int,
    c: int,
    *,
    prevalence: float | list[float] = 0.3,
    signal: float = 1.5,
    calibrated: bool = False,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    if calibrated:  # targets drawn from the probabilities: calibrated by construction
        probs = _sigmoid(rng.normal(-1.0, 2.0, size=(n, c)))
        return probs, (rng.random((n, c)) < probs).astype(np.int64)
    targets = (rng.random((n, c)) < np.asarray(prevalence)).astype(np.int64)
    return _sigmoid(rng.normal(size=(n, c)) - 1.0 + signal * targets), targets


def _names(c: int) -> list[str]:
    return [f"label{i}" for i in range(c)]


def _sections(probs: NDArray[Any], targets: NDArray[Any], **options: Any) -> dict[str, Any]:
    n, c = probs.shape
    losses = options.pop("losses", np.linspace(0.1, 2.0, n))
    options.setdefault("n_bootstrap", 40)
    return multilabel_sections(probs, targets, losses, class_names=_names(c), **options)


DATASETS: dict[str, tuple[NDArray[Any], NDArray[np.int64]]] = {
    "random": _dataset(0, 300, 6),
    "imbalanced": _dataset(1, 400, 5, prevalence=[0.5, 0.2, 0.05, 0.02, 0.3]),
    "calibrated": _dataset(2, 300, 4, calibrated=True),
    "weak": _dataset(3, 200, 7, prevalence=0.1, signal=0.3),
    "float32": (_dataset(4, 150, 5)[0].astype(np.float32), _dataset(4, 150, 5)[1]),
    "tied": (np.round(_dataset(5, 200, 4)[0], 1), _dataset(5, 200, 4)[1]),
}


def _sk_counts(pred: NDArray[Any], truth: NDArray[Any]) -> dict[str, float]:
    """Count metrics of decided predictions from scikit-learn."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")

        def score(fn: Any, average: str) -> float:
            return float(fn(truth, pred, average=average, zero_division=0))

        result = {
            f"{prefix}_{average}": score(fn, average)
            for prefix, fn in (
                ("f1", skm.f1_score),
                ("precision", skm.precision_score),
                ("recall", skm.recall_score),
            )
            for average in ("micro", "macro")
        }
        result["f1_samples"] = score(skm.f1_score, "samples")
    result["subset_accuracy"] = result["accuracy"] = float(skm.accuracy_score(truth, pred))
    result["hamming_loss"] = float(skm.hamming_loss(truth, pred))
    return result


def _bce_rows(probs: NDArray[Any], truth: NDArray[Any]) -> NDArray[np.float64]:
    eps = np.finfo(probs.dtype).eps
    p = np.clip(probs.astype(np.float64), eps, 1 - eps)
    return np.asarray(-(truth * np.log(p) + (1 - truth) * np.log(1 - p)).mean(axis=1))


def _bin(p: float, n_bins: int = 15) -> int:
    """Bin of one probability by the documented rule, written as a plain loop."""
    for b in range(n_bins):
        if p <= (b + 1) / n_bins:
            return b
    return n_bins - 1


def _calibration_reference(
    probs: NDArray[Any], truth: NDArray[Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    probs = probs.astype(np.float64)
    n, c = probs.shape
    per_label = []
    pooled: list[list[tuple[float, int]]] = [[] for _ in range(15)]
    for label in range(c):
        bins: list[list[tuple[float, int]]] = [[] for _ in range(15)]
        for i in range(n):
            p, y = float(probs[i, label]), int(truth[i, label])
            bins[_bin(p)].append((p, y))
            pooled[_bin(p)].append((p, y))
        gaps = [
            abs(statistics.fmean(y for _, y in b) - statistics.fmean(p for p, _ in b))
            for b in bins
            if b
        ]
        ece = sum(len(b) / n * g for b, g in zip([b for b in bins if b], gaps, strict=True))
        conf = statistics.fmean(max(p, 1 - p) for p in probs[:, label])
        acc = statistics.fmean(float((probs[i, label] >= 0.5) == truth[i, label]) for i in range(n))
        gap = conf - acc
        direction = (
            "calibrated" if abs(gap) < 0.02 else ("overconfident" if gap > 0 else "underconfident")
        )
        per_label.append(
            {
                "ece": ece,
                "mce": max(gaps),
                "brier": skm.brier_score_loss(truth[:, label], probs[:, label]),
                "confidence_gap": gap,
                "direction": direction,
            }
        )
    bins_pooled = [
        {
            "lower": b / 15,
            "upper": (b + 1) / 15,
            "count": len(items),
            "mean_confidence": statistics.fmean(p for p, _ in items) if items else None,
            "accuracy": statistics.fmean(y for _, y in items) if items else None,
        }
        for b, items in enumerate(pooled)
    ]
    return per_label, bins_pooled


def _approx(actual: Any, expected: Any) -> None:
    if expected is None:
        assert actual is None
    else:
        assert actual == pytest.approx(expected, rel=1e-9, abs=1e-12)


# -------------------------------------------------------------------------------------------
# Every section against its reference
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", DATASETS)
def test_sections_match_independent_references(dataset: str) -> None:
    probs, targets = DATASETS[dataset]
    n, c = probs.shape
    sections = _sections(probs, targets)
    assert set(sections) == KEYS
    json.dumps(sections, allow_nan=False)
    pred = (probs >= 0.5).astype(np.int64)

    metrics = sections["metrics"]
    for name, value in _sk_counts(pred, targets).items():
        _approx(metrics[name], value)
    _approx(metrics["loss"], float(_bce_rows(probs, targets).mean()))
    assert metrics["nonfinite_rows"] == 0
    per_label_cal, bins_pooled = _calibration_reference(probs, targets)
    _approx(metrics["ece"], statistics.fmean(entry["ece"] for entry in per_label_cal))

    cms = skm.multilabel_confusion_matrix(targets, pred)  # (C, 2, 2): [[tn, fp], [fn, tp]]
    confusion = sections["confusion"]
    assert confusion["type"] == "multilabel_per_label"
    assert confusion["labels"] == list(range(c))
    assert confusion["class_names"] == _names(c)
    assert confusion["n_samples"] == n and confusion["excluded_nonfinite"] == 0
    assert confusion["per_label"] == [
        {"tp": int(m[1, 1]), "fp": int(m[0, 1]), "fn": int(m[1, 0]), "tn": int(m[0, 0])}
        for m in cms
    ]

    precision, recall, f1, support = skm.precision_recall_fscore_support(
        targets, pred, average=None, zero_division=0
    )
    for i in range(c):
        entry = sections["per_class_accuracy"][str(i)]
        assert entry["class_name"] == f"label{i}" and entry["support"] == support[i]
        for key, values in (("precision", precision), ("recall", recall), ("f1", f1)):
            _approx(entry[key], values[i])
    assert sections["true_distribution"] == {str(i): int(targets[:, i].sum()) for i in range(c)}
    assert sections["pred_distribution"] == {str(i): int(pred[:, i].sum()) for i in range(c)}

    diagnostics = {row["class_id"]: row for row in sections["class_diagnostics"]}
    for i in range(c):
        row = diagnostics[str(i)]
        y, yhat = targets[:, i], pred[:, i]
        _approx(row["accuracy"], skm.accuracy_score(y, yhat))
        assert row["pred_count"] == yhat.sum() and row["support"] == y.sum()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kappa = skm.cohen_kappa_score(y, yhat)
        _approx(row["cohen_kappa"], None if np.isnan(kappa) else kappa)
        _approx(
            row["average_precision"],
            skm.average_precision_score(y, probs[:, i]) if y.any() else None,
        )
        _approx(row["auroc"], skm.roc_auc_score(y, probs[:, i]) if 0 < y.sum() < n else None)
        assert row["threshold"] == 0.5

    calibration = sections["calibration_summary"]
    assert calibration["type"] == "per_label" and calibration["n_bins"] == 15
    assert calibration["n_samples"] == n
    for i, expected in enumerate(per_label_cal):
        for key, value in expected.items():
            if key == "direction":
                assert calibration["per_label"][str(i)][key] == value
            else:
                _approx(calibration["per_label"][str(i)][key], value)
    for actual, expected in zip(calibration["bins_pooled"], bins_pooled, strict=True):
        assert actual["count"] == expected["count"]
        for key in ("lower", "upper", "mean_confidence", "accuracy"):
            _approx(actual[key], expected[key])
    assert sections["cv_results"] == {}
    assert sections["metrics_tuned"] == {}


def test_cooccurrence_errors_match_a_hand_loop() -> None:
    probs, targets = _dataset(11, 300, 5, signal=0.8)
    # Plant a shortcut: label 3 is predicted whenever label 0 is present.
    probs[targets[:, 0] == 1, 3] = 0.9
    sections = _sections(probs, targets)
    pred = probs >= 0.5
    n, c = targets.shape
    expected: list[dict[str, Any]] = []
    for a in range(c):
        for b in range(c):
            if a == b:
                continue
            count = co_present = base_count = base_total = 0
            for i in range(n):
                if targets[i, b] == 1:
                    continue
                if targets[i, a] == 1:
                    co_present += 1
                    count += int(pred[i, b])
                else:
                    base_total += 1
                    base_count += int(pred[i, b])
            if count:
                conditional = count / co_present
                base = base_count / base_total if base_total else None
                expected.append(
                    {
                        "present_label": str(a),
                        "present_name": f"label{a}",
                        "predicted_label": str(b),
                        "predicted_name": f"label{b}",
                        "count": count,
                        "co_present": co_present,
                        "conditional_rate": conditional,
                        "base_count": base_count,
                        "base_total": base_total,
                        "base_rate": base,
                        "lift": conditional / base if base else None,
                        "excess": count - base * co_present if base is not None else count,
                    }
                )
    expected.sort(
        key=lambda e: (
            -e["excess"],
            -e["count"],
            int(e["present_label"]),
            int(e["predicted_label"]),
        )
    )
    section = sections["cooccurrence_errors"]
    assert section["n_pairs_with_errors"] == len(expected)
    assert section["max_pairs"] == 20 and "lift" in section["definition"]
    assert len(section["pairs"]) == min(20, len(expected))
    for actual, reference in zip(section["pairs"], expected, strict=False):
        assert actual.keys() == reference.keys()
        for key, value in reference.items():
            if isinstance(value, str):
                assert actual[key] == value
            else:
                _approx(actual[key], value)
    top = section["pairs"][0]
    assert (top["present_label"], top["predicted_label"]) == ("0", "3") and top["lift"] > 5


def test_cooccurrence_lift_is_undefined_without_a_base_rate() -> None:
    # Label 1 is falsely predicted only with label 0: base rate 0, lift unbounded (None).
    targets = np.array([[1, 0]] * 6 + [[0, 0]] * 4 + [[0, 1]] * 2)
    probs = np.where(targets == 1, 0.9, 0.1)
    probs[:6, 1] = 0.8
    pair = _sections(probs, targets)["cooccurrence_errors"]["pairs"][0]
    assert (pair["count"], pair["co_present"], pair["base_count"], pair["base_total"]) == (
        6,
        6,
        0,
        4,
    )
    assert pair["base_rate"] == 0.0 and pair["lift"] is None and pair["excess"] == 6.0


def test_bootstrap_intervals_match_a_hand_loop() -> None:
    probs, targets = _dataset(12, 60, 4)
    sections = _sections(probs, targets, n_bootstrap=100, seed=7)
    ci = sections["metrics_ci"]
    assert ci["confidence_level"] == 0.95 and ci["method"] == "percentile_bootstrap"
    assert ci["n_resamples"] == 100 and ci["seed"] == 7
    assert list(ci["intervals"]) == CI_NAMES
    rng = np.random.default_rng(7)
    indices = rng.integers(0, 60, size=(100, 60))
    pred = (probs >= 0.5).astype(np.int64)
    losses = _bce_rows(probs, targets)
    values: dict[str, list[float]] = {name: [] for name in CI_NAMES}
    for draw in indices:
        scores = _sk_counts(pred[draw], targets[draw])
        for name in CI_NAMES[:-1]:
            values[name].append(scores[name])
        values["loss"].append(float(losses[draw].mean()))
    for name in CI_NAMES:
        low, high = np.quantile(values[name], [0.025, 0.975])
        assert ci["intervals"][name]["low"] == pytest.approx(low, abs=1e-12), name
        assert ci["intervals"][name]["high"] == pytest.approx(high, abs=1e-12), name
        assert low <= high


def test_bootstrap_chunks_draw_the_documented_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_module, "_CHUNK_ELEMENTS", 100)  # 30 rows: chunks of 3
    probs, targets = _dataset(13, 30, 3)
    ci = _sections(probs, targets, n_bootstrap=10, seed=3)["metrics_ci"]["intervals"]
    rng = np.random.default_rng(3)
    draws = np.concatenate([rng.integers(0, 30, size=(size, 30)) for size in (3, 3, 3, 1)], axis=0)
    pred = probs >= 0.5
    hamming = [float((pred[d] != targets[d].astype(bool)).mean()) for d in draws]
    low, high = np.quantile(hamming, [0.025, 0.975])
    assert ci["hamming_loss"] == {"low": pytest.approx(low), "high": pytest.approx(high)}


@pytest.mark.parametrize(("seed", "folds"), [(0, 2), (1, 3), (5, 7)])
def test_cv_results_match_sklearn_per_fold(seed: int, folds: int) -> None:
    probs, targets = _dataset(20 + seed, 101, 5)
    cv = _sections(probs, targets, cv_folds=folds, seed=seed)["cv_results"]
    order = np.random.default_rng(seed).permutation(101)
    size, extra = divmod(101, folds)
    pred = (probs >= 0.5).astype(np.int64)
    assert cv["n_folds"] == folds and "No model is retrained" in cv["note"]
    start, expected = 0, []
    for k in range(folds):
        rows = order[start : start + size + (k < extra)]
        start += rows.size
        scores = _sk_counts(pred[rows], targets[rows])
        entry = cv["per_fold_metrics"][k]
        assert entry["fold"] == k and entry["support"] == rows.size
        for name in ("f1_macro", "f1_samples", "subset_accuracy", "hamming_loss"):
            _approx(entry[name], scores[name])
        expected.append(scores)
    assert start == 101
    for name in ("f1_macro", "f1_samples", "subset_accuracy", "hamming_loss"):
        column = [scores[name] for scores in expected]
        _approx(cv["global_metrics"][f"mean_{name}"], statistics.fmean(column))
        _approx(cv["global_metrics"][f"std_{name}"], statistics.pstdev(column))


# -------------------------------------------------------------------------------------------
# Thresholds
# -------------------------------------------------------------------------------------------


def _tuned_reference(probs: NDArray[Any], truth: NDArray[Any], fallback: float) -> NDArray[Any]:
    informative = f1_over_grid(probs, truth, DEFAULT_GRID).max(axis=1) > 0
    return np.where(informative, tune_thresholds(probs, truth), fallback)


def test_fixed_mode_reports_the_task_threshold_and_in_sample_suggestions() -> None:
    probs, targets = DATASETS["imbalanced"]
    targets = targets.copy()
    targets[:, 3] = 0  # no positives: no informative threshold
    thresholds = _sections(probs, targets, threshold=0.4)["thresholds"]
    assert thresholds["mode"] == "fixed" and thresholds["default"] == 0.4
    assert thresholds["per_label"] == {str(i): 0.4 for i in range(5)}
    assert thresholds["cross_fit"] is None and "suggested" in thresholds["note"]
    tuned = tune_thresholds(probs, targets)
    assert thresholds["suggested"]["3"] is None
    for i in (0, 1, 2, 4):
        assert thresholds["suggested"][str(i)] == tuned[i]

    per_label = _sections(probs, targets, threshold=[0.3, 0.4, 0.5, 0.6, 0.7])
    assert per_label["thresholds"]["default"] is None
    assert per_label["thresholds"]["per_label"]["4"] == 0.7
    assert [
        row["threshold"]
        for row in sorted(per_label["class_diagnostics"], key=lambda r: r["class_id"])
    ] == [0.3, 0.4, 0.5, 0.6, 0.7]
    expected = _sk_counts((probs >= [0.3, 0.4, 0.5, 0.6, 0.7]).astype(int), targets)
    _approx(per_label["metrics"]["f1_macro"], expected["f1_macro"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tuned_mode_cross_fits_out_of_sample(seed: int) -> None:
    probs, targets = _dataset(30 + seed, 241, 5, prevalence=[0.4, 0.2, 0.1, 0.05, 0.3])
    sections = _sections(probs, targets, tune_thresholds=True, seed=seed)
    thresholds = sections["thresholds"]
    assert thresholds["mode"] == "tuned" and thresholds["default"] == 0.5
    assert "out-of-sample" in thresholds["note"]
    whole = _tuned_reference(probs, targets, 0.5)
    assert thresholds["per_label"] == {str(i): float(t) for i, t in enumerate(whole)}

    order = np.random.default_rng(seed).permutation(241)
    halves = [order[:121], order[121:]]
    cross = thresholds["cross_fit"]
    assert cross["n_folds"] == 2 and cross["fold_sizes"] == [121, 120] and cross["seed"] == seed
    pred = np.zeros_like(targets)
    for k, half in enumerate(halves):
        fold_thresholds = _tuned_reference(probs[half], targets[half], 0.5)
        assert cross["per_label_by_fold"][k] == {
            str(i): float(t) for i, t in enumerate(fold_thresholds)
        }
        other = halves[1 - k]
        pred[other] = probs[other] >= fold_thresholds
    tuned = sections["metrics_tuned"]
    for name, value in _sk_counts(pred, targets).items():
        _approx(tuned[name], value)
    for name in ("loss", "ece", "mean_average_precision", "auroc_macro", "nonfinite_rows"):
        assert tuned[name] == sections["metrics"][name]
    # metrics stay at the task's threshold.
    _approx(
        sections["metrics"]["f1_macro"], _sk_counts((probs >= 0.5).astype(int), targets)["f1_macro"]
    )


def test_thresholds_applied_to_a_half_do_not_see_its_labels() -> None:
    probs, targets = _dataset(40, 200, 4, prevalence=0.3, signal=1.0)
    before = _sections(probs, targets, tune_thresholds=True, seed=5)
    halves = report_module.crossfit_halves(200, 5)
    relabelled = targets.copy()
    relabelled[halves[1]] = 1 - relabelled[halves[1]]  # every label of half 1 flipped
    after = _sections(probs, relabelled, tune_thresholds=True, seed=5)
    by_fold_before = before["thresholds"]["cross_fit"]["per_label_by_fold"]
    by_fold_after = after["thresholds"]["cross_fit"]["per_label_by_fold"]
    # Thresholds tuned on half 0 (applied to half 1) ignore half 1's labels entirely.
    assert by_fold_after[0] == by_fold_before[0]
    assert by_fold_after[1] != by_fold_before[1]


@pytest.mark.parametrize("seed", range(4))
def test_in_sample_tuning_is_optimistic_and_cross_fitting_is_not(seed: int) -> None:
    # Scores carry no information about the labels: any gain from tuning is overfitting.
    rng = np.random.default_rng(100 + seed)
    probs = rng.random((80, 6))
    targets = (rng.random((80, 6)) < 0.15).astype(np.int64)
    sections = _sections(probs, targets, tune_thresholds=True, seed=seed)
    per_label = np.array([sections["thresholds"]["per_label"][str(i)] for i in range(6)])
    in_sample = _sk_counts((probs >= per_label).astype(int), targets)["f1_macro"]
    cross_fitted = sections["metrics_tuned"]["f1_macro"]
    # Predicting everything gives F1 2q/(1+q) per label: the ceiling of an uninformed model.
    baseline = float(np.mean([2 * q / (1 + q) for q in targets.mean(axis=0)]))
    assert in_sample > baseline + 0.02
    assert cross_fitted < in_sample - 0.04
    assert cross_fitted < baseline


def test_tuning_with_fewer_than_two_rows() -> None:
    probs, targets = _dataset(41, 1, 3, prevalence=0.5)
    sections = _sections(probs, targets, tune_thresholds=True)
    assert sections["metrics_tuned"] == {}
    assert sections["thresholds"]["cross_fit"] is None
    json.dumps(sections, allow_nan=False)


# -------------------------------------------------------------------------------------------
# Distribution summary and collapse
# -------------------------------------------------------------------------------------------


def _counts_case(true: list[int], pred: list[int]) -> dict[str, Any]:
    """Sections of a set with exactly ``true[c]`` positives and ``pred[c]`` predictions of c."""
    n, c = max([*true, *pred, 1]), len(true)
    targets = np.zeros((n, c), dtype=np.int64)
    probs = np.full((n, c), 0.1)
    for label in range(c):
        targets[: true[label], label] = 1
        probs[n - pred[label] :, label] = 0.9
    return _sections(probs, targets)["distribution_summary"]


@pytest.mark.parametrize(
    ("true", "pred", "collapse"),
    [
        ([10, 10, 10], [30, 2, 2], "0"),  # 30/34 of predictions, true share 1/3
        ([10, 10, 10], [12, 10, 9], None),
        ([20, 20], [24, 16], None),  # binary 60/40 is not a collapse
        ([30, 2], [30, 2], None),  # a dominant label that is also dominant in truth
        ([30, 0], [30, 0], None),  # a label holding every true positive never collapses
        ([0, 0, 0], [0, 8, 0], "1"),  # no true positives: s_true = 0
        ([0, 0, 0], [0, 0, 0], None),
        ([10, 10], [0, 0], None),
    ],
)
def test_collapse_flag(true: list[int], pred: list[int], collapse: str | None) -> None:
    summary = _counts_case(true, pred)
    assert summary["possible_collapse"] is (collapse is not None)
    assert summary["collapse_class"] == collapse
    assert "predicted positives" in summary["rule"]
    if collapse is not None:
        assert summary["collapse_share"] == pred[int(collapse)] / sum(pred)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), min_size=1, max_size=5))
def test_collapse_flag_follows_the_share_rule(counts: list[tuple[int, int]]) -> None:
    true, pred = [t for t, _ in counts], [p for _, p in counts]
    summary = _counts_case(true, pred)
    true_total, pred_total = sum(true), sum(pred)
    expected = None
    for label in range(len(true)):
        if pred_total == 0 or pred[label] == 0:
            continue
        s_pred = Fraction(pred[label], pred_total)
        s_true = Fraction(true[label], true_total) if true_total else Fraction(0)
        if s_true < 1 and s_pred >= max(Fraction(1, 2), s_true + (1 - s_true) / 2):
            expected = str(label)
            break
    assert summary["collapse_class"] == expected
    assert summary["true_total"] == true_total and summary["pred_total"] == pred_total
    for entry in summary["over_predicted"]:
        t, p = entry["true"], entry["pred"]
        assert (t > 0 and Fraction(p, t) > Fraction(6, 5)) or (t == 0 and p > 0)
    for entry in summary["under_predicted"]:
        assert Fraction(entry["pred"], entry["true"]) < Fraction(4, 5)


# -------------------------------------------------------------------------------------------
# Class diagnostics, errors, non-finite rows, arguments
# -------------------------------------------------------------------------------------------


def test_class_diagnostics_severity_and_worst_first_order() -> None:
    probs, targets = DATASETS["imbalanced"]
    probs = probs.copy()
    probs[:, 3] = 0.01  # label 3 (with positives) never predicted: critical
    rows = _sections(probs, targets)["class_diagnostics"]
    assert [row["rank"] for row in rows] == list(range(1, 6))
    order = {"critical": 0, "warning": 1, "ok": 2}
    keys = [(order[row["severity"]], row["f1"], int(row["class_id"])) for row in rows]
    assert keys == sorted(keys)
    assert rows[0]["class_id"] == "3" and rows[0]["severity"] == "critical"
    for row in rows:
        warning = (row["support"] and row["recall"] < 0.5) or (
            row["pred_count"] and row["precision"] < 0.5
        )
        if row["severity"] == "ok":
            assert not warning
        elif row["severity"] == "warning":
            assert warning and not (row["support"] and row["recall"] == 0)


def test_confident_errors_are_the_highest_loss_rows_with_a_wrong_label() -> None:
    probs = np.array([[0.9, 0.1], [0.9, 0.9], [0.2, 0.8], [0.6, 0.4], [0.1, 0.1]])
    targets = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [0, 0]])
    losses = np.array([5.0, 1.0, 9.0, np.nan, 1.0])
    errors = multilabel_sections(
        probs, targets, losses, class_names=["a", "b"], sample_ids=list("vwxyz"), n_bootstrap=5
    )["confident_errors"]
    assert [e["index"] for e in errors] == [1, 3]  # rows 0, 2, 4 are right; NaN loss last
    assert errors[0] == {
        "index": 1,
        "sample_id": "w",
        "true_labels": [0],
        "true_names": ["a"],
        "pred_labels": [0, 1],
        "pred_names": ["a", "b"],
        "wrong_labels": [1],
        "loss": 1.0,
    }
    assert errors[1]["loss"] is None and errors[1]["wrong_labels"] == [0, 1]
    probs2, targets2 = DATASETS["random"]
    losses2 = np.random.default_rng(0).random(300)
    errors2 = _sections(probs2, targets2, losses=losses2)["confident_errors"]
    wrong = np.flatnonzero(((probs2 >= 0.5) != targets2).any(axis=1))
    expected = sorted(wrong, key=lambda i: (-losses2[i], i))[:20]
    assert [e["index"] for e in errors2] == expected
    assert [e["sample_id"] for e in errors2] == [str(i) for i in expected]


def test_nonfinite_rows_are_excluded_from_every_section_and_counted() -> None:
    probs, targets = DATASETS["random"]
    noisy = probs.copy()
    noisy[[3, 50, 77], [0, 2, 5]] = np.nan
    noisy[10, 1] = np.inf
    keep = np.ones(300, dtype=bool)
    keep[[3, 10, 50, 77]] = False
    losses = np.linspace(0, 1, 300)
    ids = [f"s{i}" for i in range(300)]
    full = _sections(
        noisy, targets, losses=losses, sample_ids=ids, cv_folds=3, tune_thresholds=True
    )
    clean = _sections(
        probs[keep],
        targets[keep],
        losses=losses[keep],
        sample_ids=[i for i, k in zip(ids, keep, strict=True) if k],
        cv_folds=3,
        tune_thresholds=True,
    )
    assert full["metrics"]["nonfinite_rows"] == 4
    assert full["confusion"]["excluded_nonfinite"] == 4
    assert full["confusion"]["n_samples"] == 296
    for key in KEYS - {"metrics", "metrics_tuned", "confusion", "confident_errors"}:
        assert full[key] == clean[key], key
    assert {**full["metrics"], "nonfinite_rows": 0} == clean["metrics"]
    assert [e["sample_id"] for e in full["confident_errors"]] == [
        e["sample_id"] for e in clean["confident_errors"]
    ]
    json.dumps(full, allow_nan=False)


def test_all_rows_nonfinite() -> None:
    probs = np.full((4, 3), np.nan)
    sections = _sections(probs, np.ones((4, 3), dtype=int), tune_thresholds=True)
    assert set(sections) == KEYS
    assert sections["metrics"]["nonfinite_rows"] == 4 and sections["metrics"]["f1_macro"] is None
    assert sections["metrics"]["ece"] is None
    assert all(value is None for value in sections["metrics_ci"]["intervals"].values())
    assert sections["calibration_summary"]["ece_mean"] is None
    assert sections["calibration_summary"]["bins_pooled"] == []
    assert sections["confident_errors"] == [] and sections["cooccurrence_errors"]["pairs"] == []
    assert all(row["accuracy"] is None for row in sections["class_diagnostics"])
    json.dumps(sections, allow_nan=False)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"class_names": ["a"]}, "one name per label"),
        ({"per_sample_loss": np.zeros(3)}, "per_sample_loss"),
        ({"sample_ids": ["x"]}, "sample_ids"),
        ({"n_bootstrap": 0}, "n_bootstrap"),
        ({"cv_folds": 1}, "cv_folds"),
        ({"cv_folds": 11}, "cv_folds"),
        ({"max_errors": -1}, "max_errors"),
        ({"threshold": 1.5}, r"\[0, 1\]"),
        ({"threshold": [0.5, 0.5, 0.5]}, "one value per label"),
        ({"targets": np.full((10, 2), 2)}, "0 or 1"),
        ({"probabilities": np.full((10, 2), 3.0)}, "logits"),
    ],
)
def test_bad_arguments_raise_value_error(change: dict[str, Any], match: str) -> None:
    arguments: dict[str, Any] = {
        "probabilities": np.full((10, 2), 0.5),
        "targets": np.zeros((10, 2), dtype=int),
        "per_sample_loss": np.zeros(10),
        "class_names": ["a", "b"],
    }
    arguments.update(change)
    with pytest.raises(ValueError, match=match):
        multilabel_sections(
            arguments.pop("probabilities"),
            arguments.pop("targets"),
            arguments.pop("per_sample_loss"),
            **arguments,
        )


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 25).flatmap(
        lambda n: st.tuples(
            st.lists(
                st.lists(st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]), min_size=3, max_size=3),
                min_size=n,
                max_size=n,
            ),
            st.lists(st.lists(st.integers(0, 1), min_size=3, max_size=3), min_size=n, max_size=n),
        )
    ),
    st.integers(0, 2**16),
    st.booleans(),
)
def test_properties_on_random_sets(
    case: tuple[list[Any], list[Any]], seed: int, tune: bool
) -> None:
    probs, targets = np.array(case[0]), np.array(case[1])
    n = probs.shape[0]
    sections = _sections(probs, targets, seed=seed, n_bootstrap=20, tune_thresholds=tune)
    json.dumps(sections, allow_nan=False)
    pred = (probs >= 0.5).astype(np.int64)
    scores = _sk_counts(pred, targets)
    for name in ("f1_macro", "f1_samples", "f1_micro", "hamming_loss", "subset_accuracy"):
        _approx(sections["metrics"][name], scores[name])
        interval = sections["metrics_ci"]["intervals"][name]
        assert 0.0 <= interval["low"] <= interval["high"] <= 1.0
    for entry in sections["confusion"]["per_label"]:
        assert sum(entry.values()) == n
    fp = {str(i): int(((pred[:, i] == 1) & (targets[:, i] == 0)).sum()) for i in range(3)}
    for pair in sections["cooccurrence_errors"]["pairs"]:
        assert 0 < pair["count"] <= fp[pair["predicted_label"]]
        assert pair["count"] <= pair["co_present"]
    assert sorted(row["rank"] for row in sections["class_diagnostics"]) == [1, 2, 3]
    assert sum(b["count"] for b in sections["calibration_summary"]["bins_pooled"]) == 3 * n
    ece = sections["metrics"]["ece"]
    assert ece is not None and 0.0 <= ece <= 1.0
    if tune and n >= 2:
        assert set(sections["metrics_tuned"]) == set(sections["metrics"])


def test_deterministic_for_a_seed() -> None:
    probs, targets = DATASETS["weak"]
    first = _sections(probs, targets, seed=3, cv_folds=4, tune_thresholds=True)
    again = _sections(probs, targets, seed=3, cv_folds=4, tune_thresholds=True)
    other = _sections(probs, targets, seed=4, cv_folds=4, tune_thresholds=True)
    assert json.dumps(first) == json.dumps(again)
    assert first["metrics_ci"] != other["metrics_ci"]


# -------------------------------------------------------------------------------------------
# The task object
# -------------------------------------------------------------------------------------------


def test_task_method_delegates_with_its_options() -> None:
    probs, targets = DATASETS["random"]
    losses = np.linspace(0, 1, 300)
    task = MultilabelTask(threshold=0.4, tune_thresholds=True)
    assert isinstance(task, AnalysisTask) and task.headline_metric == "f1_macro"
    sections = task.report_sections(
        probabilities=probs,
        targets=targets,
        per_sample_loss=losses,
        class_names=_names(6),
        seed=2,
        cv_folds=3,
        n_bootstrap=30,
    )
    direct = multilabel_sections(
        probs,
        targets,
        losses,
        class_names=_names(6),
        threshold=0.4,
        tune_thresholds=True,
        seed=2,
        cv_folds=3,
        n_bootstrap=30,
    )
    assert sections == direct and sections["thresholds"]["mode"] == "tuned"
    assert repr(task) == "MultilabelTask(threshold=0.4, tune_thresholds=True)"
    assert repr(MultilabelTask()) == "MultilabelTask(threshold=0.5)"
    with pytest.raises(TypeError, match="tune_thresholds"):
        MultilabelTask(tune_thresholds="yes")  # type: ignore[arg-type]


def test_factory_passes_the_tuning_option() -> None:
    from bnnr_core.plugins import load_plugins

    host = load_plugins(environ={})
    task = host.component("task", "multilabel").create(threshold=0.3, tune_thresholds=True)
    assert task.tune_thresholds is True and task.threshold == 0.3
    assert host.component("task", "multilabel").create().tune_thresholds is False


def test_report_module_imports_no_torch() -> None:
    code = (
        "import sys\n"
        "import bnnr_multilabel.report\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
