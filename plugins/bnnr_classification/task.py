"""The ``classification`` task object: cross-entropy, softmax, argmax and the metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike, NDArray

from bnnr_classification.metrics import classification_metrics, decode_argmax


class ClassificationTask:
    """Single-label classification (satisfies :class:`bnnr_core.protocols.Task`).

    Tensor methods keep the device of their input; metrics take numpy arrays.
    """

    name: str = "classification"
    #: The metric a report leads with: robust to class imbalance, unlike plain accuracy.
    headline_metric: str = "balanced_accuracy"

    def per_sample_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of every sample, shape ``(N,)``, on the device and in the dtype of
        ``logits``. ``targets`` are class indices ``(N,)`` of any integer dtype."""
        return F.cross_entropy(logits, targets.long(), reduction="none")

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Softmax over the last dimension, on the device of ``logits``.

        Half-precision logits are computed in float32 (and returned so), since float16/bfloat16
        softmax loses mass in the tail and bfloat16 cannot be turned into numpy; float32 and
        float64 keep their dtype. A row with a NaN or ``+inf`` logit, or with only ``-inf``
        logits, comes out all NaN (``-inf`` next to finite logits is a masked class and gets 0):
        :meth:`decode` maps such a row to ``-1`` and :meth:`compute_metrics` counts it in
        ``nonfinite_rows`` instead of scoring it.
        """
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        return torch.softmax(logits, dim=-1)

    def decode(self, probabilities: NDArray[np.floating]) -> NDArray[np.int64]:
        """Arg-max class per row ``(N,)``; ``-1`` for a row with a non-finite value."""
        return decode_argmax(probabilities)

    def compute_metrics(
        self, probabilities: NDArray[np.floating], targets: NDArray[np.integer], *, num_classes: int
    ) -> dict[str, float | None]:
        """Metrics over the whole set; see
        :func:`bnnr_classification.metrics.classification_metrics`."""
        return classification_metrics(probabilities, targets, num_classes=num_classes)

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
        """The classification sections of the analysis report (metrics with bootstrap
        intervals, confusion, distributions, class diagnostics, calibration, fold variability,
        confident errors); see :func:`bnnr_classification.report.classification_sections`."""
        from bnnr_classification.report import classification_sections

        return classification_sections(
            probabilities,
            targets,
            per_sample_loss,
            class_names=class_names,
            sample_ids=sample_ids,
            seed=seed,
            cv_folds=cv_folds,
            n_bootstrap=n_bootstrap,
            max_errors=max_errors,
        )

    def __repr__(self) -> str:
        return "ClassificationTask()"
