"""The built-in ``classification`` task: every number against an independent computation.

References: scikit-learn for the metrics, torch for the loss, a deliberately naive Python loop
for the calibration bins.
"""

from __future__ import annotations

import warnings
from typing import Any

import bnnr_classification
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from bnnr_classification.bootstrap import bootstrap_ci, bootstrap_mean_ci
from bnnr_classification.calibration import (
    brier_score,
    calibration_bins,
    expected_calibration_error,
    max_calibration_error,
)
from bnnr_classification.metrics import (
    CONFUSION_METRICS,
    accuracy_from_confusion,
    classification_metrics,
    cohen_kappa_from_confusion,
    confusion_matrix,
    f1_macro_from_confusion,
    per_class_report,
    top_k_accuracy,
)
from bnnr_classification.task import ClassificationTask
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from sklearn import metrics as skm

from bnnr_core.protocols import Task

# -------------------------------------------------------------------------------------------
# Data sets and independent references
# -------------------------------------------------------------------------------------------


def _softmax(logits: NDArray[np.float64]) -> NDArray[np.float64]:
    return torch.softmax(torch.from_numpy(logits), dim=1).numpy()


def _dataset(
    seed: int, n: int, c: int, *, signal: float = 1.5, class_weights: list[float] | None = None
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    weights = None if class_weights is None else np.asarray(class_weights) / sum(class_weights)
    targets = rng.choice(c, size=n, p=weights)
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), targets] += signal
    return _softmax(logits), targets


def _never_predicted() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    probs, targets = _dataset(3, 200, 5)
    logits = np.log(probs)
    logits[:, 3] -= 50.0  # class 3 occurs in the targets but is never the arg-max
    return _softmax(logits), targets


def _all_correct() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    probs, targets = _dataset(4, 120, 6, signal=12.0)
    assert (probs.argmax(axis=1) == targets).all()
    return probs, targets


DATASETS: dict[str, tuple[NDArray[Any], NDArray[np.int64], int]] = {
    "balanced": (*_dataset(0, 500, 7), 7),
    "imbalanced": (*_dataset(1, 400, 10, class_weights=[50, 20, 10, 5, 5, 3, 3, 2, 1, 1]), 10),
    "missing_classes": (*_dataset(2, 300, 8, class_weights=[1, 1, 1, 0, 0, 1, 0, 0]), 8),
    "never_predicted": (*_never_predicted(), 5),
    "all_correct": (*_all_correct(), 6),
    "binary": (*_dataset(5, 150, 2, signal=0.7), 2),
    "single_sample": (*_dataset(6, 1, 4), 4),
    "float32": (
        _dataset(7, 300, 12)[0].astype(np.float32),
        _dataset(7, 300, 12)[1],
        12,
    ),
}


def _naive_calibration(
    confidences: NDArray[Any], correct: NDArray[Any], n_bins: int = 15
) -> list[tuple[int, float, float]]:
    """(count, mean confidence, accuracy) per bin, one sample at a time."""
    bins = []
    for b in range(n_bins):
        low, high = b / n_bins, (b + 1) / n_bins
        members = [
            i
            for i in range(len(confidences))
            if low < confidences[i] <= high or (b == 0 and confidences[i] == 0)
        ]
        if members:
            mean_conf = sum(float(confidences[i]) for i in members) / len(members)
            accuracy = sum(float(correct[i]) for i in members) / len(members)
            bins.append((len(members), mean_conf, accuracy))
        else:
            bins.append((0, float("nan"), float("nan")))
    return bins


def _naive_ece(confidences: NDArray[Any], correct: NDArray[Any], n_bins: int = 15) -> float:
    total = len(confidences)
    return sum(
        count / total * abs(accuracy - mean_conf)
        for count, mean_conf, accuracy in _naive_calibration(confidences, correct, n_bins)
        if count
    )


def _sklearn_reference(probs: NDArray[Any], targets: NDArray[np.int64], c: int) -> dict[str, Any]:
    labels = list(range(c))
    pred = probs.argmax(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's warnings about undefined ratios
        kappa = skm.cohen_kappa_score(targets, pred)
        reference = {
            "accuracy": skm.accuracy_score(targets, pred),
            "balanced_accuracy": skm.balanced_accuracy_score(targets, pred),
            "precision_macro": skm.precision_score(
                targets, pred, labels=labels, average="macro", zero_division=0
            ),
            "recall_macro": skm.recall_score(
                targets, pred, labels=labels, average="macro", zero_division=0
            ),
            "f1_macro": skm.f1_score(
                targets, pred, labels=labels, average="macro", zero_division=0
            ),
            "cohen_kappa": None if np.isnan(kappa) else kappa,
            "mcc": skm.matthews_corrcoef(targets, pred),
            "loss": skm.log_loss(targets, probs, labels=labels),
            "ece": _naive_ece(probs.max(axis=1), pred == targets),
        }
        if c > 5:
            reference["top5_accuracy"] = skm.top_k_accuracy_score(
                targets, probs, k=5, labels=labels
            )
    return reference


def _assert_metrics_equal(
    actual: dict[str, Any], expected: dict[str, Any], rel: float = 1e-9
) -> None:
    assert set(actual) == {*expected, "nonfinite_rows"}
    for name, value in expected.items():
        if value is None:
            assert actual[name] is None, name
        else:
            assert isinstance(actual[name], float), name
            assert actual[name] == pytest.approx(value, rel=rel, abs=1e-12), name


# -------------------------------------------------------------------------------------------
# Metrics over a whole set
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", DATASETS)
def test_metrics_match_sklearn(dataset: str) -> None:
    probs, targets, c = DATASETS[dataset]
    metrics = ClassificationTask().compute_metrics(probs, targets, num_classes=c)
    # sklearn's log loss sums float32 inputs in float32; ours sums in float64.
    rel = 1e-6 if probs.dtype == np.float32 else 1e-9
    _assert_metrics_equal(metrics, _sklearn_reference(probs, targets, c), rel=rel)
    assert metrics["nonfinite_rows"] == 0


@pytest.mark.parametrize("dataset", DATASETS)
def test_metrics_raise_no_numpy_warnings(dataset: str) -> None:
    probs, targets, c = DATASETS[dataset]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        classification_metrics(probs, targets, num_classes=c)


def test_single_class_everywhere_gives_undefined_kappa_and_zero_mcc() -> None:
    probs = np.tile([0.9, 0.05, 0.05], (20, 1))
    metrics = classification_metrics(probs, np.zeros(20, dtype=np.int64), num_classes=3)
    assert metrics["accuracy"] == 1.0
    assert metrics["balanced_accuracy"] == 1.0
    assert metrics["cohen_kappa"] is None  # sklearn: NaN
    assert metrics["mcc"] == 0.0  # sklearn's convention for an undefined MCC
    # Macro averages run over all 3 labels: the two absent ones count 0.
    assert metrics["f1_macro"] == pytest.approx(1 / 3)


def test_top5_only_with_more_than_five_classes() -> None:
    for c, present in ((5, False), (6, True)):
        probs, targets = _dataset(8, 50, c)
        assert ("top5_accuracy" in classification_metrics(probs, targets, num_classes=c)) is present


def test_top_k_ties_broken_like_sklearn() -> None:
    rng = np.random.default_rng(9)
    scores = rng.integers(0, 3, size=(300, 8)).astype(np.float64)  # many exact ties
    targets = rng.integers(0, 8, size=300)
    for k in (1, 3, 5):
        expected = skm.top_k_accuracy_score(targets, scores, k=k, labels=list(range(8)))
        assert top_k_accuracy(scores, targets, k) == pytest.approx(expected)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=2, max_value=6).flatmap(
        lambda c: st.tuples(
            st.just(c),
            st.lists(
                st.tuples(st.integers(0, c - 1), st.integers(0, c - 1)), min_size=1, max_size=40
            ),
        )
    )
)
def test_confusion_metrics_match_sklearn_on_any_labels(
    case: tuple[int, list[tuple[int, int]]],
) -> None:
    c, pairs = case
    y_true = np.array([t for t, _ in pairs])
    y_pred = np.array([p for _, p in pairs])
    confusion = confusion_matrix(y_true, y_pred, c)
    labels = list(range(c))
    np.testing.assert_array_equal(confusion, skm.confusion_matrix(y_true, y_pred, labels=labels))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kappa = skm.cohen_kappa_score(y_true, y_pred)
        expected = {
            "accuracy": skm.accuracy_score(y_true, y_pred),
            "balanced_accuracy": skm.balanced_accuracy_score(y_true, y_pred),
            "f1_macro": skm.f1_score(
                y_true, y_pred, labels=labels, average="macro", zero_division=0
            ),
            "mcc": skm.matthews_corrcoef(y_true, y_pred),
        }
    for name, value in expected.items():
        assert float(CONFUSION_METRICS[name](confusion)) == pytest.approx(value, abs=1e-12), name
    ours = float(cohen_kappa_from_confusion(confusion))
    assert (np.isnan(ours) and np.isnan(kappa)) or ours == pytest.approx(kappa, abs=1e-12)


def test_confusion_metrics_work_on_a_stack() -> None:
    rng = np.random.default_rng(10)
    stack = rng.integers(0, 20, size=(4, 5, 5))
    for metric in CONFUSION_METRICS.values():
        batched = np.asarray(metric(stack))
        assert batched.shape == (4,)
        np.testing.assert_allclose(batched, [float(metric(m)) for m in stack])


def test_per_class_report_matches_sklearn() -> None:
    probs, targets, c = DATASETS["missing_classes"]
    pred = probs.argmax(axis=1)
    confusion = confusion_matrix(targets, pred, c)
    report = per_class_report(confusion)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        precision, recall, f1, support = skm.precision_recall_fscore_support(
            targets, pred, labels=list(range(c)), zero_division=0
        )
    np.testing.assert_allclose(report.precision, precision)
    np.testing.assert_allclose(report.recall, recall)
    np.testing.assert_allclose(report.f1, f1)
    np.testing.assert_array_equal(report.support, support)
    np.testing.assert_array_equal(report.pred_count, np.bincount(pred, minlength=c))
    np.testing.assert_allclose(report.accuracy, recall)
    # One definition: the macro F1 is the mean of the per-class F1.
    assert report.f1.mean() == pytest.approx(float(f1_macro_from_confusion(confusion)))
    records = report.records()
    assert [r["class_index"] for r in records] == list(range(c))
    assert records[0]["support"] == int(support[0])
    assert isinstance(records[0]["f1"], float)


# -------------------------------------------------------------------------------------------
# Calibration
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["balanced", "imbalanced", "all_correct", "single_sample"])
def test_calibration_bins_match_a_naive_loop(dataset: str) -> None:
    probs, targets, _ = DATASETS[dataset]
    confidences, correct = probs.max(axis=1), probs.argmax(axis=1) == targets
    bins = calibration_bins(confidences, correct, n_bins=15)
    naive = _naive_calibration(confidences, correct, 15)
    np.testing.assert_array_equal(bins.counts, [count for count, _, _ in naive])
    np.testing.assert_allclose(bins.mean_confidence, [m for _, m, _ in naive], equal_nan=True)
    np.testing.assert_allclose(bins.accuracy, [a for _, _, a in naive], equal_nan=True)
    gaps = [abs(a - m) for count, m, a in naive if count]
    assert max_calibration_error(confidences, correct) == pytest.approx(max(gaps))
    assert expected_calibration_error(confidences, correct) == pytest.approx(
        _naive_ece(confidences, correct)
    )
    records = bins.records()
    assert len(records) == 15 and records[-1]["upper"] == 1.0
    assert all((r["count"] == 0) == (r["accuracy"] is None) for r in records)


def test_calibration_bins_are_right_closed() -> None:
    bins = calibration_bins([0.0, 0.5, 1.0], [1, 0, 1], n_bins=2)
    np.testing.assert_array_equal(bins.counts, [2, 1])  # 0 and 0.5 in (0, 0.5]; 1.0 in (0.5, 1]
    assert expected_calibration_error([], [], n_bins=15) is None


def test_ece_of_confident_correct_predictions_is_their_underconfidence() -> None:
    probs, targets, _ = DATASETS["all_correct"]
    metrics = classification_metrics(probs, targets, num_classes=6)
    assert metrics["ece"] == pytest.approx(1.0 - probs.max(axis=1).mean())


@pytest.mark.parametrize("dataset", ["balanced", "missing_classes", "binary"])
def test_brier_score_is_the_sum_of_per_class_brier_losses(dataset: str) -> None:
    probs, targets, c = DATASETS[dataset]
    expected = sum(
        skm.brier_score_loss((targets == k).astype(int), probs[:, k], pos_label=1) for k in range(c)
    )
    assert brier_score(probs, targets) == pytest.approx(expected)


# -------------------------------------------------------------------------------------------
# Bootstrap confidence intervals
# -------------------------------------------------------------------------------------------


def _predictions(seed: int, n: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    probs, targets = _dataset(seed, n, 5, signal=1.0)
    return targets, probs.argmax(axis=1)


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    y_true, y_pred = _predictions(11, 300)
    first = bootstrap_ci(f1_macro_from_confusion, y_true, y_pred, num_classes=5, seed=3)
    again = bootstrap_ci(f1_macro_from_confusion, y_true, y_pred, num_classes=5, seed=3)
    other = bootstrap_ci(f1_macro_from_confusion, y_true, y_pred, num_classes=5, seed=4)
    assert first == again
    assert first != other


def test_bootstrap_equals_a_per_resample_loop() -> None:
    y_true, y_pred = _predictions(12, 60)
    n_resamples, seed = 200, 5
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, 60, size=(n_resamples, 60))  # one chunk at this size
    values = [skm.accuracy_score(y_true[i], y_pred[i]) for i in indices]
    expected = tuple(np.quantile(values, [0.025, 0.975]))
    actual = bootstrap_ci(
        accuracy_from_confusion, y_true, y_pred, num_classes=5, n_resamples=n_resamples, seed=seed
    )
    assert actual == pytest.approx(expected)


@pytest.mark.parametrize("name", ["accuracy", "f1_macro", "balanced_accuracy", "cohen_kappa"])
def test_bootstrap_interval_contains_the_estimate_and_narrows_with_n(name: str) -> None:
    metric = CONFUSION_METRICS[name]
    widths = []
    for n in (200, 3000):
        y_true, y_pred = _predictions(13, n)
        interval = bootstrap_ci(metric, y_true, y_pred, num_classes=5, n_resamples=400, seed=0)
        assert interval is not None
        low, high = interval
        assert low <= float(metric(confusion_matrix(y_true, y_pred, 5))) <= high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2  # ~1/sqrt(N): 15x the data, about 1/4 the width


def test_bootstrap_of_an_always_undefined_metric_is_none() -> None:
    zeros = np.zeros(30, dtype=np.int64)
    assert bootstrap_ci(cohen_kappa_from_confusion, zeros, zeros, num_classes=3) is None


def test_bootstrap_mean_ci() -> None:
    values = np.random.default_rng(14).exponential(size=500)
    interval = bootstrap_mean_ci(values, n_resamples=500, seed=1)
    assert interval == bootstrap_mean_ci(values, n_resamples=500, seed=1)
    assert interval is not None and interval[0] < values.mean() < interval[1]


def test_bootstrap_rejects_bad_arguments() -> None:
    y = np.array([0, 1, 1])
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci(accuracy_from_confusion, y, y, num_classes=2, alpha=1.5)
    with pytest.raises(ValueError, match="at least one sample"):
        bootstrap_ci(accuracy_from_confusion, y[:0], y[:0], num_classes=2)
    with pytest.raises(ValueError, match=r"y_pred must lie in \[0, 1\]"):
        bootstrap_ci(accuracy_from_confusion, y, y + 1, num_classes=2)


# -------------------------------------------------------------------------------------------
# The task object: loss, probabilities, decoding, robustness
# -------------------------------------------------------------------------------------------


def test_task_satisfies_the_protocol() -> None:
    task = ClassificationTask()
    assert isinstance(task, Task)
    assert task.name == "classification"


def test_per_sample_loss_is_cross_entropy() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 9, generator=generator, dtype=torch.float64) * 3
    targets = torch.randint(0, 9, (64,), generator=generator, dtype=torch.int32)
    loss = ClassificationTask().per_sample_loss(logits, targets)
    by_hand = torch.logsumexp(logits, dim=1) - logits[torch.arange(64), targets.long()]
    assert loss.shape == (64,) and loss.dtype == torch.float64
    torch.testing.assert_close(loss, by_hand)
    torch.testing.assert_close(loss, F.cross_entropy(logits, targets.long(), reduction="none"))
    # The metrics' loss (from stored probabilities) is the same number, over the whole set.
    probs = ClassificationTask().probabilities(logits).numpy()
    metrics = classification_metrics(probs, targets.numpy(), num_classes=9)
    assert metrics["loss"] == pytest.approx(loss.mean().item(), rel=1e-9)


def test_tensor_methods_keep_the_device() -> None:
    # "meta" tensors have no data: any hidden .cpu() or .numpy() would fail here.
    task = ClassificationTask()
    logits = torch.empty(8, 4, device="meta")
    targets = torch.empty(8, dtype=torch.long, device="meta")
    assert task.per_sample_loss(logits, targets).device.type == "meta"
    assert task.probabilities(logits).device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tensor_methods_on_cuda() -> None:
    task = ClassificationTask()
    logits = torch.randn(16, 5, device="cuda")
    targets = torch.randint(0, 5, (16,), device="cuda")
    loss = task.per_sample_loss(logits, targets)
    assert loss.device == logits.device
    torch.testing.assert_close(loss.cpu(), task.per_sample_loss(logits.cpu(), targets.cpu()))
    assert task.probabilities(logits).device == logits.device


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_probabilities_dtypes(dtype: torch.dtype) -> None:
    logits = (torch.randn(10, 6, generator=torch.Generator().manual_seed(1)) * 4).to(dtype)
    probs = ClassificationTask().probabilities(logits)
    expected_dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    assert probs.dtype == expected_dtype
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(10, dtype=expected_dtype))
    probs.numpy()  # bfloat16 could not be converted


def test_non_finite_logits_are_counted_not_scored() -> None:
    task = ClassificationTask()
    probs_ok, targets = _dataset(15, 40, 4)
    logits = torch.from_numpy(np.log(probs_ok))
    logits[0, 1] = float("nan")
    logits[1, 2] = float("inf")
    logits[2, :] = float("-inf")
    logits[3, 0] = float("-inf")  # a masked class in an otherwise finite row: legitimate
    probs = task.probabilities(logits).numpy()
    assert np.isnan(probs[:3]).all()
    assert probs[3, 0] == 0.0 and np.isfinite(probs[3:]).all()
    decoded = task.decode(probs)
    assert (decoded[:3] == -1).all() and (decoded[3:] == probs[3:].argmax(axis=1)).all()

    metrics = task.compute_metrics(probs, targets, num_classes=4)
    assert metrics["nonfinite_rows"] == 3
    on_finite_rows = classification_metrics(probs[3:], targets[3:], num_classes=4)
    assert {k: v for k, v in metrics.items() if k != "nonfinite_rows"} == {
        k: v for k, v in on_finite_rows.items() if k != "nonfinite_rows"
    }

    all_nan = task.compute_metrics(np.full((5, 4), np.nan), targets[:5], num_classes=4)
    assert all_nan["nonfinite_rows"] == 5
    assert all(v is None for k, v in all_nan.items() if k != "nonfinite_rows")


def test_empty_set_gives_undefined_metrics() -> None:
    metrics = classification_metrics(np.zeros((0, 3)), np.zeros(0, dtype=np.int64), num_classes=3)
    assert metrics["nonfinite_rows"] == 0
    assert all(v is None for k, v in metrics.items() if k != "nonfinite_rows")


@pytest.mark.parametrize(
    ("probs", "targets", "message"),
    [
        (np.full((4, 3), 1 / 3), np.array([0, 1, 2, 1]), r"shape \(N, 5\)"),
        (np.full((4, 5), 0.2), np.array([0, 1, 2]), r"targets must have shape \(4,\)"),
        (np.full((4, 5), 0.2), np.array([0.0, 1.0, 2.0, 1.0]), "integer class indices"),
        (np.full((4, 5), 0.2), np.array([0, 1, 5, 1]), r"targets must lie in \[0, 4\]"),
        (np.full((4, 5), 3.0), np.array([0, 1, 2, 1]), "not raw logits"),
    ],
)
def test_bad_inputs_get_a_clear_error(
    probs: NDArray[Any], targets: NDArray[Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ClassificationTask().compute_metrics(probs, targets, num_classes=5)


# -------------------------------------------------------------------------------------------
# Registration and import cost
# -------------------------------------------------------------------------------------------


def test_registers_through_the_hook(register_temp_plugin: Any, bnnr_host: Any) -> None:
    record = register_temp_plugin(bnnr_classification, name="classification")
    assert record.provides == {"task": ("classification",)}
    component = bnnr_host.component("task", "classification")
    assert "cross-entropy" in component.description
    task = component.create()
    assert isinstance(task, Task) and isinstance(task, ClassificationTask)


def test_several_intervals_from_the_same_resamples_equal_one_at_a_time() -> None:
    from bnnr_classification.bootstrap import bootstrap_ci, bootstrap_cis
    from bnnr_classification.metrics import CONFUSION_METRICS

    rng = np.random.default_rng(7)
    y_true = rng.integers(0, 4, 300)
    y_pred = np.where(rng.random(300) < 0.7, y_true, rng.integers(0, 4, 300))
    together = bootstrap_cis(
        CONFUSION_METRICS, y_true, y_pred, num_classes=4, n_resamples=300, seed=3
    )
    for name, metric in CONFUSION_METRICS.items():
        alone = bootstrap_ci(metric, y_true, y_pred, num_classes=4, n_resamples=300, seed=3)
        assert together[name] == alone, name
