"""Report sections of a multi-label classifier, built from cached predictions (pure numpy).

:func:`multilabel_sections` turns one evaluation pass (sigmoid probabilities, multi-hot targets,
per-sample loss) into the multi-label sections of ``analysis_report.json``. Key shapes follow
BNNR 0.7's multi-label report (label ids as strings ``"0".."C-1"``, ``confusion.type`` =
``"multilabel_per_label"``) with its defects fixed: metrics come from the whole set, the collapse
flag is defined on predicted positives, calibration, intervals and fold variability exist, and
nothing is rounded.

Definitions (each documented again where it is computed):

* A label is predicted when its probability is **at least** its threshold (``p >= t``).
* **Calibration** is per label: each label's probability is a binary forecast of "label
  present". ``ECE_c = Σ_b (n_b / N) · |positive rate_b - mean p_b|`` over 15 equal-width bins of
  ``p`` (right-closed, ``p = 0`` in the first bin), i.e. the class-wise ECE of Kull et al.
  (NeurIPS 2019); ``metrics.ece`` and ``calibration_summary.ece_mean`` are its mean over labels.
* **Co-occurrence errors** of an ordered label pair ``(a, b)``: the samples where ``a`` is present,
  ``b`` is absent and ``b`` is predicted (false positives of ``b`` that co-occur with ``a``).
  ``conditional_rate = count / #(a present, b absent)`` is compared with ``base_rate``, the
  false-positive rate of ``b`` on the samples **without** ``a``; ``lift`` is their ratio. (Against
  ``b``'s overall false-positive rate the lift of a frequent ``a`` is bounded, since that rate
  already contains the co-occurring errors.)

Rows whose probabilities hold a non-finite value are left out of every section and counted in
``metrics.nonfinite_rows`` and ``confusion.excluded_nonfinite``. Everything returned is plain
Python (JSON-friendly); a value that is undefined is ``None``. Results are a pure function of the
inputs and ``seed``: the bootstrap, the threshold cross-fitting split and the fold split each use
their own ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from bnnr_multilabel import thresholds as threshold_tuning
from bnnr_multilabel.metrics import (
    FloatArray,
    IntArray,
    auroc_per_label,
    average_precision_per_label,
    check_inputs,
    check_threshold,
    multilabel_metrics,
    per_label_report,
)

#: Two-sided error rate of the bootstrap intervals (95 % intervals).
ALPHA = 0.05
#: Metrics with a bootstrap interval in ``metrics_ci``.
CI_METRICS: tuple[str, ...] = (
    "f1_samples",
    "f1_macro",
    "f1_micro",
    "subset_accuracy",
    "hamming_loss",
    "loss",
)
#: Equal-width bins of the per-label calibration.
ECE_BINS = 15
#: A label's calibration ``direction`` is "calibrated" when ``|confidence_gap|`` is below this.
CALIBRATED_GAP = 0.02
#: A label is over-predicted above ``6/5`` times its positives and under-predicted below ``4/5``
#: (compared exactly on integers).
OVER_RATIO = (6, 5)
UNDER_RATIO = (4, 5)
#: Longest over-/under-predicted list in ``distribution_summary``.
MAX_DISTRIBUTION_ENTRIES = 10
#: Longest pair list of ``cooccurrence_errors``.
MAX_COOCCURRENCE_PAIRS = 20
#: Metrics recomputed on every fold of ``cv_results``.
CV_METRICS: tuple[str, ...] = ("f1_macro", "f1_samples", "subset_accuracy", "hamming_loss")
#: Sort order of ``class_diagnostics`` severities (worst first).
SEVERITY_ORDER = ("critical", "warning", "ok")
#: Upper bound on the elements of one bootstrap chunk's ``(resamples, N)`` matrices.
_CHUNK_ELEMENTS = 1 << 22

COLLAPSE_RULE = (
    "possible_collapse is true when the label k holding the largest share of the predicted "
    "positives has a share s_pred >= max(0.5, s_true + (1 - s_true) / 2), s_true being its share "
    "of the true positives (0 when there are none), i.e. when k absorbs at least half of the "
    "predicted positives that belong to other labels (never when k holds every true positive). "
    "Shares are of positives (predicted or true), not of sample x label slots."
)
COOCCURRENCE_DEFINITION = (
    "For an ordered label pair (a, b): count = samples where a is present, b is absent and b is "
    "predicted (a false positive of b co-occurring with a); co_present = samples with a present "
    "and b absent; conditional_rate = count / co_present; base_count = false positives of b on "
    "samples without a, base_total = samples without a and without b, base_rate = base_count / "
    "base_total (None when base_total is 0); lift = conditional_rate / base_rate (None when "
    "base_rate is 0 or None); excess = count - base_rate x co_present (count when base_rate is "
    "None). Pairs with count > 0, largest excess first (then count, then label ids), at most 20."
)
CALIBRATION_NOTE = (
    "Per-label calibration: each label's probability is a binary forecast of 'label present'. "
    "Bins are 15 equal-width bins of p (right-closed, p = 0 in the first); ece = sum over bins "
    "of (n_b / N) |positive rate_b - mean p_b|, mce = the largest such gap, brier = mean "
    "(p - y)^2; ece_mean (= metrics.ece) is the mean ECE over labels (class-wise ECE). "
    "direction compares the mean confidence max(p, 1 - p) with how often the more likely outcome "
    "(present when p >= 0.5) is right: overconfident, underconfident, or calibrated within 0.02. "
    "bins_pooled pools every (sample, label) slot: accuracy there is the observed positive rate."
)
CV_NOTE = (
    "No model is retrained: the cached predictions of the evaluation set are split into disjoint "
    "folds (one numpy.random.default_rng(seed) permutation of the rows, cut into near-equal "
    "parts) and the metrics recomputed on each, at the task's threshold, so this measures metric "
    "variability over disjoint subsets of the evaluation set; std is the population standard "
    "deviation (ddof=0)."
)
FIXED_NOTE = (
    "Every label is decided at the task's threshold (per_label). suggested holds, per label, the "
    "threshold maximising its F1 on this evaluation set (None where no threshold gives F1 > 0); "
    "tuned on the data it would be scored on, so its F1 would be optimistic. Enable "
    "tune_thresholds for out-of-sample tuned metrics (metrics_tuned)."
)
TUNED_NOTE = (
    "metrics are at the task's threshold (default). metrics_tuned are out-of-sample: the rows "
    "are split in two halves (numpy.random.default_rng(seed) permutation); per-label thresholds "
    "that maximise F1 on one half decide the other half and vice versa (2-fold cross-fitting of "
    "the cached predictions, no extra inference; cross_fit.per_label_by_fold[k] was tuned on "
    "fold k and applied to the other fold). per_label are tuned on all rows: the thresholds to "
    "deploy; their in-sample F1 is not reported because it would be optimistic. Labels where no "
    "threshold gives F1 > 0 keep the task's threshold."
)


def multilabel_sections(
    probabilities: ArrayLike,
    targets: ArrayLike,
    per_sample_loss: ArrayLike,
    *,
    class_names: Sequence[str],
    threshold: float | ArrayLike = 0.5,
    tune_thresholds: bool = False,
    sample_ids: Sequence[str] = (),
    seed: int = 0,
    cv_folds: int = 0,
    n_bootstrap: int = 1000,
    max_errors: int = 20,
) -> dict[str, Any]:
    """Multi-label sections of the analysis report.

    :param probabilities: ``(N, C)`` sigmoid outputs; a row with a non-finite value is excluded
        from every section and counted.
    :param targets: ``(N, C)`` multi-hot targets (0/1 or bool).
    :param per_sample_loss: ``(N,)`` loss of every sample (only ``confident_errors`` uses it).
    :param class_names: ``C`` display names, carried next to every label id.
    :param threshold: the task's decision threshold, a number or one per label.
    :param tune_thresholds: also tune per-label thresholds, with out-of-sample metrics from
        2-fold cross-fitting (``metrics_tuned``).
    :param sample_ids: ``N`` ids for ``confident_errors``, or empty for ``str(index)``.
    :param seed: seed of the bootstrap, of the cross-fitting split and of the fold split.
    :param cv_folds: number of folds of ``cv_results``; 0 leaves it empty.
    :param n_bootstrap: bootstrap resamples of ``metrics_ci``.
    :param max_errors: longest ``confident_errors`` list.
    :returns: ``metrics``, ``metrics_ci``, ``metrics_tuned``, ``thresholds``,
        ``per_class_accuracy``, ``confusion``, ``cooccurrence_errors``, ``true_distribution``,
        ``pred_distribution``, ``distribution_summary``, ``class_diagnostics``,
        ``calibration_summary``, ``cv_results``, ``confident_errors``.
    :raises ValueError: for inconsistent shapes or out-of-range arguments.
    """
    probs_all = np.asarray(probabilities)
    if probs_all.ndim != 2:
        raise ValueError(f"probabilities must have shape (N, C), got {probs_all.shape}")
    num_classes = probs_all.shape[1]
    if len(class_names) != num_classes:
        raise ValueError(
            f"class_names has {len(class_names)} names but probabilities have {num_classes} "
            "columns; pass one name per label"
        )
    probs_all, truth_all = check_inputs(probs_all, targets, num_classes)
    task_thresholds = check_threshold(threshold, num_classes)
    scalar_threshold = np.ndim(threshold) == 0
    n_rows = truth_all.shape[0]
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

    keep = np.isfinite(probs_all).all(axis=1)
    rows = np.flatnonzero(keep)
    if cv_folds < 0 or cv_folds == 1 or cv_folds > rows.size:
        raise ValueError(
            f"cv_folds must be 0 (off) or between 2 and the number of finite rows ({rows.size}), "
            f"got {cv_folds}"
        )
    probs_raw = probs_all[keep]
    # Calibration reads probabilities clipped to [0, 1] (float32 sigmoid outputs can sit a
    # rounding step outside); decisions and rankings read them as given, like the metrics.
    probs = np.clip(probs_raw.astype(np.float64), 0.0, 1.0)
    truth = truth_all[keep]
    pred = probs_raw.astype(np.float64) >= task_thresholds
    names = [str(name) for name in class_names]
    report = per_label_report(pred, truth)
    calibration = _calibration_summary(probs, truth, names)

    metrics: dict[str, Any] = dict(
        multilabel_metrics(probs_all, truth_all, num_classes=num_classes, threshold=task_thresholds)
    )
    metrics["ece"] = calibration["ece_mean"]
    thresholds, metrics_tuned = _thresholds(
        probs,
        truth,
        task_thresholds,
        scalar_threshold=scalar_threshold,
        tune=tune_thresholds,
        seed=seed,
        metrics=metrics,
    )
    return {
        "metrics": metrics,
        "metrics_ci": _metrics_ci(probs_raw, truth, pred, seed, n_bootstrap),
        "metrics_tuned": metrics_tuned,
        "thresholds": thresholds,
        "per_class_accuracy": {
            str(i): {
                "precision": float(report.precision[i]),
                "recall": float(report.recall[i]),
                "f1": float(report.f1[i]),
                "support": int(report.support[i]),
                "class_name": names[i],
            }
            for i in range(num_classes)
        },
        "confusion": {
            "type": "multilabel_per_label",
            "labels": list(range(num_classes)),
            "class_names": names,
            "per_label": [
                {
                    "tp": int(report.tp[i]),
                    "fp": int(report.fp[i]),
                    "fn": int(report.fn[i]),
                    "tn": int(report.tn[i]),
                }
                for i in range(num_classes)
            ],
            "n_samples": int(rows.size),
            "excluded_nonfinite": int(n_rows - rows.size),
        },
        "cooccurrence_errors": _cooccurrence_errors(truth, pred, names),
        "true_distribution": _distribution(report.support),
        "pred_distribution": _distribution(report.pred_count),
        "distribution_summary": _distribution_summary(report.support, report.pred_count, names),
        "class_diagnostics": _class_diagnostics(probs_raw, truth, pred, task_thresholds, names),
        "calibration_summary": calibration,
        "cv_results": _cv_results(truth, pred, cv_folds, seed) if cv_folds else {},
        "confident_errors": _confident_errors(
            truth, pred, rows, losses_all, names, sample_ids, max_errors
        ),
    }


# -------------------------------------------------------------------------------------------
# Count metrics of decided predictions
# -------------------------------------------------------------------------------------------


def _ratio(numerator: ArrayLike, denominator: ArrayLike) -> FloatArray:
    """Element-wise ratio, 0 where the denominator is 0 (sklearn's ``zero_division=0``)."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast_shapes(num.shape, den.shape))
    np.divide(num, den, out=out, where=den != 0)
    return out


def count_metrics(pred: NDArray[np.bool_], truth: NDArray[np.bool_]) -> dict[str, float | None]:
    """The threshold-dependent metrics of :func:`bnnr_multilabel.metrics.multilabel_metrics`
    (same conventions) from decided multi-hot predictions ``(N, C)``; ``None`` for ``N = 0``."""
    names = (
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
    )
    if truth.shape[0] == 0:
        return dict.fromkeys(names)
    report = per_label_report(pred, truth)
    tp, fp, fn = int(report.tp.sum()), int(report.fp.sum()), int(report.fn.sum())
    hits = (pred & truth).sum(axis=1)
    subset = float((pred == truth).all(axis=1).mean())
    return {
        "f1_samples": float(_ratio(2 * hits, truth.sum(axis=1) + pred.sum(axis=1)).mean()),
        "f1_macro": float(report.f1.mean()),
        "f1_micro": float(_ratio(2 * tp, 2 * tp + fp + fn)),
        "precision_macro": float(report.precision.mean()),
        "precision_micro": float(_ratio(tp, tp + fp)),
        "recall_macro": float(report.recall.mean()),
        "recall_micro": float(_ratio(tp, tp + fn)),
        "subset_accuracy": subset,
        "accuracy": subset,
        "hamming_loss": float((pred != truth).mean()),
    }


def row_bce(probabilities: NDArray[np.floating[Any]], truth: NDArray[np.bool_]) -> FloatArray:
    """Per-row binary cross-entropy, mean over labels, clipped exactly as
    :func:`bnnr_multilabel.metrics.binary_cross_entropy` (so its mean is that function's)."""
    dtype = (
        probabilities.dtype
        if np.issubdtype(probabilities.dtype, np.floating)
        else np.dtype(np.float64)
    )
    eps = float(np.finfo(dtype).eps)
    clipped = np.clip(probabilities.astype(np.float64), eps, 1 - eps)
    return np.asarray(-np.where(truth, np.log(clipped), np.log1p(-clipped)).mean(axis=1))


# -------------------------------------------------------------------------------------------
# Bootstrap
# -------------------------------------------------------------------------------------------


def bootstrap_weights(n: int, n_resamples: int, seed: int) -> list[FloatArray]:
    """How often each row is drawn in each resample, in chunks ``(R_k, N)``.

    One ``numpy.random.default_rng(seed)``; a chunk of ``R_k`` resamples draws the index matrix
    ``rng.integers(0, N, size=(R_k, N))`` (row ``r`` = resample ``r``). Chunks hold at most
    ``2**22`` indices (at least one resample), a size that depends on N only.
    """
    chunk = max(1, min(n_resamples, _CHUNK_ELEMENTS // max(n, 1)))
    rng = np.random.default_rng(seed)
    weights = []
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        indices = rng.integers(0, n, size=(size, n))
        codes = (np.arange(size, dtype=np.int64) * n)[:, None] + indices
        counts = np.bincount(codes.ravel(), minlength=size * n).reshape(size, n)
        weights.append(counts.astype(np.float64))
    return weights


def _metrics_ci(
    probs: NDArray[np.floating[Any]],
    truth: NDArray[np.bool_],
    pred: NDArray[np.bool_],
    seed: int,
    n_bootstrap: int,
) -> dict[str, Any]:
    """Percentile-bootstrap intervals over resampled rows, all from the same resamples.

    Vectorised: a resample is a weight vector (how often each row was drawn); per-label TP, FP
    and FN and the sums of the per-row metrics of a whole chunk come from one matrix product.
    """
    intervals: dict[str, dict[str, float] | None] = dict.fromkeys(CI_METRICS)
    n, c = truth.shape
    if n:
        hits = pred & truth
        per_row = np.stack(
            [
                _ratio(2 * hits.sum(axis=1), truth.sum(axis=1) + pred.sum(axis=1)),
                (pred == truth).all(axis=1),
                (pred != truth).mean(axis=1),
                row_bce(probs, truth),
            ],
            axis=1,
        )
        design = np.concatenate([hits, pred & ~truth, ~pred & truth, per_row], axis=1)
        values: dict[str, list[FloatArray]] = {name: [] for name in CI_METRICS}
        for weights in bootstrap_weights(n, n_bootstrap, seed):
            sums = weights @ design.astype(np.float64)
            tp, fp, fn = sums[:, :c], sums[:, c : 2 * c], sums[:, 2 * c : 3 * c]
            values["f1_macro"].append(_ratio(2 * tp, 2 * tp + fp + fn).mean(axis=1))
            tp_all, fp_all, fn_all = tp.sum(axis=1), fp.sum(axis=1), fn.sum(axis=1)
            values["f1_micro"].append(_ratio(2 * tp_all, 2 * tp_all + fp_all + fn_all))
            means = sums[:, 3 * c :] / n
            for k, name in enumerate(("f1_samples", "subset_accuracy", "hamming_loss", "loss")):
                values[name].append(means[:, k])
        for name in CI_METRICS:
            low, high = np.quantile(np.concatenate(values[name]), [ALPHA / 2, 1 - ALPHA / 2])
            intervals[name] = {"low": float(low), "high": float(high)}
    return {
        "confidence_level": 1 - ALPHA,
        "method": "percentile_bootstrap",
        "n_resamples": int(n_bootstrap),
        "seed": int(seed),
        "intervals": intervals,
    }


# -------------------------------------------------------------------------------------------
# Thresholds
# -------------------------------------------------------------------------------------------


def _tuned(
    probs: FloatArray, truth: NDArray[np.bool_], fallback: FloatArray
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """F1-optimal thresholds per label (:func:`bnnr_multilabel.thresholds.tune_thresholds`) and
    whether each is informative (some candidate reaches F1 > 0); ``fallback`` elsewhere."""
    informative = (
        threshold_tuning.f1_over_grid(probs, truth, threshold_tuning.DEFAULT_GRID).max(axis=1) > 0
    )
    tuned = threshold_tuning.tune_thresholds(probs, truth)
    return np.where(informative, tuned, fallback), informative


def _per_label(values: FloatArray) -> dict[str, float]:
    return {str(i): float(value) for i, value in enumerate(values)}


def crossfit_halves(n: int, seed: int) -> list[IntArray]:
    """The two halves of the threshold cross-fitting: ``numpy.random.default_rng(seed)``
    permutes the ``n`` rows and ``numpy.array_split`` cuts the permutation in two."""
    order = np.random.default_rng(seed).permutation(n)
    return [np.asarray(half, dtype=np.int64) for half in np.array_split(order, 2)]


def _thresholds(
    probs: FloatArray,
    truth: NDArray[np.bool_],
    task_thresholds: FloatArray,
    *,
    scalar_threshold: bool,
    tune: bool,
    seed: int,
    metrics: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``thresholds`` section and ``metrics_tuned`` (``{}`` unless tuning)."""
    tuned, informative = _tuned(probs, truth, task_thresholds)
    section: dict[str, Any] = {
        "mode": "tuned" if tune else "fixed",
        "default": float(task_thresholds[0]) if scalar_threshold else None,
        "per_label": _per_label(tuned if tune else task_thresholds),
        "suggested": {
            str(i): float(tuned[i]) if informative[i] else None for i in range(tuned.shape[0])
        },
        "cross_fit": None,
        "note": TUNED_NOTE if tune else FIXED_NOTE,
    }
    if not tune:
        return section, {}
    n = truth.shape[0]
    if n < 2:
        section["note"] = f"{TUNED_NOTE} Cross-fitting needs 2 rows or more: no metrics_tuned."
        return section, {}
    halves = crossfit_halves(n, seed)
    cross_pred = np.zeros(truth.shape, dtype=bool)
    by_fold = []
    for k, half in enumerate(halves):
        fold_thresholds, _ = _tuned(probs[half], truth[half], task_thresholds)
        other = halves[1 - k]
        cross_pred[other] = probs[other] >= fold_thresholds
        by_fold.append(_per_label(fold_thresholds))
    section["cross_fit"] = {
        "n_folds": 2,
        "seed": int(seed),
        "fold_sizes": [int(half.size) for half in halves],
        "per_label_by_fold": by_fold,
    }
    # Threshold-free metrics (mAP, AUROC, loss, ECE) are those of ``metrics``.
    return section, {**metrics, **count_metrics(cross_pred, truth)}


# -------------------------------------------------------------------------------------------
# Sections
# -------------------------------------------------------------------------------------------


def _distribution(counts: IntArray) -> dict[str, int]:
    return {str(i): int(count) for i, count in enumerate(counts)}


def _cooccurrence_errors(
    truth: NDArray[np.bool_], pred: NDArray[np.bool_], names: list[str]
) -> dict[str, Any]:
    """Label pairs predicted together that should not be (see :data:`COOCCURRENCE_DEFINITION`).

    On counts, four matrix products: with ``P = y`` (present), ``A = 1 - y`` (absent) and
    ``F = ŷ·(1 - y)`` (false positive), ``count = Pᵀ F``, ``co_present = Pᵀ A``,
    ``base_count = Aᵀ F`` and ``base_total = Aᵀ A``, entry ``[a, b]``.
    """
    present = truth.astype(np.int64)
    absent = (~truth).astype(np.int64)
    false_positive = (pred & ~truth).astype(np.int64)
    count = present.T @ false_positive
    co_present = present.T @ absent
    base_count = absent.T @ false_positive
    base_total = absent.T @ absent
    conditional = _ratio(count, co_present)
    base_rate = _ratio(base_count, base_total)
    defined = base_total > 0
    excess = np.where(defined, count - base_rate * co_present, count)
    np.fill_diagonal(count, 0)
    a_index, b_index = np.nonzero(count > 0)
    order = np.lexsort((b_index, a_index, -count[a_index, b_index], -excess[a_index, b_index]))
    pairs = []
    for k in order[:MAX_COOCCURRENCE_PAIRS]:
        a, b = int(a_index[k]), int(b_index[k])
        rate = float(base_rate[a, b]) if defined[a, b] else None
        pairs.append(
            {
                "present_label": str(a),
                "present_name": names[a],
                "predicted_label": str(b),
                "predicted_name": names[b],
                "count": int(count[a, b]),
                "co_present": int(co_present[a, b]),
                "conditional_rate": float(conditional[a, b]),
                "base_count": int(base_count[a, b]),
                "base_total": int(base_total[a, b]),
                "base_rate": rate,
                "lift": float(conditional[a, b] / rate) if rate else None,
                "excess": float(excess[a, b]),
            }
        )
    return {
        "definition": COOCCURRENCE_DEFINITION,
        "n_pairs_with_errors": int(a_index.size),
        "max_pairs": MAX_COOCCURRENCE_PAIRS,
        "pairs": pairs,
    }


def _distribution_summary(
    true_counts: IntArray, pred_counts: IntArray, names: list[str]
) -> dict[str, Any]:
    """Over-/under-predicted labels (positives per label) and the collapse flag (see
    :data:`COLLAPSE_RULE`); ratio thresholds are compared on integers."""
    true_total, pred_total = int(true_counts.sum()), int(pred_counts.sum())
    present = true_counts > 0
    ratio = np.divide(
        pred_counts, true_counts, out=np.full(true_counts.shape, np.nan), where=present
    )
    labels = np.arange(true_counts.shape[0])

    def entries(selected: NDArray[np.bool_], descending: bool) -> list[dict[str, Any]]:
        index = labels[selected]
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
    # s_pred >= (1 + s_true)/2 (the max with 0.5 is redundant) is, on counts,
    # 2·pred·T >= P·(T + true) with T true positives and P predicted positives; s_true = 0 when
    # T = 0, i.e. 2·pred >= P. A label holding every true positive never collapses.
    if true_total:
        fires = (2 * pred_counts * true_total >= pred_total * (true_total + true_counts)) & (
            true_counts < true_total
        )
    else:
        fires = 2 * pred_counts >= pred_total
    fires &= pred_counts > 0
    collapse = int(np.flatnonzero(fires)[0]) if fires.any() else None
    return {
        "true_total": true_total,
        "pred_total": pred_total,
        "over_predicted": over[:MAX_DISTRIBUTION_ENTRIES],
        "under_predicted": under[:MAX_DISTRIBUTION_ENTRIES],
        "possible_collapse": collapse is not None,
        "collapse_class": None if collapse is None else str(collapse),
        "collapse_share": None if collapse is None else float(pred_counts[collapse] / pred_total),
        "collapse_true_share": (
            None
            if collapse is None or not true_total
            else float(true_counts[collapse] / true_total)
        ),
        "rule": COLLAPSE_RULE,
    }


def _class_diagnostics(
    probs: NDArray[np.floating[Any]],
    truth: NDArray[np.bool_],
    pred: NDArray[np.bool_],
    thresholds: FloatArray,
    names: list[str],
) -> list[dict[str, Any]]:
    """Per-label diagnostics, worst first: by severity, then F1 ascending, then label index.

    ``accuracy = (TP + TN) / N``; ``cohen_kappa`` is Cohen's kappa of the label's 2x2 table
    ``[[TN, FP], [FN, TP]]`` (``None`` where chance agreement is 1). Severity as in single-label
    classification: ``critical`` when a label with positives is never recalled, ``warning`` when
    recall (with positives) or precision (with predictions) is below 0.5, else ``ok``.
    """
    report = per_label_report(pred, truth)
    n = truth.shape[0]
    support, predicted = report.support, report.pred_count
    # kappa = 1 - n·(n - TP - TN) / (n² - (support·pred + (n - support)·(n - pred)))
    chance = n * n - (support * predicted + (n - support) * (n - predicted))
    disagreement = n * (n - report.tp - report.tn)
    kappa = 1.0 - _ratio(disagreement, chance)
    ap = average_precision_per_label(probs, truth) if n else np.full(support.shape, np.nan)
    auc = auroc_per_label(probs, truth) if n else np.full(support.shape, np.nan)
    critical = (support > 0) & (report.recall == 0)
    warning = ((support > 0) & (report.recall < 0.5)) | ((predicted > 0) & (report.precision < 0.5))
    severity = np.where(critical, 0, np.where(warning, 1, 2))
    labels = np.arange(support.shape[0])
    order = np.lexsort((labels, report.f1, severity))
    return [
        {
            "class_id": str(i),
            "class_name": names[i],
            "accuracy": float(report.accuracy[i]) if n else None,
            "precision": float(report.precision[i]),
            "recall": float(report.recall[i]),
            "f1": float(report.f1[i]),
            "support": int(support[i]),
            "pred_count": int(predicted[i]),
            "cohen_kappa": float(kappa[i]) if chance[i] != 0 else None,
            "average_precision": float(ap[i]) if np.isfinite(ap[i]) else None,
            "auroc": float(auc[i]) if np.isfinite(auc[i]) else None,
            "threshold": float(thresholds[i]),
            "severity": SEVERITY_ORDER[severity[i]],
            "rank": rank,
        }
        for rank, i in enumerate(order, start=1)
    ]


def calibration_bin_index(probs: FloatArray, n_bins: int = ECE_BINS) -> IntArray:
    """Bin of every probability: bin ``b`` holds ``(b/n_bins, (b+1)/n_bins]``, 0 in bin 0."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.asarray(np.clip(np.searchsorted(edges, probs, side="left") - 1, 0, n_bins - 1))


def _calibration_summary(
    probs: FloatArray, truth: NDArray[np.bool_], names: list[str]
) -> dict[str, Any]:
    """Per-label binary calibration and pooled reliability bins (see :data:`CALIBRATION_NOTE`).

    Vectorised: every (sample, label) slot gets the code ``label·B + bin``; three ``bincount``
    calls give each label's bin counts, probability sums and positive counts.
    """
    n, c = truth.shape
    edges = np.linspace(0.0, 1.0, ECE_BINS + 1)
    summary: dict[str, Any] = {
        "type": "per_label",
        "n_bins": ECE_BINS,
        "n_samples": int(n),
        "ece_mean": None,
        "per_label": {
            str(i): dict.fromkeys(("ece", "mce", "brier", "confidence_gap", "direction"))
            for i in range(c)
        },
        "bins_pooled": [],
        "note": CALIBRATION_NOTE,
    }
    if n == 0:
        return summary
    hits = truth.astype(np.float64)
    bins = calibration_bin_index(probs)
    codes = np.arange(c)[None, :] * ECE_BINS + bins
    size = c * ECE_BINS
    counts = np.bincount(codes.ravel(), minlength=size).reshape(c, ECE_BINS)
    sum_p = np.bincount(codes.ravel(), weights=probs.ravel(), minlength=size).reshape(c, -1)
    sum_y = np.bincount(codes.ravel(), weights=hits.ravel(), minlength=size).reshape(c, -1)
    gaps = np.abs(_ratio(sum_y, counts) - _ratio(sum_p, counts))  # 0 for an empty bin
    ece = (counts * gaps).sum(axis=1) / n
    mce = np.where(counts > 0, gaps, 0.0).max(axis=1)
    brier = ((probs - hits) ** 2).mean(axis=0)
    confidence = np.maximum(probs, 1.0 - probs).mean(axis=0)
    accuracy = ((probs >= 0.5) == truth).mean(axis=0)
    gap = confidence - accuracy
    for i in range(c):
        if abs(gap[i]) < CALIBRATED_GAP:
            direction = "calibrated"
        else:
            direction = "overconfident" if gap[i] > 0 else "underconfident"
        summary["per_label"][str(i)] = {
            "ece": float(ece[i]),
            "mce": float(mce[i]),
            "brier": float(brier[i]),
            "confidence_gap": float(gap[i]),
            "direction": direction,
        }
    pooled_counts = counts.sum(axis=0)
    pooled_p, pooled_y = sum_p.sum(axis=0), sum_y.sum(axis=0)
    summary["ece_mean"] = float(ece.mean())
    summary["bins_pooled"] = [
        {
            "lower": float(edges[b]),
            "upper": float(edges[b + 1]),
            "count": int(pooled_counts[b]),
            "mean_confidence": float(pooled_p[b] / pooled_counts[b]) if pooled_counts[b] else None,
            "accuracy": float(pooled_y[b] / pooled_counts[b]) if pooled_counts[b] else None,
        }
        for b in range(ECE_BINS)
    ]
    return summary


def random_folds(n: int, n_folds: int, seed: int) -> list[IntArray]:
    """Rows of each fold of ``cv_results``: ``numpy.random.default_rng(seed)`` permutes the
    ``n`` rows and ``numpy.array_split`` cuts the permutation into ``n_folds`` near-equal parts."""
    order = np.random.default_rng(seed).permutation(n)
    return [np.asarray(fold, dtype=np.int64) for fold in np.array_split(order, n_folds)]


def _cv_results(
    truth: NDArray[np.bool_], pred: NDArray[np.bool_], n_folds: int, seed: int
) -> dict[str, Any]:
    """Metric variability over disjoint folds of the cached predictions (no retraining)."""
    per_fold = []
    for k, fold in enumerate(random_folds(truth.shape[0], n_folds, seed)):
        values = count_metrics(pred[fold], truth[fold])
        per_fold.append(
            {"fold": k, **{name: values[name] for name in CV_METRICS}, "support": int(fold.size)}
        )
    global_metrics: dict[str, float] = {}
    for name in CV_METRICS:
        column = np.asarray([entry[name] for entry in per_fold], dtype=np.float64)
        global_metrics[f"mean_{name}"] = float(column.mean())
        global_metrics[f"std_{name}"] = float(column.std())
    return {
        "n_folds": n_folds,
        "method": "random_split_of_cached_predictions",
        "note": CV_NOTE,
        "global_metrics": global_metrics,
        "per_fold_metrics": per_fold,
    }


def _confident_errors(
    truth: NDArray[np.bool_],
    pred: NDArray[np.bool_],
    rows: IntArray,
    losses: FloatArray,
    names: list[str],
    sample_ids: Sequence[str],
    max_errors: int,
) -> list[dict[str, Any]]:
    """The rows with at least one wrong label and the highest per-sample loss (loss desc, NaN
    last, then row index): the first place to look for label errors."""
    wrong_rows = np.flatnonzero((pred != truth).any(axis=1))
    index = rows[wrong_rows]
    loss = losses[index]
    chosen = np.lexsort((index, -loss))[:max_errors]
    errors = []
    for k in chosen:
        position, row = int(wrong_rows[k]), int(index[k])
        true_labels = [int(i) for i in np.flatnonzero(truth[position])]
        pred_labels = [int(i) for i in np.flatnonzero(pred[position])]
        errors.append(
            {
                "index": row,
                "sample_id": str(sample_ids[row]) if len(sample_ids) else str(row),
                "true_labels": true_labels,
                "true_names": [names[i] for i in true_labels],
                "pred_labels": pred_labels,
                "pred_names": [names[i] for i in pred_labels],
                "wrong_labels": [int(i) for i in np.flatnonzero(pred[position] != truth[position])],
                "loss": float(loss[k]) if np.isfinite(loss[k]) else None,
            }
        )
    return errors
