"""Report sections of the ``classification`` task: every number against an independent
computation (scikit-learn, exact fractions, or a plain Python loop written here)."""

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
from bnnr_classification.metrics import classification_metrics
from bnnr_classification.report import classification_sections, stratified_folds
from bnnr_classification.task import ClassificationTask
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from sklearn import metrics as skm

KEYS = {
    "metrics",
    "metrics_ci",
    "per_class_accuracy",
    "confusion",
    "true_distribution",
    "pred_distribution",
    "distribution_summary",
    "class_diagnostics",
    "calibration_summary",
    "cv_results",
    "confident_errors",
}
CI_NAMES = [
    "accuracy",
    "balanced_accuracy",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "cohen_kappa",
    "mcc",
    "loss",
]

# -------------------------------------------------------------------------------------------
# Data sets and independent references
# -------------------------------------------------------------------------------------------


def _softmax(logits: NDArray[np.float64]) -> NDArray[np.float64]:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))


def _dataset(
    seed: int, n: int, c: int, *, signal: float = 1.5, weights: list[float] | None = None
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    p = None if weights is None else np.asarray(weights) / sum(weights)
    targets = rng.choice(c, size=n, p=p)
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), targets] += signal
    return _softmax(logits), targets


def _predicting(targets: list[int], predictions: list[int], c: int) -> NDArray[np.float64]:
    """Probabilities whose arg-max is ``predictions``."""
    logits = np.zeros((len(targets), c))
    logits[np.arange(len(targets)), predictions] = 3.0
    return _softmax(logits)


def _loss(probs: NDArray[Any], targets: NDArray[Any]) -> NDArray[np.float64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(-np.log(probs[np.arange(len(targets)), targets].astype(np.float64)))


def _sections(probs: NDArray[Any], targets: Any, **kwargs: Any) -> dict[str, Any]:
    targets = np.asarray(targets)
    kwargs.setdefault("class_names", [f"name{i}" for i in range(probs.shape[1])])
    kwargs.setdefault("n_bootstrap", 50)
    return classification_sections(probs, targets, _loss(probs, targets), **kwargs)


def _kappa(y1: Any, y2: Any) -> float | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns where kappa is undefined (NaN)
        value = skm.cohen_kappa_score(y1, y2)
    return None if np.isnan(value) else float(value)


def _assert_plain(value: Any) -> None:
    """Only plain Python JSON types, no numpy scalars, anywhere."""
    assert type(value) in (int, float, str, bool, type(None), list, dict), type(value)
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str
            _assert_plain(item)
    elif isinstance(value, list):
        for item in value:
            _assert_plain(item)


def _expected_distribution_summary(true: list[int], pred: list[int]) -> dict[str, Any]:
    """The documented rules on exact fractions, one class at a time."""
    total = sum(true)
    over, new, under = [], [], []
    for i, (t, p) in enumerate(zip(true, pred, strict=True)):
        entry = {"class": str(i), "class_name": f"name{i}", "true": t, "pred": p}
        if t > 0 and Fraction(p, t) > Fraction(6, 5):
            over.append((Fraction(p, t), i, entry))
        elif t > 0 and Fraction(p, t) < Fraction(4, 5):
            under.append((Fraction(p, t), i, entry))
        elif t == 0 and p > 0:
            new.append({**entry, "ratio": None})
    over.sort(key=lambda item: (-item[0], item[1]))
    under.sort(key=lambda item: (item[0], item[1]))
    collapse = None
    if total:
        top = max(pred)
        for k in range(len(pred)):
            s_pred, s_true = Fraction(pred[k], total), Fraction(true[k], total)
            rule = s_pred >= max(Fraction(1, 2), s_true + (1 - s_true) / 2)
            if pred[k] == top and s_true < 1 and rule:
                collapse = k
                break
    return {
        "true_total": total,
        "pred_total": sum(pred),
        "over_predicted": ([{**e, "ratio": float(r)} for r, _, e in over] + new)[:10],
        "under_predicted": [{**e, "ratio": float(r)} for r, _, e in under][:10],
        "possible_collapse": collapse is not None,
        "collapse_class": None if collapse is None else str(collapse),
        "collapse_share": None if collapse is None else pred[collapse] / total,
    }


def _expected_folds(labels: NDArray[np.int64], c: int, k: int, seed: int) -> list[int]:
    """The documented fold rule, dealt one row at a time."""
    rng = np.random.default_rng(seed)
    fold_of: dict[int, int] = {}
    next_fold = 0
    for cls in range(c):
        members = np.array([i for i in range(len(labels)) if labels[i] == cls], dtype=np.int64)
        rng.shuffle(members)
        for position in members:
            fold_of[int(position)] = next_fold
            next_fold = (next_fold + 1) % k
    return [fold_of[i] for i in range(len(labels))]


DATASETS = {
    "balanced": (*_dataset(0, 300, 7), 7),
    "imbalanced": (*_dataset(1, 250, 10, weights=[50, 20, 10, 5, 5, 3, 3, 2, 1, 1]), 10),
    "missing_classes": (*_dataset(2, 200, 6, weights=[1, 1, 0, 1, 0, 1]), 6),
    "binary": (*_dataset(3, 120, 2, signal=0.7), 2),
    "float32": (_dataset(4, 200, 12)[0].astype(np.float32), _dataset(4, 200, 12)[1], 12),
}

# -------------------------------------------------------------------------------------------
# Shapes and values of every section
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", DATASETS)
def test_sections_match_independent_references(dataset: str) -> None:
    probs, targets, c = DATASETS[dataset]
    sections = _sections(probs, targets, cv_folds=3)
    assert set(sections) == KEYS
    json.dumps(sections, allow_nan=False)
    _assert_plain(sections)
    assert sections["metrics"] == classification_metrics(probs, targets, num_classes=c)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
        balanced = skm.balanced_accuracy_score(targets, probs.argmax(axis=1))
    assert sections["metrics"]["balanced_accuracy"] == pytest.approx(balanced, abs=1e-12)

    pred = probs.argmax(axis=1)
    labels = list(range(c))
    names = [f"name{i}" for i in labels]
    matrix = skm.confusion_matrix(targets, pred, labels=labels)
    assert sections["confusion"] == {
        "labels": labels,
        "class_names": names,
        "matrix": matrix.tolist(),
        "excluded_nonfinite": 0,
    }
    true_counts = [int((targets == i).sum()) for i in labels]
    pred_counts = [int((pred == i).sum()) for i in labels]
    assert sections["true_distribution"] == {str(i): true_counts[i] for i in labels}
    assert sections["pred_distribution"] == {str(i): pred_counts[i] for i in labels}

    precision, recall, f1, support = skm.precision_recall_fscore_support(
        targets, pred, labels=labels, zero_division=0
    )
    assert sections["per_class_accuracy"] == {
        str(i): {"accuracy": pytest.approx(r), "support": support[i], "class_name": names[i]}
        for i, r in enumerate(recall)
        if support[i] > 0
    }
    by_class = {entry["class_id"]: entry for entry in sections["class_diagnostics"]}
    assert len(sections["class_diagnostics"]) == c
    for i in labels:
        entry = by_class[str(i)]
        assert entry["class_name"] == names[i]
        assert entry["accuracy"] == entry["recall"] == pytest.approx(recall[i])
        assert entry["precision"] == pytest.approx(precision[i])
        assert entry["f1"] == pytest.approx(f1[i])
        assert (entry["support"], entry["pred_count"]) == (support[i], pred_counts[i])
        kappa = _kappa(targets == i, pred == i)
        assert entry["cohen_kappa"] == (None if kappa is None else pytest.approx(kappa))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_class_diagnostics_severity_and_worst_first_order(seed: int) -> None:
    probs, targets = _dataset(seed, 150, 8, signal=0.8, weights=[8, 1, 4, 4, 2, 6, 1, 3])
    diagnostics = _sections(probs, targets)["class_diagnostics"]
    for entry in diagnostics:
        if entry["support"] > 0 and entry["recall"] == 0:
            expected = "critical"
        elif (entry["support"] > 0 and entry["recall"] < 0.5) or (
            entry["pred_count"] > 0 and entry["precision"] < 0.5
        ):
            expected = "warning"
        else:
            expected = "ok"
        assert entry["severity"] == expected
    order = {"critical": 0, "warning": 1, "ok": 2}
    keys = [(order[e["severity"]], e["f1"], int(e["class_id"])) for e in diagnostics]
    assert keys == sorted(keys)
    assert [e["rank"] for e in diagnostics] == list(range(1, 9))


def test_worst_class_ranks_first_inside_a_severity() -> None:
    # The confusion matrix of the reference study's run; BNNR 0.7 ranked class 1 before 3.
    matrix = [[0, 6, 21, 4], [0, 26, 4, 1], [0, 5, 12, 14], [0, 1, 0, 30]]
    targets = [i for i, row in enumerate(matrix) for j, n in enumerate(row) for _ in range(n)]
    predictions = [j for row in matrix for j, n in enumerate(row) for _ in range(n)]
    sections = _sections(_predicting(targets, predictions, 4), targets)
    assert sections["confusion"]["matrix"] == matrix
    diagnostics = sections["class_diagnostics"]
    assert [(e["class_id"], e["severity"]) for e in diagnostics] == [
        ("0", "critical"),
        ("2", "warning"),
        ("3", "ok"),  # F1 60/80 = 0.75
        ("1", "ok"),  # F1 52/69 ≈ 0.754
    ]
    assert diagnostics[0]["cohen_kappa"] == 0.0  # never predicted: p_o = p_e


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_properties_on_random_sets(data: st.DataObject) -> None:
    c = data.draw(st.integers(1, 6), label="classes")
    n = data.draw(st.integers(1, 40), label="rows")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, c, size=n)
    probs = _softmax(rng.normal(size=(n, c)) * data.draw(st.sampled_from([0.1, 1.0, 5.0])))
    bad = rng.random(n) < data.draw(st.sampled_from([0.0, 0.2]))
    probs[bad] = np.nan
    sections = _sections(probs, targets, seed=seed, n_bootstrap=20)
    json.dumps(sections, allow_nan=False)
    _assert_plain(sections)

    finite = ~bad
    kept_targets, kept_pred = targets[finite], probs[finite].argmax(axis=1)
    true_counts = np.bincount(kept_targets, minlength=c).tolist()
    pred_counts = np.bincount(kept_pred, minlength=c).tolist()
    confusion = sections["confusion"]
    assert sum(map(sum, confusion["matrix"])) == int(finite.sum())
    assert confusion["excluded_nonfinite"] == sections["metrics"]["nonfinite_rows"] == bad.sum()
    assert list(sections["true_distribution"].values()) == true_counts
    assert list(sections["pred_distribution"].values()) == pred_counts
    summary = sections["distribution_summary"]
    assert summary.pop("rule")
    assert summary == _expected_distribution_summary(true_counts, pred_counts)

    diagnostics = sections["class_diagnostics"]
    assert sorted(int(e["class_id"]) for e in diagnostics) == list(range(c))
    order = {"critical": 0, "warning": 1, "ok": 2}
    keys = [(order[e["severity"]], e["f1"], int(e["class_id"])) for e in diagnostics]
    assert keys == sorted(keys)
    errors = sections["confident_errors"]
    assert len(errors) == min(20, int((kept_pred != kept_targets).sum()))


# -------------------------------------------------------------------------------------------
# Distribution summary and the collapse flag
# -------------------------------------------------------------------------------------------


def _summary(true: list[int], pred: list[int], c: int) -> dict[str, Any]:
    result: dict[str, Any] = _sections(_predicting(true, pred, c), true)["distribution_summary"]
    return result


@pytest.mark.parametrize(
    ("true", "pred", "c", "fires", "share"),
    [
        ([0] * 50 + [1] * 50, [0] * 95 + [1] * 5, 2, True, 0.95),
        ([i % 10 for i in range(100)], [3] * 60 + [i % 10 for i in range(40)], 10, True, 0.64),
        ([0] * 50 + [1] * 50, [0] * 60 + [1] * 40, 2, False, None),
        ([0] * 90 + [1] * 10, [0] * 90 + [1] * 10, 2, False, None),
        ([0] * 20, [0] * 20, 3, False, None),  # nothing belongs elsewhere
        ([0, 1, 2, 3] * 31, [1] * 38 + [2] * 37 + [3] * 49, 4, False, None),
    ],
)
def test_collapse_flag(true: list[int], pred: list[int], c: int, fires: bool, share: Any) -> None:
    summary = _summary(true, pred, c)
    assert summary["possible_collapse"] is fires
    assert summary["collapse_share"] == share
    assert summary["collapse_class"] == (str(max(range(c), key=pred.count)) if fires else None)
    assert "s_pred >= max(0.5, s_true + (1 - s_true) / 2)" in summary["rule"]


def test_ten_class_set_with_sixty_percent_in_one_class_collapses() -> None:
    true = [i % 10 for i in range(100)]
    pred = [7] * 60 + [(i % 9) + (i % 9 >= 7) for i in range(40)]
    assert pred.count(7) == 60
    summary = _summary(true, pred, 10)
    assert (summary["possible_collapse"], summary["collapse_class"]) == (True, "7")
    assert summary["collapse_share"] == 0.6


def test_over_and_under_predicted_lists() -> None:
    # 30 classes of 20 rows; pairs of classes trade j predictions; class 30 never occurs but
    # takes 5 predictions from class 0. Both lists overflow the cap of 10.
    true_counts = [20] * 30 + [0]
    pred_counts = [20 + j * (-1) ** i for j in range(15) for i in range(2)] + [5]
    pred_counts[0] -= 5
    true = [i for i, n in enumerate(true_counts) for _ in range(n)]
    pred = [i for i, n in enumerate(pred_counts) for _ in range(n)]
    summary = _summary(true, pred, 31)
    summary.pop("rule")
    assert summary == _expected_distribution_summary(true_counts, pred_counts)
    over, under = summary["over_predicted"], summary["under_predicted"]
    assert len(over) == len(under) == 10
    assert [e["class"] for e in over[:2]] == ["28", "26"]
    assert "30" not in [e["class"] for e in over]  # ratio None sorts after the cut
    # Classes 0 and 11 tie at 15/20: the lower index comes first, and 11 falls past the cap.
    assert [e["class"] for e in under[-3:]] == ["15", "13", "0"]


def test_never_occurring_class_is_listed_after_the_ratios() -> None:
    true = [0] * 10 + [1] * 10
    pred = [0] * 5 + [1] * 10 + [2] * 5
    over = _summary(true, pred, 3)["over_predicted"]
    assert [(e["class"], e["ratio"]) for e in over] == [("2", None)]
    true = [0] * 10 + [1] * 10
    pred = [0] * 2 + [1] * 15 + [2] * 3
    over = _summary(true, pred, 3)["over_predicted"]
    assert [(e["class"], e["ratio"]) for e in over] == [("1", 1.5), ("2", None)]


def test_exactly_one_point_two_is_not_over_predicted() -> None:
    true = [0] * 10 + [1] * 10
    pred = [0] * 12 + [1] * 8
    summary = _summary(true, pred, 2)
    assert summary["over_predicted"] == []
    assert summary["under_predicted"] == []


# -------------------------------------------------------------------------------------------
# Bootstrap intervals
# -------------------------------------------------------------------------------------------


def test_bootstrap_intervals() -> None:
    probs, targets, c = DATASETS["balanced"]
    sections = _sections(probs, targets, n_bootstrap=300, seed=7)
    ci = sections["metrics_ci"]
    assert {k: v for k, v in ci.items() if k != "intervals"} == {
        "confidence_level": 0.95,
        "method": "percentile_bootstrap",
        "n_resamples": 300,
        "seed": 7,
    }
    assert list(ci["intervals"]) == CI_NAMES
    metrics = sections["metrics"]
    for name in ("accuracy", "f1_macro", "loss"):
        assert ci["intervals"][name]["low"] < metrics[name] < ci["intervals"][name]["high"]

    # Independent resampling: one draw of (R, N) indices, as documented for small sets.
    indices = np.random.default_rng(7).integers(0, len(targets), size=(300, len(targets)))
    correct = probs.argmax(axis=1) == targets
    eps = np.finfo(np.float64).eps
    row_loss = -np.log(np.clip(probs[np.arange(len(targets)), targets], eps, 1 - eps))
    assert row_loss.mean() == pytest.approx(skm.log_loss(targets, probs, labels=range(c)))
    assert row_loss.mean() == pytest.approx(metrics["loss"], rel=1e-12)
    for name, per_row in (("accuracy", correct), ("loss", row_loss)):
        low, high = np.quantile(per_row[indices].mean(axis=1), [0.025, 0.975])
        assert ci["intervals"][name] == {
            "low": pytest.approx(low, rel=1e-12),
            "high": pytest.approx(high, rel=1e-12),
        }

    again = _sections(probs, targets, n_bootstrap=300, seed=7)["metrics_ci"]
    other = _sections(probs, targets, n_bootstrap=300, seed=8)["metrics_ci"]
    assert again == ci
    assert all(other["intervals"][name] != ci["intervals"][name] for name in CI_NAMES)


# -------------------------------------------------------------------------------------------
# Calibration
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", DATASETS)
def test_calibration_summary(dataset: str) -> None:
    probs, targets, c = DATASETS[dataset]
    summary = _sections(probs, targets)["calibration_summary"]
    confidence = probs.max(axis=1).astype(np.float64)
    correct = probs.argmax(axis=1) == targets
    bins = []
    for b in range(15):
        low, high = b / 15, (b + 1) / 15
        members = [i for i in range(len(targets)) if low < confidence[i] <= high]
        if members:
            mean_conf = sum(confidence[i] for i in members) / len(members)
            accuracy = sum(correct[i] for i in members) / len(members)
            bins.append((len(members), abs(accuracy - mean_conf)))
    one_hot = np.eye(c)[targets]
    gap = confidence.mean() - correct.mean()
    assert summary["ece"] == pytest.approx(sum(n * g for n, g in bins) / len(targets))
    assert summary["mce"] == pytest.approx(max(g for _, g in bins))
    assert summary["brier"] == pytest.approx(((probs - one_hot) ** 2).sum(axis=1).mean())
    assert summary["mean_confidence"] == pytest.approx(confidence.mean())
    assert summary["accuracy"] == pytest.approx(correct.mean())
    assert summary["confidence_gap"] == pytest.approx(gap)
    assert type(summary["n_bins"]) is int and summary["n_bins"] == 15
    assert summary["n_samples"] == len(targets)
    assert len(summary["bins"]) == 15
    assert [b["count"] for b in summary["bins"] if b["count"]] == [n for n, _ in bins]


@pytest.mark.parametrize(
    ("signal", "temperature", "direction"),
    [(1.0, 0.2, "overconfident"), (6.0, 8.0, "underconfident"), (3.0, 1.0, "calibrated")],
)
def test_calibration_direction(signal: float, temperature: float, direction: str) -> None:
    rng = np.random.default_rng(0)
    n, c = 4000, 5
    targets = rng.integers(0, c, size=n)
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), targets] += signal
    if direction == "calibrated":
        # Draw the labels from the model's own probabilities: calibrated by construction.
        probs = _softmax(logits)
        targets = (rng.random(n)[:, None] > probs.cumsum(axis=1)).sum(axis=1)
    else:
        probs = _softmax(logits / temperature)
    summary = _sections(probs, targets)["calibration_summary"]
    assert summary["direction"] == direction
    assert (abs(summary["confidence_gap"]) < 0.02) == (direction == "calibrated")


# -------------------------------------------------------------------------------------------
# Cross-validation over the cached predictions
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "folds"), [(0, 2), (1, 3), (5, 5)])
def test_stratified_folds_follow_the_documented_rule(seed: int, folds: int) -> None:
    _, targets = _dataset(seed, 97, 6, weights=[10, 5, 3, 1, 1, 0.3])
    assignment = stratified_folds(targets, 6, folds, seed)
    assert assignment.tolist() == _expected_folds(targets, 6, folds, seed)
    sizes = np.bincount(assignment, minlength=folds)
    assert sizes.sum() == len(targets) and sizes.max() - sizes.min() <= 1
    for cls in range(6):
        per_fold = np.bincount(assignment[targets == cls], minlength=folds)
        assert per_fold.max() - per_fold.min() <= 1


@pytest.mark.parametrize(("dataset", "seed", "folds"), [("imbalanced", 0, 4), ("binary", 3, 2)])
def test_cv_results_match_sklearn_per_fold(dataset: str, seed: int, folds: int) -> None:
    probs, targets, c = DATASETS[dataset]
    cv = _sections(probs, targets, cv_folds=folds, seed=seed)["cv_results"]
    assert cv["n_folds"] == folds
    assert cv["method"] == "stratified_split_of_cached_predictions"
    assert "retrain" in cv["note"] and "ddof=0" in cv["note"]
    assignment = np.array(_expected_folds(targets, c, folds, seed))
    pred = probs.argmax(axis=1)
    labels = list(range(c))
    seen: list[int] = []
    columns: dict[str, list[float]] = {}
    for fold, entry in enumerate(cv["per_fold_metrics"]):
        rows = np.flatnonzero(assignment == fold)
        seen += rows.tolist()
        t, p = targets[rows], pred[rows]
        expected = {
            "accuracy": skm.accuracy_score(t, p),
            "precision_macro": skm.precision_score(
                t, p, labels=labels, average="macro", zero_division=0
            ),
            "recall_macro": skm.recall_score(t, p, labels=labels, average="macro", zero_division=0),
            "f1_macro": skm.f1_score(t, p, labels=labels, average="macro", zero_division=0),
            "cohen_kappa": _kappa(t, p),
        }
        assert entry["fold"] == fold and entry["support"] == len(rows)
        for name, value in expected.items():
            assert entry[name] == pytest.approx(value)
            columns.setdefault(name, []).append(value)
        recall = {
            str(i): (sum(p[t == i] == i) / sum(t == i) if sum(t == i) else None) for i in labels
        }
        assert entry["per_class_recall"] == recall
    assert sorted(seen) == list(range(len(targets)))  # disjoint and covering

    overall = cv["global_metrics"]
    for name, values in columns.items():
        assert overall[f"mean_{name}"] == pytest.approx(statistics.fmean(values))
        assert overall[f"std_{name}"] == pytest.approx(statistics.pstdev(values))
    assert overall["min_accuracy"] == pytest.approx(min(columns["accuracy"]))
    assert overall["max_accuracy"] == pytest.approx(max(columns["accuracy"]))


def test_undefined_fold_kappa_is_none_and_left_out_of_the_mean() -> None:
    # Class 0 rows deal to folds 0, 1, 0, 1; the class-1 row continues the deal into fold 0.
    targets = [0, 0, 0, 0, 1]
    cv = _sections(_predicting(targets, targets, 2), targets, cv_folds=2)["cv_results"]
    assert [f["cohen_kappa"] for f in cv["per_fold_metrics"]] == [1.0, None]
    assert [f["per_class_recall"]["1"] for f in cv["per_fold_metrics"]] == [1.0, None]
    assert (cv["global_metrics"]["mean_cohen_kappa"], cv["global_metrics"]["std_cohen_kappa"]) == (
        1.0,
        0.0,
    )
    single = _sections(_predicting([0] * 4, [0] * 4, 2), [0] * 4, cv_folds=2)["cv_results"]
    assert single["global_metrics"]["mean_cohen_kappa"] is None


def test_cv_off_gives_an_empty_dict() -> None:
    probs, targets, _ = DATASETS["binary"]
    assert _sections(probs, targets)["cv_results"] == {}


# -------------------------------------------------------------------------------------------
# Non-finite rows, confident errors, errors, determinism, the task method
# -------------------------------------------------------------------------------------------


def test_nonfinite_rows_are_excluded_from_every_section_and_counted() -> None:
    probs, targets, _ = DATASETS["imbalanced"]
    bad = np.zeros(len(targets), dtype=bool)
    bad[[0, 7, 8, 100, 249]] = True
    corrupted = probs.copy()
    corrupted[bad] = np.nan
    corrupted[100, 2] = np.inf  # a lone inf is as non-finite as a NaN row
    corrupted[100, :2] = probs[100, :2]
    ids = [f"img{i}.png" for i in range(len(targets))]
    full = _sections(corrupted, targets, cv_folds=3, sample_ids=ids, seed=4)
    kept = np.flatnonzero(~bad)
    subset = _sections(
        probs[kept], targets[kept], cv_folds=3, sample_ids=[ids[i] for i in kept], seed=4
    )
    assert full["metrics"]["nonfinite_rows"] == full["confusion"]["excluded_nonfinite"] == 5
    assert subset["metrics"]["nonfinite_rows"] == subset["confusion"]["excluded_nonfinite"] == 0
    for key in KEYS - {"metrics", "confusion", "confident_errors"}:
        assert full[key] == subset[key], key
    assert full["confusion"]["matrix"] == subset["confusion"]["matrix"]
    for mine, theirs in zip(full["confident_errors"], subset["confident_errors"], strict=True):
        assert mine["index"] == kept[theirs["index"]]
        assert mine["sample_id"] == theirs["sample_id"] == ids[mine["index"]]
        assert {k: v for k, v in mine.items() if k != "index"} == {
            k: v for k, v in theirs.items() if k != "index"
        }
    json.dumps(full, allow_nan=False)


def test_all_rows_nonfinite() -> None:
    probs = np.full((6, 3), np.nan)
    sections = _sections(probs, [0, 1, 2, 0, 1, 2])
    json.dumps(sections, allow_nan=False)
    assert sections["metrics"]["accuracy"] is None
    assert sections["metrics"]["nonfinite_rows"] == sections["confusion"]["excluded_nonfinite"] == 6
    assert all(v is None for v in sections["metrics_ci"]["intervals"].values())
    assert sections["per_class_accuracy"] == {}
    assert sections["confusion"]["matrix"] == [[0] * 3] * 3
    assert sections["distribution_summary"]["possible_collapse"] is False
    assert [e["severity"] for e in sections["class_diagnostics"]] == ["ok"] * 3
    assert all(e["cohen_kappa"] is None for e in sections["class_diagnostics"])
    calibration = sections["calibration_summary"]
    assert calibration["bins"] == [] and calibration["n_samples"] == 0
    assert calibration["ece"] is calibration["direction"] is None
    assert sections["confident_errors"] == []
    with pytest.raises(ValueError, match="cv_folds"):
        _sections(probs, [0, 1, 2, 0, 1, 2], cv_folds=2)


def test_confident_errors_order() -> None:
    # Rows 0-5 are wrong; 1 and 2 share a confidence (loss breaks the tie), 3 and 4 share both.
    probs = np.array(
        [
            [0.2, 0.7, 0.1],
            [0.1, 0.9, 0.0],
            [0.0, 0.9, 0.1],
            [0.3, 0.1, 0.6],
            [0.3, 0.1, 0.6],
            [0.45, 0.55, 0.0],
            [0.9, 0.05, 0.05],  # correct
        ]
    )
    targets = np.array([0, 0, 2, 0, 0, 0, 0])
    loss = np.array([1.0, 2.0, 3.0, 0.5, 0.5, 9.0, 0.1])
    names = ["cat", "dog", "owl"]
    errors = classification_sections(probs, targets, loss, class_names=names, n_bootstrap=5)[
        "confident_errors"
    ]
    wrong = [i for i in range(7) if probs[i].argmax() != targets[i]]
    expected = sorted(wrong, key=lambda i: (-probs[i].max(), -loss[i], i))
    assert [e["index"] for e in errors] == expected == [2, 1, 0, 3, 4, 5]
    assert errors[0] == {
        "index": 2,
        "sample_id": "2",
        "true_label": 2,
        "true_name": "owl",
        "pred_label": 1,
        "pred_name": "dog",
        "confidence": 0.9,
        "loss": 3.0,
    }
    limited = classification_sections(
        probs, targets, loss, class_names=names, n_bootstrap=5, max_errors=2, sample_ids="abcdefg"
    )["confident_errors"]
    assert [(e["index"], e["sample_id"]) for e in limited] == [(2, "c"), (1, "b")]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"probabilities": np.full(4, 0.5)}, "shape"),
        ({"class_names": ["a", "b"]}, "class_names"),
        ({"targets": np.array([0, 1, 2])}, "targets"),
        ({"per_sample_loss": np.zeros(3)}, "per_sample_loss"),
        ({"sample_ids": ["a"]}, "sample_ids"),
        ({"cv_folds": 1}, "cv_folds"),
        ({"cv_folds": 5}, "cv_folds"),
        ({"cv_folds": -1}, "cv_folds"),
        ({"n_bootstrap": 0}, "n_bootstrap"),
        ({"max_errors": -1}, "max_errors"),
    ],
)
def test_bad_arguments_raise_value_error(change: dict[str, Any], match: str) -> None:
    arguments: dict[str, Any] = {
        "probabilities": _predicting([0, 1, 2, 0], [0, 1, 2, 0], 3),
        "targets": np.array([0, 1, 2, 0]),
        "per_sample_loss": np.zeros(4),
        "class_names": ["a", "b", "c"],
        **change,
    }
    with pytest.raises(ValueError, match=match):
        classification_sections(
            arguments.pop("probabilities"),
            arguments.pop("targets"),
            arguments.pop("per_sample_loss"),
            **arguments,
        )


def test_deterministic_for_a_seed() -> None:
    probs, targets, _ = DATASETS["balanced"]
    first = _sections(probs, targets, cv_folds=3, seed=11)
    assert _sections(probs, targets, cv_folds=3, seed=11) == first
    assert _sections(probs, targets, cv_folds=3, seed=12)["cv_results"] != first["cv_results"]


def test_task_method_delegates() -> None:
    probs, targets, _ = DATASETS["binary"]
    task = ClassificationTask()
    assert task.headline_metric == "balanced_accuracy"
    arguments: dict[str, Any] = {
        "class_names": ["no", "yes"],
        "sample_ids": [f"s{i}" for i in range(len(targets))],
        "seed": 3,
        "cv_folds": 2,
        "n_bootstrap": 40,
    }
    loss = _loss(probs, targets)
    sections = task.report_sections(
        probabilities=probs, targets=targets, per_sample_loss=loss, **arguments
    )
    assert sections == classification_sections(probs, targets, loss, **arguments)
    assert task.headline_metric in sections["metrics"]


def test_report_module_imports_no_torch() -> None:
    code = "import sys, bnnr_classification.report; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
