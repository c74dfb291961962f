"""Calibration: reliability bins, expected and maximum calibration error, Brier score.

Binning convention (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017):
``n_bins`` equal-width bins over ``[0, 1]``; bin ``b`` holds the confidences in
``(b/n_bins, (b+1)/n_bins]``, and a confidence of exactly 0 falls in the first bin. With top-label
confidence (the largest probability of a row) and ``correct`` = "the arg-max is the true class":

* ``ECE = Σ_b (n_b / N) · |accuracy_b - confidence_b|`` over the non-empty bins;
* ``MCE = max_b |accuracy_b - confidence_b|`` over the non-empty bins.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np
from numpy.typing import ArrayLike, NDArray


@attrs.frozen(kw_only=True, eq=False)
class CalibrationBins:
    """Equal-width reliability bins: ``edges`` has ``n_bins + 1`` values, the rest ``n_bins``.

    ``mean_confidence`` and ``accuracy`` are NaN for an empty bin; :meth:`records` turns them
    into ``None`` for JSON.
    """

    edges: NDArray[np.float64]
    counts: NDArray[np.int64]
    mean_confidence: NDArray[np.float64]
    accuracy: NDArray[np.float64]

    @property
    def gaps(self) -> NDArray[np.float64]:
        """``|accuracy - mean_confidence|`` per bin (NaN for an empty bin)."""
        return np.asarray(np.abs(self.accuracy - self.mean_confidence))

    def records(self) -> list[dict[str, Any]]:
        """One JSON-friendly dict per bin (``lower``, ``upper``, ``count``, ``mean_confidence``,
        ``accuracy``), the two means ``None`` for an empty bin: a reliability diagram's data."""
        return [
            {
                "lower": float(self.edges[b]),
                "upper": float(self.edges[b + 1]),
                "count": int(self.counts[b]),
                "mean_confidence": float(self.mean_confidence[b]) if self.counts[b] else None,
                "accuracy": float(self.accuracy[b]) if self.counts[b] else None,
            }
            for b in range(self.counts.shape[0])
        ]


def calibration_bins(
    confidences: ArrayLike, correct: ArrayLike, n_bins: int = 15
) -> CalibrationBins:
    """Bin ``confidences (N,)`` in ``[0, 1]`` with their ``correct (N,)`` flags (bool or 0/1).

    See the module docstring for the bin edges. Vectorised: one ``searchsorted`` and three
    ``bincount`` calls.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    conf = np.asarray(confidences, dtype=np.float64)
    hits = np.asarray(correct, dtype=np.float64)
    if conf.ndim != 1 or conf.shape != hits.shape:
        raise ValueError(
            f"confidences and correct must be 1-D of equal length: {conf.shape}, {hits.shape}"
        )
    if conf.size and not (np.isfinite(conf).all() and conf.min() >= 0 and conf.max() <= 1):
        raise ValueError("confidences must be finite and lie in [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # side="left" puts c == edges[b+1] into bin b: right-closed bins, as in the docstring.
    index = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=conf, minlength=n_bins) / counts
        accuracy = np.bincount(index, weights=hits, minlength=n_bins) / counts
    return CalibrationBins(
        edges=edges,
        counts=counts.astype(np.int64),
        mean_confidence=mean_confidence,
        accuracy=accuracy,
    )


def expected_calibration_error(
    confidences: ArrayLike, correct: ArrayLike, n_bins: int = 15
) -> float | None:
    """ECE: count-weighted mean gap between accuracy and confidence; ``None`` for an empty set."""
    bins = calibration_bins(confidences, correct, n_bins)
    total = int(bins.counts.sum())
    if total == 0:
        return None
    filled = bins.counts > 0
    return float((bins.counts[filled] * bins.gaps[filled]).sum() / total)


def max_calibration_error(
    confidences: ArrayLike, correct: ArrayLike, n_bins: int = 15
) -> float | None:
    """MCE: the largest gap over the non-empty bins; ``None`` for an empty set."""
    bins = calibration_bins(confidences, correct, n_bins)
    filled = bins.counts > 0
    if not filled.any():
        return None
    return float(bins.gaps[filled].max())


def brier_score(probabilities: ArrayLike, targets: ArrayLike) -> float:
    """Multiclass Brier score: mean over samples of ``Σ_k (p_k - 1[y = k])²``, in ``[0, 2]``.

    (Brier's original definition; for two classes it is twice sklearn's binary
    ``brier_score_loss``.)
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(targets, dtype=np.int64)
    if probs.ndim != 2 or labels.shape != (probs.shape[0],):
        raise ValueError(
            f"need probabilities (N, C) and targets (N,), got {probs.shape}, {labels.shape}"
        )
    if labels.size == 0:
        raise ValueError("brier_score of an empty set is undefined")
    one_hot = np.zeros_like(probs)
    one_hot[np.arange(labels.shape[0]), labels] = 1.0
    return float(((probs - one_hot) ** 2).sum(axis=1).mean())
