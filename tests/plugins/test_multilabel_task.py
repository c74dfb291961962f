"""The built-in ``multilabel`` task: every number against an independent computation.

References: scikit-learn for the metrics, torch for the loss, brute-force loops for threshold
tuning.
"""

from __future__ import annotations

import warnings
from typing import Any

import bnnr_multilabel
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from bnnr_multilabel.metrics import (
    auroc_per_label,
    average_precision_per_label,
    multilabel_metrics,
    per_label_report,
)
from bnnr_multilabel.task import MultilabelTask
from bnnr_multilabel.thresholds import DEFAULT_GRID, f1_over_grid, tune_thresholds
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from sklearn import metrics as skm

from bnnr_core.protocols import Task

# -------------------------------------------------------------------------------------------
# Data sets and independent references
# -------------------------------------------------------------------------------------------


def _sigmoid(logits: NDArray[np.float64]) -> NDArray[np.float64]:
    return torch.sigmoid(torch.from_numpy(logits)).numpy()


def _dataset(
    seed: int, n: int, c: int, *, prevalence: float | list[float] = 0.3, signal: float = 1.5
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, c)) < np.asarray(prevalence)).astype(np.int64)
    logits = rng.normal(size=(n, c)) - 1.0 + signal * targets
    return _sigmoid(logits), targets


def _with_degenerate_labels() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    probs, targets = _dataset(3, 120, 6)
    targets[:, 1] = 0  # never present
    targets[:, 2] = 1  # always present
    probs[:, 4] = 0.01  # never predicted
    return probs, targets


def _all_correct() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    probs, targets = _dataset(4, 80, 5, signal=30.0)
    probs = np.where(targets == 1, 0.99, 0.01)
    return probs, targets


DATASETS: dict[str, tuple[NDArray[Any], NDArray[np.int64], int]] = {
    "random": (*_dataset(0, 400, 8), 8),
    "imbalanced": (*_dataset(1, 500, 6, prevalence=[0.5, 0.2, 0.05, 0.02, 0.01, 0.3]), 6),
    "degenerate_labels": (*_with_degenerate_labels(), 6),
    "sparse_predictions": (*_dataset(2, 200, 5, prevalence=0.1, signal=0.5), 5),
    "all_correct": (*_all_correct(), 5),
    "single_sample": (*_dataset(5, 1, 4, prevalence=0.5), 4),
    "float32": (_dataset(6, 300, 7)[0].astype(np.float32), _dataset(6, 300, 7)[1], 7),
    "tied_scores": (np.round(_dataset(7, 300, 6)[0], 1), _dataset(7, 300, 6)[1], 6),
}


def _mean_over_defined_labels(
    metric: Any, targets: NDArray[np.int64], probs: NDArray[Any], need_negatives: bool
) -> float | None:
    values = []
    for label in range(targets.shape[1]):
        positives = targets[:, label].sum()
        negatives = targets.shape[0] - positives
        if positives > 0 and (negatives > 0 or not need_negatives):
            values.append(metric(targets[:, label], probs[:, label]))
    return float(np.mean(values)) if values else None


def _sklearn_reference(
    probs: NDArray[Any], targets: NDArray[np.int64], threshold: Any = 0.5
) -> dict[str, Any]:
    pred = (probs >= threshold).astype(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")

        def score(fn: Any, average: str) -> float:
            return float(fn(targets, pred, average=average, zero_division=0))

        reference: dict[str, Any] = {
            f"{prefix}_{average}": score(fn, average)
            for prefix, fn in (
                ("f1", skm.f1_score),
                ("precision", skm.precision_score),
                ("recall", skm.recall_score),
            )
            for average in ("micro", "macro")
        }
        reference["f1_samples"] = score(skm.f1_score, "samples")
        reference["subset_accuracy"] = reference["accuracy"] = skm.accuracy_score(targets, pred)
        reference["hamming_loss"] = skm.hamming_loss(targets, pred)
        reference["mean_average_precision"] = _mean_over_defined_labels(
            skm.average_precision_score, targets, probs, need_negatives=False
        )
        reference["auroc_macro"] = _mean_over_defined_labels(
            skm.roc_auc_score, targets, probs, need_negatives=True
        )
    # Clipped to [eps, 1 - eps] as documented, so exact 0/1 probabilities have finite logits.
    logits = torch.logit(torch.from_numpy(probs.astype(np.float64)), eps=np.finfo(probs.dtype).eps)
    reference["loss"] = F.binary_cross_entropy_with_logits(
        logits, torch.from_numpy(targets).double()
    ).item()
    return reference


# -------------------------------------------------------------------------------------------
# Metrics over a whole set
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", DATASETS)
def test_metrics_match_sklearn(dataset: str) -> None:
    probs, targets, c = DATASETS[dataset]
    metrics = MultilabelTask().compute_metrics(probs, targets, num_classes=c)
    expected = _sklearn_reference(probs, targets)
    assert set(metrics) == {*expected, "nonfinite_rows"}
    assert metrics["nonfinite_rows"] == 0
    for name, value in expected.items():
        if value is None:
            assert metrics[name] is None, name
        else:
            assert isinstance(metrics[name], float), name
            assert metrics[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


@pytest.mark.parametrize("dataset", DATASETS)
def test_metrics_raise_no_numpy_warnings(dataset: str) -> None:
    probs, targets, c = DATASETS[dataset]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        multilabel_metrics(probs, targets, num_classes=c)


def test_per_label_thresholds_are_used() -> None:
    probs, targets, c = DATASETS["random"]
    thresholds = np.linspace(0.2, 0.8, c)
    task = MultilabelTask(threshold=thresholds)
    metrics = task.compute_metrics(probs, targets, num_classes=c)
    expected = _sklearn_reference(probs, targets, threshold=thresholds)
    for name in ("f1_macro", "f1_samples", "hamming_loss", "subset_accuracy"):
        assert metrics[name] == pytest.approx(expected[name]), name


def test_undefined_ranking_metrics_are_none() -> None:
    probs = np.full((10, 3), 0.2)
    metrics = multilabel_metrics(probs, np.zeros((10, 3), dtype=int), num_classes=3)
    assert metrics["mean_average_precision"] is None
    assert metrics["auroc_macro"] is None
    assert metrics["f1_samples"] == 0.0  # no true and no predicted labels: zero_division=0
    assert metrics["subset_accuracy"] == 1.0


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=1, max_value=30).flatmap(
        lambda n: st.tuples(
            st.lists(
                st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), min_size=3, max_size=3),
                min_size=n,
                max_size=n,
            ),
            st.lists(st.lists(st.integers(0, 1), min_size=3, max_size=3), min_size=n, max_size=n),
        )
    )
)
def test_ranking_metrics_match_sklearn_with_ties(case: tuple[list[Any], list[Any]]) -> None:
    probs, targets = np.array(case[0]), np.array(case[1])
    ap = average_precision_per_label(probs, targets)
    auc = auroc_per_label(probs, targets)
    for label in range(3):
        positives = targets[:, label].sum()
        if positives == 0:
            assert np.isnan(ap[label])
        else:
            expected = skm.average_precision_score(targets[:, label], probs[:, label])
            assert ap[label] == pytest.approx(expected, abs=1e-12)
        if 0 < positives < len(targets):
            expected = skm.roc_auc_score(targets[:, label], probs[:, label])
            assert auc[label] == pytest.approx(expected, abs=1e-12)
        else:
            assert np.isnan(auc[label])


def test_per_label_report_matches_sklearn() -> None:
    probs, targets, c = DATASETS["degenerate_labels"]
    pred = (probs >= 0.5).astype(int)
    report = per_label_report(pred, targets)
    confusion = skm.multilabel_confusion_matrix(targets, pred)  # [[tn, fp], [fn, tp]] per label
    np.testing.assert_array_equal(report.tn, confusion[:, 0, 0])
    np.testing.assert_array_equal(report.fp, confusion[:, 0, 1])
    np.testing.assert_array_equal(report.fn, confusion[:, 1, 0])
    np.testing.assert_array_equal(report.tp, confusion[:, 1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        precision, recall, f1, support = skm.precision_recall_fscore_support(
            targets, pred, zero_division=0
        )
    np.testing.assert_allclose(report.precision, precision)
    np.testing.assert_allclose(report.recall, recall)
    np.testing.assert_allclose(report.f1, f1)
    np.testing.assert_array_equal(report.support, support)
    np.testing.assert_array_equal(report.pred_count, pred.sum(axis=0))
    np.testing.assert_allclose(report.accuracy, (pred == targets).mean(axis=0))
    records = report.records()
    assert [r["label_index"] for r in records] == list(range(c))
    assert set(records[0]) >= {"tp", "fp", "fn", "tn", "precision", "recall", "f1", "support"}


# -------------------------------------------------------------------------------------------
# Threshold tuning
# -------------------------------------------------------------------------------------------


def _brute_force_f1(
    probs: NDArray[Any], targets: NDArray[Any], grid: NDArray[np.float64]
) -> NDArray[np.float64]:
    f1 = np.zeros((targets.shape[1], grid.shape[0]))
    for label in range(targets.shape[1]):
        for k, threshold in enumerate(grid):
            f1[label, k] = skm.f1_score(
                targets[:, label], probs[:, label] >= threshold, zero_division=0
            )
    return f1


@pytest.mark.parametrize("dataset", ["imbalanced", "degenerate_labels", "tied_scores"])
def test_f1_over_grid_matches_a_brute_force_loop(dataset: str) -> None:
    probs, targets, _ = DATASETS[dataset]
    grid = np.round(np.arange(0, 21) / 20, 2)  # includes 0, 1 and values equal to tied scores
    np.testing.assert_allclose(
        f1_over_grid(probs, targets, grid), _brute_force_f1(probs, targets, grid)
    )


def test_tuned_thresholds_are_the_middle_maximiser() -> None:
    probs, targets, c = DATASETS["imbalanced"]
    thresholds = tune_thresholds(probs, targets)
    brute = _brute_force_f1(probs, targets, DEFAULT_GRID)
    for label in range(c):
        maximisers = np.flatnonzero(np.isclose(brute[label], brute[label].max()))
        assert thresholds[label] == DEFAULT_GRID[maximisers[(len(maximisers) - 1) // 2]]
    tuned = multilabel_metrics(probs, targets, num_classes=c, threshold=thresholds)
    default = multilabel_metrics(probs, targets, num_classes=c)
    assert tuned["f1_macro"] >= default["f1_macro"]  # type: ignore[operator]


def test_labels_without_a_useful_threshold_keep_the_default() -> None:
    probs, targets, _ = DATASETS["degenerate_labels"]
    thresholds = tune_thresholds(probs, targets, default=0.42)
    assert thresholds[1] == 0.42  # no positives: no threshold reaches F1 > 0
    separable = np.array([[0.9, 0.2], [0.8, 0.1], [0.1, 0.3], [0.2, 0.6]])
    labels = np.array([[1, 0], [1, 0], [0, 0], [0, 1]])
    tuned = tune_thresholds(separable, labels, grid=[0.1, 0.3, 0.5, 0.7, 0.9])
    # Label 0: 0.3, 0.5, 0.7 separate perfectly; the middle one is chosen.
    assert tuned[0] == 0.5


# -------------------------------------------------------------------------------------------
# The task object: loss, probabilities, decoding, robustness
# -------------------------------------------------------------------------------------------


def test_task_satisfies_the_protocol() -> None:
    task = MultilabelTask()
    assert isinstance(task, Task)
    assert task.name == "multilabel" and task.threshold == 0.5


def test_per_sample_loss_is_mean_bce_over_labels() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 5, generator=generator, dtype=torch.float64) * 3
    targets = torch.randint(0, 2, (32, 5), generator=generator)  # integer targets accepted
    loss = MultilabelTask().per_sample_loss(logits, targets)
    y = targets.double()
    by_hand = (logits.clamp(min=0) - logits * y + torch.log1p(torch.exp(-logits.abs()))).mean(1)
    assert loss.shape == (32,) and loss.dtype == torch.float64
    torch.testing.assert_close(loss, by_hand)
    probs = MultilabelTask().probabilities(logits).numpy()
    metrics = multilabel_metrics(probs, targets.numpy(), num_classes=5)
    assert metrics["loss"] == pytest.approx(loss.mean().item(), rel=1e-9)


def test_tensor_methods_keep_the_device() -> None:
    task = MultilabelTask()
    logits = torch.empty(8, 4, device="meta")
    targets = torch.empty(8, 4, dtype=torch.long, device="meta")
    assert task.per_sample_loss(logits, targets).device.type == "meta"
    assert task.probabilities(logits).device.type == "meta"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tensor_methods_on_cuda() -> None:
    task = MultilabelTask()
    logits = torch.randn(16, 5, device="cuda")
    targets = torch.randint(0, 2, (16, 5), device="cuda")
    loss = task.per_sample_loss(logits, targets)
    assert loss.device == logits.device
    torch.testing.assert_close(loss.cpu(), task.per_sample_loss(logits.cpu(), targets.cpu()))
    assert task.probabilities(logits).device == logits.device


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_probabilities_dtypes(dtype: torch.dtype) -> None:
    logits = torch.randn(10, 6, generator=torch.Generator().manual_seed(1)).to(dtype)
    probs = MultilabelTask().probabilities(logits)
    expected_dtype = dtype if dtype in (torch.float32, torch.float64) else torch.float32
    assert probs.dtype == expected_dtype
    torch.testing.assert_close(probs, torch.sigmoid(logits.to(expected_dtype)))
    probs.numpy()


def test_decode_with_scalar_and_per_label_thresholds() -> None:
    probs = np.array([[0.5, 0.49, 0.9], [0.2, 0.7, np.nan]])
    task = MultilabelTask()
    np.testing.assert_array_equal(task.decode(probs), [[1, 0, 1], [0, 1, 0]])  # p >= t
    np.testing.assert_array_equal(task.decode(probs, threshold=0.8), [[0, 0, 1], [0, 0, 0]])
    np.testing.assert_array_equal(
        task.decode(probs, threshold=[0.6, 0.4, 0.95]), [[0, 1, 0], [0, 1, 0]]
    )
    tuned = MultilabelTask(threshold=[0.1, 0.9, 0.5])
    np.testing.assert_array_equal(tuned.decode(probs), [[1, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match="one value per label"):
        task.decode(probs, threshold=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        MultilabelTask(threshold=1.5)


def test_non_finite_rows_are_counted_not_scored() -> None:
    task = MultilabelTask()
    probs, targets, c = DATASETS["random"]
    logits = torch.logit(torch.from_numpy(probs.copy()))
    logits[0, 1] = float("nan")
    logits[1, :] = float("nan")
    logits[2, 0] = float("inf")  # saturates to 1: finite, scored
    noisy = task.probabilities(logits).numpy()
    metrics = task.compute_metrics(noisy, targets, num_classes=c)
    assert metrics["nonfinite_rows"] == 2
    expected = multilabel_metrics(noisy[2:], targets[2:], num_classes=c)
    assert metrics == {**expected, "nonfinite_rows": 2}

    all_nan = task.compute_metrics(np.full((3, c), np.nan), targets[:3], num_classes=c)
    assert all_nan["nonfinite_rows"] == 3
    assert all(v is None for k, v in all_nan.items() if k != "nonfinite_rows")


@pytest.mark.parametrize(
    ("probs", "targets", "message"),
    [
        (np.full((4, 3), 0.5), np.zeros((4, 3)), r"shape \(N, 5\)"),
        (np.full((4, 5), 0.5), np.zeros(4), "multi-hot with the shape"),
        (np.full((4, 5), 0.5), np.full((4, 5), 2), "must be 0 or 1"),
        (np.full((4, 5), -2.0), np.zeros((4, 5)), "not raw logits"),
    ],
)
def test_bad_inputs_get_a_clear_error(
    probs: NDArray[Any], targets: NDArray[Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        MultilabelTask().compute_metrics(probs, targets, num_classes=5)


# -------------------------------------------------------------------------------------------
# Registration and import cost
# -------------------------------------------------------------------------------------------


def test_registers_through_the_hook(register_temp_plugin: Any, bnnr_host: Any) -> None:
    record = register_temp_plugin(bnnr_multilabel, name="multilabel")
    assert record.provides == {"task": ("multilabel",)}
    component = bnnr_host.component("task", "multilabel")
    assert "sigmoid" in component.description
    assert isinstance(component.create(), Task)
    task = component.create(threshold=0.3)
    assert isinstance(task, MultilabelTask) and task.threshold == 0.3
