"""Report sections of a single-label classifier, built from cached predictions (pure numpy).

:func:`classification_sections` turns one evaluation pass (probabilities, targets, per-sample
loss) into the classification sections of ``analysis_report.json``. Key shapes follow BNNR 0.7
(class ids as strings ``"0".."C-1"``, ``confusion.labels`` as ints) with its known defects fixed:
metrics come from the whole set (never per-batch means), the collapse flag can fire, diagnostics
rank the worst class first inside each severity, ``n_bins`` is an int, and nothing is rounded.

Rows whose probabilities hold a non-finite value (what softmax gives for NaN/inf logits) are left
out of every section and counted in ``metrics.nonfinite_rows`` and
``confusion.excluded_nonfinite``. Everything returned is plain Python (JSON-friendly); a value
that is undefined is ``None``. Results are a pure function of the inputs and ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from bnnr_classification.bootstrap import bootstrap_cis, bootstrap_mean_ci
from bnnr_classification.calibration import (
    brier_score,
    calibration_bins,
    expected_calibration_error,
    max_calibration_error,
)
from bnnr_classification.metrics import (
    CONFUSION_METRICS,
    ECE_BINS,
    FloatArray,
    IntArray,
    check_inputs,
    classification_metrics,
    cohen_kappa_from_confusion,
    confusion_matrix,
    finite_rows,
    per_class_report,
)

#: Two-sided error rate of the bootstrap intervals (95 % intervals).
ALPHA = 0.05
#: A class is over-predicted above ``OVER_RATIO`` times its true count (``6/5``, compared exactly
#: on integers) and under-predicted below ``UNDER_RATIO`` times it (``4/5``).
OVER_RATIO = (6, 5)
UNDER_RATIO = (4, 5)
#: Longest over-/under-predicted list in ``distribution_summary``.
MAX_DISTRIBUTION_ENTRIES = 10
#: ``calibration_summary.direction`` is "calibrated" when ``|confidence_gap|`` is below this.
CALIBRATED_GAP = 0.02
#: Metrics recomputed on every fold of ``cv_results``.
CV_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "cohen_kappa")
#: Sort order of ``class_diagnostics`` severities (worst first).
SEVERITY_ORDER = ("critical", "warning", "ok")

COLLAPSE_RULE = (
    "possible_collapse is true when the most-predicted class k takes a share of the predictions "
    "s_pred >= max(0.5, s_true + (1 - s_true) / 2), s_true being its share of the true labels, "
    "i.e. when k absorbs at least half of the predictions that belong to other classes "
    "(never for a set whose labels are all k)."
)
CV_NOTE = (
    "No model is retrained: the cached predictions of the evaluation set are split into disjoint "
    "stratified folds and the metrics recomputed on each, so this measures metric variability "
    "over disjoint subsets of the evaluation set; std is the population standard deviation "
    "(ddof=0) and a kappa undefined in a fold is None and left out of its mean and std."
)


def classification_sections(
    probabilities: ArrayLike,
    targets: ArrayLike,
    per_sample_loss: ArrayLike,
    *,
    class_names: Sequence[str],
    sample_ids: Sequence[str] = (),
    seed: int = 0,
    cv_folds: int = 0,
    n_bootstrap: int = 1000,
    max_errors: int = 20,
) -> dict[str, Any]:
    """Classification sections of the analysis report.

    :param probabilities: ``(N, C)`` softmax output; a row with a non-finite value is excluded
        from every section and counted.
    :param targets: ``(N,)`` integer classes in ``[0, C)``.
    :param per_sample_loss: ``(N,)`` loss of every sample (only ``confident_errors`` uses it).
    :param class_names: ``C`` display names, carried next to every class id.
    :param sample_ids: ``N`` ids for ``confident_errors``, or empty for ``str(index)``.
    :param seed: seed of the bootstrap resamples and of the fold assignment.
    :param cv_folds: number of folds of ``cv_results``; 0 leaves it empty.
    :param n_bootstrap: bootstrap resamples per interval of ``metrics_ci``.
    :param max_errors: longest ``confident_errors`` list.
    :returns: ``metrics``, ``metrics_ci``, ``per_class_accuracy``, ``confusion``,
        ``true_distribution``, ``pred_distribution``, ``distribution_summary``,
        ``class_diagnostics``, ``calibration_summary``, ``cv_results``, ``confident_errors``.
    :raises ValueError: for inconsistent shapes or out-of-range arguments.
    """
    probs_all = np.asarray(probabilities)
    if probs_all.ndim != 2:
        raise ValueError(f"probabilities must have shape (N, C), got {probs_all.shape}")
    num_classes = probs_all.shape[1]
    if len(class_names) != num_classes:
        raise ValueError(
            f"class_names has {len(class_names)} names but probabilities have {num_classes} "
            "columns; pass one name per class"
        )
    probs_all, labels_all = check_inputs(probs_all, targets, num_classes)
    n_rows = labels_all.shape[0]
    losses_all = np.asarray(per_sample_loss, dtype=np.float64)
    if losses_all.shape != (n_rows,):
        raise ValueError(
            f"per_sample_loss must have shape ({n_rows},) to match probabilities, "
            f"got {losses_all.shape}"
        )
    if len(sample_ids) not in (0, n_rows):
        raise ValueError(
            f"sample_ids must hold one id per row ({n_rows}) or be empty, got {len(sample_ids)}"
        )
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be at least 1, got {n_bootstrap}")
    if max_errors < 0:
        raise ValueError(f"max_errors must be 0 or more, got {max_errors}")

    keep = finite_rows(probs_all)
    rows = np.flatnonzero(keep)
    if cv_folds < 0 or cv_folds == 1 or cv_folds > rows.size:
        raise ValueError(
            f"cv_folds must be 0 (off) or between 2 and the number of finite rows ({rows.size}), "
            f"got {cv_folds}"
        )
    probs, labels = probs_all[keep], labels_all[keep]
    predictions = np.argmax(probs, axis=1).astype(np.int64)
    confusion = confusion_matrix(labels, predictions, num_classes)
    names = [str(name) for name in class_names]
    true_counts, pred_counts = confusion.sum(axis=1), confusion.sum(axis=0)
    report = per_class_report(confusion)
    return {
        "metrics": classification_metrics(probs_all, labels_all, num_classes=num_classes),
        "metrics_ci": _metrics_ci(probs, labels, predictions, num_classes, seed, n_bootstrap),
        "per_class_accuracy": {
            str(i): {
                "accuracy": float(report.accuracy[i]),
                "support": int(report.support[i]),
                "class_name": names[i],
            }
            for i in np.flatnonzero(report.support > 0)
        },
        "confusion": {
            "labels": list(range(num_classes)),
            "class_names": names,
            "matrix": confusion.tolist(),
            "excluded_nonfinite": int(n_rows - rows.size),
        },
        "true_distribution": _distribution(true_counts),
        "pred_distribution": _distribution(pred_counts),
        "distribution_summary": _distribution_summary(true_counts, pred_counts, names),
        "class_diagnostics": _class_diagnostics(confusion, names),
        "calibration_summary": _calibration_summary(probs, labels, predictions),
        "cv_results": (
            _cv_results(labels, predictions, num_classes, cv_folds, seed) if cv_folds else {}
        ),
        "confident_errors": _confident_errors(
            probs, labels, predictions, rows, losses_all, names, sample_ids, max_errors
        ),
    }


# -------------------------------------------------------------------------------------------
# Sections
# -------------------------------------------------------------------------------------------


def row_log_loss(probabilities: NDArray[np.floating[Any]], targets: IntArray) -> FloatArray:
    """Per-row ``-log p[i, y_i]``, clipped exactly as
    :func:`bnnr_classification.metrics.log_loss` does, so its mean is that function's value."""
    eps = float(np.finfo(probabilities.dtype).eps)
    true_class = probabilities[np.arange(targets.shape[0]), targets].astype(np.float64)
    return np.asarray(-np.log(np.clip(true_class, eps, 1 - eps)))


def _metrics_ci(
    probs: NDArray[np.floating[Any]],
    labels: IntArray,
    predictions: IntArray,
    num_classes: int,
    seed: int,
    n_bootstrap: int,
) -> dict[str, Any]:
    """Percentile-bootstrap intervals of every confusion metric and of the loss; one seed for
    all, so every interval comes from the same resamples."""
    intervals: dict[str, dict[str, float] | None] = dict.fromkeys([*CONFUSION_METRICS, "loss"])
    if labels.size:
        bounds = bootstrap_cis(
            CONFUSION_METRICS,
            labels,
            predictions,
            num_classes=num_classes,
            n_resamples=n_bootstrap,
            seed=seed,
            alpha=ALPHA,
        )
        for name, interval in bounds.items():
            intervals[name] = _interval(interval)
        intervals["loss"] = _interval(
            bootstrap_mean_ci(
                row_log_loss(probs, labels), n_resamples=n_bootstrap, seed=seed, alpha=ALPHA
            )
        )
    return {
        "confidence_level": 1 - ALPHA,
        "method": "percentile_bootstrap",
        "n_resamples": int(n_bootstrap),
        "seed": int(seed),
        "intervals": intervals,
    }


def _interval(bounds: tuple[float, float] | None) -> dict[str, float] | None:
    return None if bounds is None else {"low": bounds[0], "high": bounds[1]}


def _distribution(counts: IntArray) -> dict[str, int]:
    return {str(i): int(count) for i, count in enumerate(counts)}


def _distribution_summary(
    true_counts: IntArray, pred_counts: IntArray, names: list[str]
) -> dict[str, Any]:
    """Over-/under-predicted classes and the collapse flag (see :data:`COLLAPSE_RULE`).

    Ratio thresholds are compared on integers (``5·pred > 6·true``), so a class exactly at
    1.2× is never flagged by a rounding step.
    """
    total = int(true_counts.sum())
    present = true_counts > 0
    ratio = np.divide(
        pred_counts, true_counts, out=np.full(true_counts.shape, np.nan), where=present
    )
    classes = np.arange(true_counts.shape[0])

    def entries(selected: NDArray[np.bool_], descending: bool) -> list[dict[str, Any]]:
        index = classes[selected]
        key = -ratio[index] if descending else ratio[index]
        return [
            {
                "class": str(i),
                "class_name": names[i],
                "true": int(true_counts[i]),
                "pred": int(pred_counts[i]),
                "ratio": float(ratio[i]) if present[i] else None,
            }
            for i in index[np.lexsort((index, key))]
        ]

    over = entries(present & (OVER_RATIO[1] * pred_counts > OVER_RATIO[0] * true_counts), True)
    over += entries(~present & (pred_counts > 0), True)
    under = entries(present & (UNDER_RATIO[1] * pred_counts < UNDER_RATIO[0] * true_counts), False)
    # s_pred >= max(0.5, s_true + (1 - s_true)/2) is 2·pred >= total + true on counts (the max is
    # redundant: (1 + s_true)/2 >= 0.5). A class meeting it is a most-predicted one; two can
    # only both meet it at a 50/50 split of predictions, and the lower index is reported.
    fires = (2 * pred_counts >= total + true_counts) & (true_counts < total)
    collapse = int(np.flatnonzero(fires)[0]) if fires.any() else None
    return {
        "true_total": total,
        "pred_total": int(pred_counts.sum()),
        "over_predicted": over[:MAX_DISTRIBUTION_ENTRIES],
        "under_predicted": under[:MAX_DISTRIBUTION_ENTRIES],
        "possible_collapse": collapse is not None,
        "collapse_class": None if collapse is None else str(collapse),
        "collapse_share": None if collapse is None else float(pred_counts[collapse] / total),
        "rule": COLLAPSE_RULE,
    }


def _class_diagnostics(confusion: IntArray, names: list[str]) -> list[dict[str, Any]]:
    """Per-class diagnostics, worst first: by severity, then F1 ascending, then class index.

    The per-class kappa is Cohen's kappa of the one-vs-rest table ``[[TN, FP], [FN, TP]]``.
    """
    report = per_class_report(confusion)
    tp, support, predicted = report.true_positives, report.support, report.pred_count
    total = int(confusion.sum())
    one_vs_rest = np.stack(
        [
            np.stack([total - support - predicted + tp, predicted - tp], axis=-1),
            np.stack([support - tp, tp], axis=-1),
        ],
        axis=-2,
    )
    kappa = cohen_kappa_from_confusion(one_vs_rest)
    critical = (support > 0) & (report.recall == 0)
    warning = ((support > 0) & (report.recall < 0.5)) | ((predicted > 0) & (report.precision < 0.5))
    severity = np.where(critical, 0, np.where(warning, 1, 2))
    classes = np.arange(support.shape[0])
    order = np.lexsort((classes, report.f1, severity))
    return [
        {
            "class_id": str(i),
            "class_name": names[i],
            "accuracy": float(report.accuracy[i]),
            "precision": float(report.precision[i]),
            "recall": float(report.recall[i]),
            "f1": float(report.f1[i]),
            "support": int(support[i]),
            "pred_count": int(predicted[i]),
            "cohen_kappa": float(kappa[i]) if np.isfinite(kappa[i]) else None,
            "severity": SEVERITY_ORDER[severity[i]],
            "rank": rank,
        }
        for rank, i in enumerate(order, start=1)
    ]


def _calibration_summary(
    probs: NDArray[np.floating[Any]], labels: IntArray, predictions: IntArray
) -> dict[str, Any]:
    """Top-label calibration: ECE, MCE, Brier score, the confidence gap and its direction, and
    the reliability bins."""
    summary: dict[str, Any] = {
        "ece": None,
        "mce": None,
        "brier": None,
        "n_bins": ECE_BINS,
        "mean_confidence": None,
        "accuracy": None,
        "confidence_gap": None,
        "direction": None,
        "n_samples": int(labels.size),
        "bins": [],
    }
    if labels.size == 0:
        return summary
    # Clipped as in classification_metrics: float32 softmax can round a step above 1.
    confidences = np.clip(probs.max(axis=1).astype(np.float64), 0.0, 1.0)
    correct = predictions == labels
    mean_confidence = float(confidences.mean())
    accuracy = float(correct.mean())
    gap = mean_confidence - accuracy
    if abs(gap) < CALIBRATED_GAP:
        direction = "calibrated"
    else:
        direction = "overconfident" if gap > 0 else "underconfident"
    summary.update(
        ece=expected_calibration_error(confidences, correct, ECE_BINS),
        mce=max_calibration_error(confidences, correct, ECE_BINS),
        brier=brier_score(probs, labels),
        mean_confidence=mean_confidence,
        accuracy=accuracy,
        confidence_gap=gap,
        direction=direction,
        bins=calibration_bins(confidences, correct, ECE_BINS).records(),
    )
    return summary


def stratified_folds(labels: IntArray, num_classes: int, n_folds: int, seed: int) -> IntArray:
    """Fold of every row ``(N,)``: class by class (in index order, one
    ``numpy.random.default_rng(seed)`` for all), the class's row positions are shuffled and dealt
    round-robin, the deal continuing from the fold after the last one dealt to.

    Each class's count differs by at most one between folds, and so does each fold's size, so no
    fold is empty while ``n_folds <= N``.
    """
    rng = np.random.default_rng(seed)
    folds = np.empty(labels.shape[0], dtype=np.int64)
    dealt = 0
    for cls in range(num_classes):
        positions = rng.permutation(np.flatnonzero(labels == cls))
        folds[positions] = (dealt + np.arange(positions.size)) % n_folds
        dealt += positions.size
    return folds


def _cv_results(
    labels: IntArray, predictions: IntArray, num_classes: int, n_folds: int, seed: int
) -> dict[str, Any]:
    """Metric variability over disjoint stratified folds of the cached predictions (no
    retraining); metrics over all ``C`` labels, like the headline metrics."""
    folds = stratified_folds(labels, num_classes, n_folds, seed)
    cells = num_classes * num_classes
    stack = np.bincount(
        folds * cells + labels * num_classes + predictions, minlength=n_folds * cells
    ).reshape(n_folds, num_classes, num_classes)
    values = {name: CONFUSION_METRICS[name](stack) for name in CV_METRICS}
    class_support = stack.sum(axis=2)
    recall = np.diagonal(stack, axis1=1, axis2=2) / np.maximum(class_support, 1)

    global_metrics: dict[str, float | None] = {}
    for name in CV_METRICS:
        defined = values[name][np.isfinite(values[name])]
        global_metrics[f"mean_{name}"] = float(defined.mean()) if defined.size else None
        global_metrics[f"std_{name}"] = float(defined.std()) if defined.size else None
        if name == "accuracy":
            global_metrics["min_accuracy"] = float(defined.min())
            global_metrics["max_accuracy"] = float(defined.max())

    per_fold = []
    for fold in range(n_folds):
        entry: dict[str, Any] = {"fold": fold}
        for name in CV_METRICS:
            value = float(values[name][fold])
            entry[name] = value if np.isfinite(value) else None
        entry["support"] = int(class_support[fold].sum())
        entry["per_class_recall"] = {
            str(cls): float(recall[fold, cls]) if class_support[fold, cls] else None
            for cls in range(num_classes)
        }
        per_fold.append(entry)
    return {
        "n_folds": n_folds,
        "method": "stratified_split_of_cached_predictions",
        "note": CV_NOTE,
        "global_metrics": global_metrics,
        "per_fold_metrics": per_fold,
    }


def _confident_errors(
    probs: NDArray[np.floating[Any]],
    labels: IntArray,
    predictions: IntArray,
    rows: IntArray,
    losses: FloatArray,
    names: list[str],
    sample_ids: Sequence[str],
    max_errors: int,
) -> list[dict[str, Any]]:
    """The most confident misclassified rows (confidence desc, then loss desc, then row index):
    the first place to look for label errors. A non-finite loss is reported as ``None``."""
    wrong = np.flatnonzero(predictions != labels)
    confidence = probs[wrong, predictions[wrong]].astype(np.float64)
    index = rows[wrong]
    loss = losses[index]
    # lexsort puts NaN last, so a NaN loss ranks below every real loss at equal confidence.
    chosen = np.lexsort((index, -loss, -confidence))[:max_errors]
    errors = []
    for k in chosen:
        row = int(index[k])
        true, pred = int(labels[wrong[k]]), int(predictions[wrong[k]])
        errors.append(
            {
                "index": row,
                "sample_id": str(sample_ids[row]) if len(sample_ids) else str(row),
                "true_label": true,
                "true_name": names[true],
                "pred_label": pred,
                "pred_name": names[pred],
                "confidence": float(confidence[k]),
                "loss": float(loss[k]) if np.isfinite(loss[k]) else None,
            }
        )
    return errors
