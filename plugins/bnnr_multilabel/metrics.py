"""Multi-label metrics over a whole evaluation set (pure numpy).

Inputs are ``probabilities (N, C)`` (sigmoid outputs) and multi-hot ``targets (N, C)``; a label
is predicted when its probability is **at least** its threshold (``p >= t``).

Conventions (chosen to match scikit-learn, so numbers can be checked against it):

* Ratios whose denominator is zero count as 0 (sklearn's ``zero_division=0``): a label never
  predicted has precision 0, a label never present has recall 0, and F1 is
  ``2·TP / (2·TP + FP + FN)``, 0 when a label (or, for ``f1_samples``, a sample) has neither true
  nor predicted positives.
* Macro averages run over **all** ``num_classes`` labels; micro averages pool the counts of all
  labels; ``f1_samples`` averages the per-sample F1 over samples.
* ``subset_accuracy`` is the fraction of samples whose whole label set is right; ``accuracy`` is
  the same number, kept under that name because BNNR 0.7 reports and their readers use it.
* ``hamming_loss`` is the fraction of wrong (sample, label) slots.
* ``mean_average_precision``: mean over the labels with at least one positive of the average
  precision ``AP = Σ_n (R_n - R_{n-1}) · P_n`` over the distinct scores in decreasing order (no
  interpolation; sklearn's ``average_precision_score``).
* ``auroc_macro``: mean over the labels with both positives and negatives of the ROC AUC, from
  the Mann-Whitney statistic with tied scores given their average rank (equal to sklearn's
  trapezoidal ``roc_auc_score``).
* ``loss``: mean binary cross-entropy over all slots, probabilities clipped to
  ``[eps, 1 - eps]`` with ``eps`` the machine epsilon of their dtype (as ``sklearn`` log_loss).
* A metric undefined on the data (no label with positives, ...) is ``None``. Rows holding a
  non-finite probability are left out of every metric and counted in ``nonfinite_rows``.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


# -------------------------------------------------------------------------------------------
# Inputs and decoding
# -------------------------------------------------------------------------------------------


def check_inputs(
    probabilities: ArrayLike, targets: ArrayLike, num_classes: int
) -> tuple[NDArray[np.floating[Any]], NDArray[np.bool_]]:
    """Validate ``probabilities (N, C)`` and multi-hot ``targets (N, C)`` (0/1 of any dtype,
    or bool); return the probabilities and the targets as a boolean array.

    Raises ``ValueError`` with the fix spelled out for wrong shapes, targets other than 0/1, and
    probabilities outside ``[0, 1]`` (the usual sign that logits were passed).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    probs = np.asarray(probabilities)
    if not np.issubdtype(probs.dtype, np.floating):
        probs = probs.astype(np.float64)
    if probs.ndim != 2 or probs.shape[1] != num_classes:
        raise ValueError(
            f"probabilities must have shape (N, {num_classes}), got {probs.shape}; "
            "check num_classes against the model's output size"
        )
    labels = np.asarray(targets)
    if labels.shape != probs.shape:
        raise ValueError(
            f"targets must be multi-hot with the shape of probabilities {probs.shape}, "
            f"got {labels.shape}"
        )
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise ValueError("multi-label targets must be 0 or 1 (multi-hot), found other values")
    finite = np.isfinite(probs)
    # A little slack: user-supplied float32 probabilities can be a rounding step outside [0, 1].
    if np.min(probs, where=finite, initial=0.0) < -1e-6 or (
        np.max(probs, where=finite, initial=1.0) > 1 + 1e-6
    ):
        raise ValueError(
            "probabilities must lie in [0, 1]; pass task.probabilities(logits), not raw logits"
        )
    return probs, labels.astype(bool)


def check_threshold(threshold: float | ArrayLike, num_classes: int) -> FloatArray:
    """A scalar or per-label threshold as a ``(C,)`` float array, each value in ``[0, 1]``."""
    values = np.asarray(threshold, dtype=np.float64)
    if values.ndim > 1 or values.size == 0 or (values.ndim == 1 and values.shape[0] != num_classes):
        raise ValueError(
            f"threshold must be a number or one value per label ({num_classes}), "
            f"got shape {values.shape}"
        )
    if not (np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1):
        raise ValueError("thresholds must lie in [0, 1]")
    return np.asarray(np.broadcast_to(values, (num_classes,)).copy())


def decode_threshold(probabilities: ArrayLike, threshold: float | ArrayLike = 0.5) -> IntArray:
    """Multi-hot predictions ``(N, C)``: 1 where ``p >= threshold`` (scalar or per label).

    A non-finite probability is never ``>=`` a threshold, so it decodes to 0.
    """
    probs = np.asarray(probabilities)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must have shape (N, C), got {probs.shape}")
    with np.errstate(invalid="ignore"):
        return (probs >= check_threshold(threshold, probs.shape[1])).astype(np.int64)


# -------------------------------------------------------------------------------------------
# Count-based metrics
# -------------------------------------------------------------------------------------------


def _divide(numerator: ArrayLike, denominator: ArrayLike) -> FloatArray:
    """Element-wise ratio, 0 where the denominator is 0 (sklearn's ``zero_division=0``)."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast_shapes(num.shape, den.shape))
    np.divide(num, den, out=out, where=den != 0)
    return out


@attrs.frozen(kw_only=True, eq=False)
class PerLabelReport:
    """Per-label counts and ratios; every array has shape ``(C,)``.

    ``support`` = positives in the targets (TP + FN), ``pred_count`` = predicted positives
    (TP + FP), ``accuracy`` = (TP + TN) / N (as BNNR 0.7's multi-label class diagnostics).
    Ratios with a zero denominator are 0.
    """

    tp: IntArray
    fp: IntArray
    fn: IntArray
    tn: IntArray
    support: IntArray
    pred_count: IntArray
    precision: FloatArray
    recall: FloatArray
    f1: FloatArray
    accuracy: FloatArray

    def records(self) -> list[dict[str, float | int]]:
        """One JSON-friendly dict per label, in label order, with ``label_index``."""
        fields = ("tp", "fp", "fn", "tn", "support", "pred_count")
        ratios = ("precision", "recall", "f1", "accuracy")
        return [
            {
                "label_index": index,
                **{name: int(getattr(self, name)[index]) for name in fields},
                **{name: float(getattr(self, name)[index]) for name in ratios},
            }
            for index in range(self.tp.shape[0])
        ]


def per_label_report(predictions: ArrayLike, targets: ArrayLike) -> PerLabelReport:
    """TP/FP/FN/TN, support, predicted count, precision, recall, F1 and accuracy of every
    label, from multi-hot ``predictions`` and ``targets`` of equal shape ``(N, C)``."""
    pred = np.asarray(predictions).astype(bool)
    true = np.asarray(targets).astype(bool)
    if pred.ndim != 2 or pred.shape != true.shape:
        raise ValueError(f"predictions and targets must both be (N, C): {pred.shape}, {true.shape}")
    tp = (pred & true).sum(axis=0, dtype=np.int64)
    fp = (pred & ~true).sum(axis=0, dtype=np.int64)
    fn = (~pred & true).sum(axis=0, dtype=np.int64)
    tn = pred.shape[0] - tp - fp - fn
    return PerLabelReport(
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        support=tp + fn,
        pred_count=tp + fp,
        precision=_divide(tp, tp + fp),
        recall=_divide(tp, tp + fn),
        f1=_divide(2 * tp, 2 * tp + fp + fn),
        accuracy=_divide(tp + tn, pred.shape[0]),
    )


# -------------------------------------------------------------------------------------------
# Ranking metrics (vectorised over labels: one sort per call, no loop over labels)
# -------------------------------------------------------------------------------------------


def _tie_group_bounds(sorted_scores: FloatArray) -> tuple[IntArray, IntArray]:
    """For each position of a column-wise sorted ``(N, C)`` array, the first and last position
    of its run of equal scores."""
    n = sorted_scores.shape[0]
    positions = np.arange(n)[:, None]
    starts = np.ones(sorted_scores.shape, dtype=bool)
    starts[1:] = sorted_scores[1:] != sorted_scores[:-1]
    ends = np.ones(sorted_scores.shape, dtype=bool)
    ends[:-1] = starts[1:]
    first = np.maximum.accumulate(np.where(starts, positions, 0), axis=0)
    last = np.minimum.accumulate(np.where(ends, positions, n - 1)[::-1], axis=0)[::-1]
    return first, last


def average_precision_per_label(probabilities: ArrayLike, targets: ArrayLike) -> FloatArray:
    """Average precision ``(C,)`` of every label (sklearn's step-wise definition, see the module
    docstring); NaN for a label without positives. Rows must be finite.

    Each positive contributes the precision at the *end* of its run of tied scores, since all
    tied samples cross the threshold together; ``AP = mean over positives of that precision``.
    """
    scores = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(targets).astype(np.float64)
    order = np.argsort(-scores, axis=0, kind="stable")
    sorted_scores = np.take_along_axis(scores, order, axis=0)
    sorted_labels = np.take_along_axis(labels, order, axis=0)
    precision = np.cumsum(sorted_labels, axis=0) / np.arange(1, scores.shape[0] + 1)[:, None]
    _, last = _tie_group_bounds(sorted_scores)
    precision_at_threshold = np.take_along_axis(precision, last, axis=0)
    positives = sorted_labels.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((sorted_labels * precision_at_threshold).sum(axis=0) / positives)


def auroc_per_label(probabilities: ArrayLike, targets: ArrayLike) -> FloatArray:
    """ROC AUC ``(C,)`` of every label, ``(R+ - n+(n+ + 1)/2) / (n+ · n-)`` with ``R+`` the sum of
    the positives' average ranks; NaN for a label lacking positives or negatives."""
    scores = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(targets).astype(np.float64)
    order = np.argsort(scores, axis=0, kind="stable")
    sorted_labels = np.take_along_axis(labels, order, axis=0)
    first, last = _tie_group_bounds(np.take_along_axis(scores, order, axis=0))
    average_rank = (first + last) / 2 + 1
    positives = sorted_labels.sum(axis=0)
    negatives = scores.shape[0] - positives
    rank_sum = (sorted_labels * average_rank).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
    return np.asarray(np.where((positives > 0) & (negatives > 0), auc, np.nan))


def binary_cross_entropy(probabilities: ArrayLike, targets: ArrayLike) -> float:
    """Mean binary cross-entropy over all (sample, label) slots, probabilities clipped to
    ``[eps, 1 - eps]`` (``eps`` = machine epsilon of their dtype). Rows must be finite."""
    probs = np.asarray(probabilities)
    if probs.size == 0:
        raise ValueError("binary_cross_entropy of an empty set is undefined")
    dtype = probs.dtype if np.issubdtype(probs.dtype, np.floating) else np.dtype(np.float64)
    eps = float(np.finfo(dtype).eps)
    clipped = np.clip(probs.astype(np.float64), eps, 1 - eps)
    truth = np.asarray(targets).astype(bool)
    return float(-np.where(truth, np.log(clipped), np.log1p(-clipped)).mean())


def _mean_defined(values: FloatArray) -> float | None:
    defined = values[np.isfinite(values)]
    return float(defined.mean()) if defined.size else None


# -------------------------------------------------------------------------------------------
# The metrics of the task
# -------------------------------------------------------------------------------------------

METRIC_NAMES: tuple[str, ...] = (
    "accuracy",
    "auroc_macro",
    "f1_macro",
    "f1_micro",
    "f1_samples",
    "hamming_loss",
    "loss",
    "mean_average_precision",
    "precision_macro",
    "precision_micro",
    "recall_macro",
    "recall_micro",
    "subset_accuracy",
)


def multilabel_metrics(
    probabilities: ArrayLike,
    targets: ArrayLike,
    *,
    num_classes: int,
    threshold: float | ArrayLike = 0.5,
) -> dict[str, float | None]:
    """Metrics of a multi-label classifier over the whole set.

    :param probabilities: ``(N, C)`` per-label probabilities (sigmoid outputs).
    :param targets: ``(N, C)`` multi-hot targets.
    :param num_classes: ``C``.
    :param threshold: decision threshold, a number or one per label (``p >= t`` is positive).
    :returns: the :data:`METRIC_NAMES` plus ``nonfinite_rows`` (rows left out for NaN/inf).
        Plain floats; ``None`` where undefined. Conventions are in the module docstring.
    """
    probs, truth = check_inputs(probabilities, targets, num_classes)
    thresholds = check_threshold(threshold, num_classes)
    keep = np.isfinite(probs).all(axis=1)
    probs, truth = probs[keep], truth[keep]
    metrics: dict[str, float | None] = dict.fromkeys(METRIC_NAMES)
    metrics["nonfinite_rows"] = int(keep.size - keep.sum())
    n = truth.shape[0]
    if n == 0:
        return metrics

    pred = decode_threshold(probs, thresholds).astype(bool)
    report = per_label_report(pred, truth)
    tp, fp, fn = int(report.tp.sum()), int(report.fp.sum()), int(report.fn.sum())
    true_per_sample = truth.sum(axis=1)
    pred_per_sample = pred.sum(axis=1)
    hits_per_sample = (pred & truth).sum(axis=1)
    metrics.update(
        precision_micro=float(_divide(tp, tp + fp)),
        recall_micro=float(_divide(tp, tp + fn)),
        f1_micro=float(_divide(2 * tp, 2 * tp + fp + fn)),
        precision_macro=float(report.precision.mean()),
        recall_macro=float(report.recall.mean()),
        f1_macro=float(report.f1.mean()),
        f1_samples=float(_divide(2 * hits_per_sample, true_per_sample + pred_per_sample).mean()),
        subset_accuracy=float((pred == truth).all(axis=1).mean()),
        hamming_loss=float((pred != truth).mean()),
        mean_average_precision=_mean_defined(average_precision_per_label(probs, truth)),
        auroc_macro=_mean_defined(auroc_per_label(probs, truth)),
        loss=binary_cross_entropy(probs, truth),
    )
    metrics["accuracy"] = metrics["subset_accuracy"]
    return metrics
