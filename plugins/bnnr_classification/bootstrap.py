"""Percentile-bootstrap confidence intervals, seeded and vectorised.

A resample draws N indices with replacement (``numpy.random.default_rng(seed)``); the interval is
the ``alpha/2`` and ``1 - alpha/2`` quantiles (linear interpolation) of the metric over the
resamples. Resamples are processed in chunks sized from N and C only, so the result is a pure
function of the inputs and the seed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: Upper bound on the elements of one chunk's index matrix or confusion stack (~128 MiB int64).
_CHUNK_ELEMENTS = 1 << 24

ConfusionMetric = Callable[[NDArray[np.int64]], ArrayLike]


def _check(n_samples: int, n_resamples: int, alpha: float) -> None:
    if n_samples < 1:
        raise ValueError("a bootstrap needs at least one sample")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")


def _interval(values: NDArray[np.float64], alpha: float) -> tuple[float, float] | None:
    # A resample can make a metric undefined (e.g. kappa when it holds one class only); those
    # are dropped rather than counted as any particular value.
    defined = values[np.isfinite(values)]
    if defined.size == 0:
        return None
    low, high = np.quantile(defined, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_ci(
    metric_fn: ConfusionMetric,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    num_classes: int,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float] | None:
    """Confidence interval ``(low, high)`` of a confusion-matrix metric.

    :param metric_fn: maps a stack of confusion matrices ``(R, C, C)`` to ``R`` values, e.g.
        any of :data:`bnnr_classification.metrics.CONFUSION_METRICS`.
    :param y_true: ``(N,)`` true classes; ``y_pred``: ``(N,)`` predicted classes, in ``[0, C)``.
    :param num_classes: ``C``.
    :param n_resamples: number of bootstrap resamples ``R``.
    :param seed: seed of ``numpy.random.default_rng``; same inputs and seed, same interval.
    :param alpha: 1 - confidence level (0.05 gives a 95 % interval).
    :returns: ``(low, high)``, or ``None`` if the metric is undefined on every resample.
    """
    return bootstrap_cis(
        {"metric": metric_fn},
        y_true,
        y_pred,
        num_classes=num_classes,
        n_resamples=n_resamples,
        seed=seed,
        alpha=alpha,
    )["metric"]


def bootstrap_cis(
    metric_fns: Mapping[str, ConfusionMetric],
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    num_classes: int,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, tuple[float, float] | None]:
    """:func:`bootstrap_ci` of several metrics from the same resamples: each chunk's
    confusion matrices are built once and every metric reads them. Each interval equals the one
    :func:`bootstrap_ci` gives for that metric alone with the same seed.

    The confusion matrices of a chunk of resamples come from one ``np.bincount``: each resampled
    (true, predicted) pair is coded ``r·C² + true·C + pred``.
    """
    true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    if true.ndim != 1 or true.shape != pred.shape:
        raise ValueError(
            f"y_true and y_pred must be 1-D of equal length: {true.shape}, {pred.shape}"
        )
    _check(true.shape[0], n_resamples, alpha)
    for name, labels in (("y_true", true), ("y_pred", pred)):
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"{name} must lie in [0, {num_classes - 1}]")
    cells = num_classes * num_classes
    pair_code = true * num_classes + pred
    n = true.shape[0]
    chunk = max(1, min(n_resamples, _CHUNK_ELEMENTS // max(n, cells)))
    rng = np.random.default_rng(seed)
    values: dict[str, list[NDArray[np.float64]]] = {name: [] for name in metric_fns}
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        indices = rng.integers(0, n, size=(size, n))
        codes = pair_code[indices] + (np.arange(size, dtype=np.int64) * cells)[:, None]
        stack = np.bincount(codes.ravel(), minlength=size * cells).reshape(
            size, num_classes, num_classes
        )
        for name, metric_fn in metric_fns.items():
            values[name].append(np.asarray(metric_fn(stack), dtype=np.float64).reshape(size))
    return {name: _interval(np.concatenate(parts), alpha) for name, parts in values.items()}


def bootstrap_mean_ci(
    values: ArrayLike, *, n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float] | None:
    """Confidence interval ``(low, high)`` of the mean of per-sample ``values (N,)`` (e.g. the
    per-sample loss); same resampling and conventions as :func:`bootstrap_ci`."""
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {data.shape}")
    _check(data.shape[0], n_resamples, alpha)
    n = data.shape[0]
    chunk = max(1, min(n_resamples, _CHUNK_ELEMENTS // n))
    rng = np.random.default_rng(seed)
    means = [
        data[rng.integers(0, n, size=(min(chunk, n_resamples - start), n))].mean(axis=1)
        for start in range(0, n_resamples, chunk)
    ]
    return _interval(np.concatenate(means), alpha)
