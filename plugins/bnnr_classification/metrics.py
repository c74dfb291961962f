"""Single-label classification metrics over a whole evaluation set (pure numpy).

Every count-based metric is a function of the confusion matrix, written for a *stack* of
matrices ``(..., C, C)`` so the same definition serves one evaluation and thousands of bootstrap
resamples (:mod:`bnnr_classification.bootstrap`). Rows are true classes, columns predictions.

Conventions (chosen to match scikit-learn, so numbers can be checked against it):

* Macro precision, recall and F1 average over **all** ``num_classes`` labels, including labels
  absent from the set; a ratio whose denominator is zero counts as 0 (sklearn's
  ``zero_division=0``). Per-class F1 is ``2·TP / (2·TP + FP + FN)``.
* Balanced accuracy is the mean recall over the classes **present** in the targets
  (``sklearn.metrics.balanced_accuracy_score``).
* Cohen's kappa is ``1 - (1 - p_o) / (1 - p_e)``; when ``p_e = 1`` (both label sets use one and
  the same single class) sklearn returns NaN; we return ``None``.
* MCC (Matthews) is sklearn's multiclass ``R_K``; when it is undefined (all targets or all
  predictions in one class) sklearn returns 0.0, and so do we.
* ``loss`` is the mean negative log-likelihood of the true class, probabilities clipped to
  ``[eps, 1 - eps]`` with ``eps`` the machine epsilon of their dtype (``sklearn.metrics.log_loss``).
* Rows of ``probabilities`` holding a non-finite value (NaN/inf: what softmax gives for NaN or
  +inf logits) are left out of every metric and counted in ``nonfinite_rows``; if no row is
  left, every metric is ``None``.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
from numpy.typing import ArrayLike, NDArray

from bnnr_classification.calibration import expected_calibration_error

#: Number of equal-width confidence bins used for ``ece`` in :func:`classification_metrics`.
ECE_BINS = 15
#: ``top5_accuracy`` is reported only when there are more classes than this.
TOP_K = 5

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


# -------------------------------------------------------------------------------------------
# Inputs
# -------------------------------------------------------------------------------------------


def check_inputs(
    probabilities: ArrayLike, targets: ArrayLike, num_classes: int
) -> tuple[NDArray[np.floating[Any]], IntArray]:
    """Validate ``probabilities (N, C)`` and integer ``targets (N,)``; return them as arrays.

    Raises ``ValueError`` with the fix spelled out for wrong shapes, non-integer or out-of-range
    targets, and values outside ``[0, 1]`` (the usual sign that logits were passed).
    Non-finite probabilities are allowed here; callers drop those rows.
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
    if labels.ndim != 1 or labels.shape[0] != probs.shape[0]:
        raise ValueError(
            f"targets must have shape ({probs.shape[0]},) to match probabilities, "
            f"got {labels.shape}"
        )
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"targets must be integer class indices, got dtype {labels.dtype}")
    labels = labels.astype(np.int64, copy=False)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"targets must lie in [0, {num_classes - 1}], found values in "
            f"[{labels.min()}, {labels.max()}]; check num_classes and the label mapping"
        )
    finite = np.isfinite(probs)
    # A little slack: float32 softmax can land a rounding step outside [0, 1].
    if np.min(probs, where=finite, initial=0.0) < -1e-6 or (
        np.max(probs, where=finite, initial=1.0) > 1 + 1e-6
    ):
        raise ValueError(
            "probabilities must lie in [0, 1]; pass task.probabilities(logits), not raw logits"
        )
    return probs, labels


def finite_rows(probabilities: NDArray[Any]) -> NDArray[np.bool_]:
    """Mask ``(N,)`` of the rows whose values are all finite."""
    return np.asarray(np.isfinite(probabilities).all(axis=1))


def decode_argmax(probabilities: ArrayLike) -> IntArray:
    """Predicted class per row: the arg-max (the first one on ties); ``-1`` for a row holding a
    non-finite value, so such a row can never be mistaken for class 0."""
    probs = np.asarray(probabilities)
    if probs.ndim != 2 or probs.shape[1] == 0:
        raise ValueError(f"probabilities must have shape (N, C) with C >= 1, got {probs.shape}")
    if probs.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    predictions = np.argmax(probs, axis=1).astype(np.int64)
    predictions[~finite_rows(probs)] = -1
    return predictions


# -------------------------------------------------------------------------------------------
# Confusion matrix and the metrics derived from it
# -------------------------------------------------------------------------------------------


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> IntArray:
    """Confusion matrix ``(C, C)``: entry ``[i, j]`` counts samples of true class ``i``
    predicted as ``j``. Built with one ``np.bincount``; labels must lie in ``[0, C)``."""
    true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    if true.shape != pred.shape or true.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be 1-D of equal length: {true.shape}, {pred.shape}"
        )
    for name, labels in (("y_true", true), ("y_pred", pred)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{name} must lie in [0, {num_classes - 1}]")
    counts = np.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).astype(np.int64)


def _divide(numerator: NDArray[Any], denominator: NDArray[Any]) -> FloatArray:
    """Element-wise ratio, 0 where the denominator is 0 (sklearn's ``zero_division=0``)."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast_shapes(num.shape, den.shape))
    np.divide(num, den, out=out, where=den != 0)
    return out


def _counts(confusion: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """``(true positives, support, predicted count, total)`` of a confusion stack, as floats
    (exact: counts stay far below 2**53)."""
    cm = np.asarray(confusion, dtype=np.float64)
    true_positives = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(axis=-1)
    predicted = cm.sum(axis=-2)
    return true_positives, support, predicted, support.sum(axis=-1)


def accuracy_from_confusion(confusion: ArrayLike) -> FloatArray:
    """Accuracy ``trace / total`` of each matrix of a ``(..., C, C)`` stack; NaN if empty."""
    tp, _, _, total = _counts(confusion)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(tp.sum(axis=-1) / total)


def balanced_accuracy_from_confusion(confusion: ArrayLike) -> FloatArray:
    """Mean recall over the classes present in the targets (support > 0); NaN if none is."""
    tp, support, _, _ = _counts(confusion)
    present = support > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(_divide(tp, support).sum(axis=-1) / present.sum(axis=-1))


def precision_macro_from_confusion(confusion: ArrayLike) -> FloatArray:
    """Mean over all C labels of ``TP / (TP + FP)``, 0 for a label never predicted."""
    tp, _, predicted, _ = _counts(confusion)
    return np.asarray(_divide(tp, predicted).mean(axis=-1))


def recall_macro_from_confusion(confusion: ArrayLike) -> FloatArray:
    """Mean over all C labels of ``TP / (TP + FN)``, 0 for a label absent from the targets."""
    tp, support, _, _ = _counts(confusion)
    return np.asarray(_divide(tp, support).mean(axis=-1))


def f1_macro_from_confusion(confusion: ArrayLike) -> FloatArray:
    """Mean over all C labels of ``2·TP / (2·TP + FP + FN)``, 0 for a label neither present nor
    predicted."""
    tp, support, predicted, _ = _counts(confusion)
    return np.asarray(_divide(2 * tp, support + predicted).mean(axis=-1))


def cohen_kappa_from_confusion(confusion: ArrayLike) -> FloatArray:
    """Cohen's kappa ``1 - (1 - p_o) / (1 - p_e)``; NaN where ``p_e = 1`` (undefined).

    Written on counts, ``n·(n - trace) / (n² - Σ_k t_k·p_k)``, so the undefined case is an exact
    zero test, as in sklearn.
    """
    tp, support, predicted, total = _counts(confusion)
    disagreement = total * (total - tp.sum(axis=-1))
    chance_disagreement = total**2 - (support * predicted).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        kappa = 1.0 - disagreement / chance_disagreement
    return np.asarray(np.where(chance_disagreement == 0, np.nan, kappa))


def mcc_from_confusion(confusion: ArrayLike) -> FloatArray:
    """Matthews correlation (multiclass R_K, Gorodkin 2004), 0.0 where undefined (sklearn)."""
    tp, support, predicted, total = _counts(confusion)
    cov_true_pred = tp.sum(axis=-1) * total - (support * predicted).sum(axis=-1)
    cov_pred_pred = total**2 - (predicted * predicted).sum(axis=-1)
    cov_true_true = total**2 - (support * support).sum(axis=-1)
    denominator = cov_pred_pred * cov_true_true
    return _divide(cov_true_pred, np.sqrt(denominator))


#: Confusion-matrix metrics by report name; each maps a ``(..., C, C)`` stack to ``(...)``.
#: :func:`bnnr_classification.bootstrap.bootstrap_ci` accepts any of them.
CONFUSION_METRICS = {
    "accuracy": accuracy_from_confusion,
    "balanced_accuracy": balanced_accuracy_from_confusion,
    "precision_macro": precision_macro_from_confusion,
    "recall_macro": recall_macro_from_confusion,
    "f1_macro": f1_macro_from_confusion,
    "cohen_kappa": cohen_kappa_from_confusion,
    "mcc": mcc_from_confusion,
}


@attrs.frozen(kw_only=True, eq=False)
class PerClassReport:
    """Per-class counts and ratios; every array has shape ``(C,)``.

    ``accuracy`` is the fraction of the class's samples classified correctly (equal to
    ``recall``): the single-label "per-class accuracy" of torchmetrics' ``average=None`` and of
    BNNR 0.7's ``per_class_accuracy``. Ratios with a zero denominator are 0 (check ``support``
    and ``pred_count`` before calling a class "never recalled").
    """

    support: IntArray
    pred_count: IntArray
    true_positives: IntArray
    precision: FloatArray
    recall: FloatArray
    f1: FloatArray
    accuracy: FloatArray

    def records(self) -> list[dict[str, float | int]]:
        """One JSON-friendly dict per class, in class order, with ``class_index``."""
        return [
            {
                "class_index": index,
                "support": int(self.support[index]),
                "pred_count": int(self.pred_count[index]),
                "true_positives": int(self.true_positives[index]),
                "precision": float(self.precision[index]),
                "recall": float(self.recall[index]),
                "f1": float(self.f1[index]),
                "accuracy": float(self.accuracy[index]),
            }
            for index in range(self.support.shape[0])
        ]


def per_class_report(confusion: ArrayLike) -> PerClassReport:
    """Precision, recall, F1, support, predicted count and accuracy of every class of a
    ``(C, C)`` confusion matrix, with ``zero_division=0`` (sklearn's ``average=None``)."""
    cm = np.asarray(confusion, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion must be a square (C, C) matrix, got {cm.shape}")
    tp = np.diagonal(cm).copy()
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    recall = _divide(tp, support)
    return PerClassReport(
        support=support,
        pred_count=predicted,
        true_positives=tp,
        precision=_divide(tp, predicted),
        recall=recall,
        f1=_divide(2 * tp, support + predicted),
        accuracy=recall,
    )


# -------------------------------------------------------------------------------------------
# Metrics that need the probabilities
# -------------------------------------------------------------------------------------------


def log_loss(probabilities: ArrayLike, targets: ArrayLike) -> float:
    """Mean ``-log p[i, y_i]`` with ``p`` clipped to ``[eps, 1 - eps]``, ``eps`` the machine
    epsilon of the probabilities' dtype (sklearn's ``log_loss``). Rows must be finite."""
    probs = np.asarray(probabilities)
    labels = np.asarray(targets, dtype=np.int64)
    if labels.size == 0:
        raise ValueError("log_loss of an empty set is undefined")
    dtype = probs.dtype if np.issubdtype(probs.dtype, np.floating) else np.dtype(np.float64)
    eps = float(np.finfo(dtype).eps)
    true_class = probs[np.arange(labels.shape[0]), labels].astype(np.float64)
    return float(-np.log(np.clip(true_class, eps, 1 - eps)).mean())


def top_k_accuracy(probabilities: ArrayLike, targets: ArrayLike, k: int) -> float:
    """Fraction of rows whose true class is among the ``k`` highest probabilities.

    Ties are broken as ``sklearn.metrics.top_k_accuracy_score`` does (its stable sort, reversed,
    ranks the higher class index first among equal scores): the true class ``y`` is a hit when
    ``#{j: p_j > p_y} + #{j > y: p_j = p_y} < k``. O(N·C), no sort.
    """
    probs = np.asarray(probabilities)
    labels = np.asarray(targets, dtype=np.int64)
    if labels.size == 0:
        raise ValueError("top_k_accuracy of an empty set is undefined")
    true_score = probs[np.arange(labels.shape[0]), labels][:, None]
    higher_index = np.arange(probs.shape[1])[None, :] > labels[:, None]
    ranked_above = (probs > true_score).sum(axis=1) + ((probs == true_score) & higher_index).sum(
        axis=1
    )
    return float((ranked_above < k).mean())


def _optional(value: Any) -> float | None:
    number = float(value)
    return number if np.isfinite(number) else None


def classification_metrics(
    probabilities: ArrayLike, targets: ArrayLike, *, num_classes: int
) -> dict[str, float | None]:
    """Metrics of a single-label classifier over the whole set.

    :param probabilities: ``(N, C)`` class probabilities (softmax output).
    :param targets: ``(N,)`` integer class indices.
    :param num_classes: ``C``.
    :returns: ``accuracy``, ``balanced_accuracy``, ``precision_macro``, ``recall_macro``,
        ``f1_macro``, ``cohen_kappa``, ``mcc``, ``loss``, ``ece`` (top-label, 15 equal-width
        bins, see :mod:`bnnr_classification.calibration`), ``top5_accuracy`` (only when
        ``num_classes > 5``), and ``nonfinite_rows`` (rows left out for NaN/inf values).
        Plain floats; ``None`` where undefined. Conventions are in the module docstring.
    """
    probs, labels = check_inputs(probabilities, targets, num_classes)
    keep = finite_rows(probs)
    probs, labels = probs[keep], labels[keep]
    names = [*CONFUSION_METRICS, "loss", "ece"]
    if num_classes > TOP_K:
        names.append(f"top{TOP_K}_accuracy")
    metrics: dict[str, float | None] = dict.fromkeys(names)
    metrics["nonfinite_rows"] = int(keep.size - keep.sum())
    if labels.size == 0:
        return metrics

    predictions = np.argmax(probs, axis=1)
    confusion = confusion_matrix(labels, predictions, num_classes)
    for name, metric in CONFUSION_METRICS.items():
        metrics[name] = _optional(metric(confusion))
    metrics["loss"] = log_loss(probs, labels)
    # Clipped because check_inputs tolerates a rounding step outside [0, 1].
    confidences = np.clip(probs.max(axis=1), 0.0, 1.0)
    metrics["ece"] = expected_calibration_error(confidences, predictions == labels, n_bins=ECE_BINS)
    if num_classes > TOP_K:
        metrics[f"top{TOP_K}_accuracy"] = top_k_accuracy(probs, labels, TOP_K)
    return metrics
