"""The ``multilabel`` task object: BCE with logits, sigmoid, thresholds and the metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike, NDArray

from bnnr_multilabel.metrics import check_threshold, decode_threshold, multilabel_metrics


class MultilabelTask:
    """Multi-label classification (satisfies :class:`bnnr_core.protocols.Task`).

    :param threshold: decision threshold used by :meth:`decode`, :meth:`compute_metrics` and
        the report sections: a number, or one value per label (e.g. from
        :func:`bnnr_multilabel.thresholds.tune_thresholds`); each in ``[0, 1]``.
    :param tune_thresholds: in :meth:`report_sections`, also tune per-label thresholds on the
        cached predictions and report out-of-sample tuned metrics (2-fold cross-fitting, no extra
        inference). Decoding keeps using ``threshold``.

    Tensor methods keep the device of their input; metrics take numpy arrays.
    """

    name: str = "multilabel"
    #: The metric a report leads with: every label counts equally, unlike subset accuracy
    #: (which falls with the number of labels) or micro F1 (dominated by frequent labels).
    headline_metric: str = "f1_macro"

    def __init__(self, threshold: float | ArrayLike = 0.5, tune_thresholds: bool = False) -> None:
        values = np.asarray(threshold, dtype=np.float64)
        # The label count is unknown until data arrives, so only the values are checked here.
        check_threshold(values, values.shape[0] if values.ndim == 1 else 1)
        self.threshold: float | NDArray[np.float64] = (
            float(values) if values.ndim == 0 else values.copy()
        )
        if not isinstance(tune_thresholds, (bool, np.bool_)):
            raise TypeError(f"tune_thresholds must be True or False, got {tune_thresholds!r}")
        self.tune_thresholds = bool(tune_thresholds)

    def per_sample_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy with logits, averaged over the labels of each sample: shape
        ``(N,)``, on the device and in the dtype of ``logits``. ``targets (N, C)`` are 0/1 (soft
        targets in ``[0, 1]`` work too) of any dtype."""
        per_label = F.binary_cross_entropy_with_logits(
            logits, targets.to(dtype=logits.dtype), reduction="none"
        )
        return per_label.mean(dim=-1)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Element-wise sigmoid, on the device of ``logits``.

        Half-precision logits are computed in float32 (and returned so; bfloat16 cannot be turned
        into numpy); float32 and float64 keep their dtype. A NaN logit gives a NaN probability
        (``±inf`` give 1 and 0): such rows decode to "no label" and are counted in
        ``nonfinite_rows`` by :meth:`compute_metrics` instead of being scored.
        """
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        return torch.sigmoid(logits)

    def decode(
        self,
        probabilities: NDArray[np.floating],
        threshold: float | ArrayLike | None = None,
    ) -> NDArray[np.int64]:
        """Multi-hot predictions ``(N, C)``: 1 where ``p >= threshold``; ``threshold`` defaults
        to the task's own, and may be a number or one value per label."""
        chosen = self.threshold if threshold is None else threshold
        return decode_threshold(probabilities, chosen)

    def compute_metrics(
        self, probabilities: NDArray[np.floating], targets: NDArray[np.integer], *, num_classes: int
    ) -> dict[str, float | None]:
        """Metrics over the whole set at the task's threshold; see
        :func:`bnnr_multilabel.metrics.multilabel_metrics`."""
        return multilabel_metrics(
            probabilities, targets, num_classes=num_classes, threshold=self.threshold
        )

    def report_sections(
        self,
        *,
        probabilities: ArrayLike,
        targets: ArrayLike,
        per_sample_loss: ArrayLike,
        class_names: Sequence[str],
        sample_ids: Sequence[str] = (),
        seed: int = 0,
        cv_folds: int = 0,
        n_bootstrap: int = 1000,
        max_errors: int = 20,
    ) -> dict[str, Any]:
        """The multi-label sections of the analysis report (metrics with bootstrap intervals,
        thresholds, per-label confusion, co-occurrence errors, distributions, label diagnostics,
        per-label calibration, fold variability, high-loss errors) at the task's threshold; see
        :func:`bnnr_multilabel.report.multilabel_sections`."""
        from bnnr_multilabel.report import multilabel_sections

        return multilabel_sections(
            probabilities,
            targets,
            per_sample_loss,
            class_names=class_names,
            threshold=self.threshold,
            tune_thresholds=self.tune_thresholds,
            sample_ids=sample_ids,
            seed=seed,
            cv_folds=cv_folds,
            n_bootstrap=n_bootstrap,
            max_errors=max_errors,
        )

    def __repr__(self) -> str:
        threshold = self.threshold if isinstance(self.threshold, float) else self.threshold.tolist()
        if self.tune_thresholds:
            return f"MultilabelTask(threshold={threshold!r}, tune_thresholds=True)"
        return f"MultilabelTask(threshold={threshold!r})"
