"""Per-label decision thresholds that maximise F1 on held-out data.

Tune on a validation split, never on the data you report: the tuned F1 on the tuning data is
optimistic by construction.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from bnnr_multilabel.metrics import check_inputs, check_threshold

#: Candidate thresholds 0.01, 0.02, ..., 0.99.
DEFAULT_GRID: NDArray[np.float64] = np.round(np.arange(1, 100) / 100, 2)


def f1_over_grid(
    probabilities: ArrayLike, targets: ArrayLike, grid: ArrayLike
) -> NDArray[np.float64]:
    """F1 ``(C, G)`` of every label at every threshold of an increasing ``grid (G,)``.

    Vectorised: each probability is placed among the grid values once (``searchsorted``); label
    ``c`` is predicted at threshold ``k`` iff ``p >= grid[k]``, i.e. iff more than ``k`` grid
    values are ``<= p``. Two ``bincount`` calls give, per label, how many samples (all, and
    positives) pass each threshold; F1 = ``2·TP / (predicted + positives)``, 0 when both are 0.
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    truth = np.asarray(targets).astype(bool)
    thresholds = np.asarray(grid, dtype=np.float64)
    n_labels, n_grid = probs.shape[1], thresholds.shape[0]
    passed = np.searchsorted(thresholds, probs, side="right")  # (N, C) values in [0, G]
    codes = (np.arange(n_labels) * (n_grid + 1))[None, :] + passed
    size = n_labels * (n_grid + 1)
    all_hist = np.bincount(codes.ravel(), minlength=size).reshape(n_labels, n_grid + 1)
    pos_hist = np.bincount(codes[truth], minlength=size).reshape(n_labels, n_grid + 1)
    # "passes threshold k" = "passed > k": suffix sums over passed = k+1 .. G.
    predicted = np.cumsum(all_hist[:, ::-1], axis=1)[:, ::-1][:, 1:]
    true_positives = np.cumsum(pos_hist[:, ::-1], axis=1)[:, ::-1][:, 1:]
    positives = truth.sum(axis=0)[:, None]
    denominator = (predicted + positives).astype(np.float64)
    f1 = np.zeros(denominator.shape)
    np.divide(2.0 * true_positives, denominator, out=f1, where=denominator > 0)
    return f1


def tune_thresholds(
    probabilities: ArrayLike,
    targets: ArrayLike,
    *,
    grid: ArrayLike | None = None,
    default: float = 0.5,
) -> NDArray[np.float64]:
    """Per-label thresholds ``(C,)`` maximising each label's F1 on held-out data.

    :param probabilities: ``(N, C)`` sigmoid outputs on the held-out set.
    :param targets: ``(N, C)`` multi-hot targets of that set.
    :param grid: candidate thresholds in ``[0, 1]`` (sorted and de-duplicated here);
        default :data:`DEFAULT_GRID`.
    :param default: threshold kept for a label where no candidate reaches F1 > 0 (e.g. a label
        without positives in the held-out set).
    :returns: one threshold per label, for :meth:`MultilabelTask.decode` or the task's
        ``threshold`` option.

    Several thresholds often tie (every threshold between two neighbouring scores gives the same
    predictions); the middle one of the maximisers is chosen, as the least tuned to this sample.
    Rows with a non-finite probability are ignored.
    """
    probs = np.asarray(probabilities)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must have shape (N, C), got {probs.shape}")
    probs, truth = check_inputs(probs, targets, probs.shape[1])
    fallback = float(check_threshold(default, 1)[0])
    candidates = np.unique(np.asarray(DEFAULT_GRID if grid is None else grid, dtype=np.float64))
    if candidates.size == 0:
        raise ValueError("the threshold grid is empty")
    check_threshold(candidates, candidates.shape[0])
    keep = np.isfinite(probs).all(axis=1)
    f1 = f1_over_grid(probs[keep], truth[keep], candidates)
    best = f1.max(axis=1, keepdims=True)
    # Exact equality is safe: equal F1 values are the same ratio of integers, rounded once.
    is_best = f1 == best
    middle_rank = (is_best.sum(axis=1) - 1) // 2 + 1
    chosen = np.argmax(np.cumsum(is_best, axis=1) >= middle_rank[:, None], axis=1)
    return np.where(best[:, 0] > 0, candidates[chosen], fallback)
