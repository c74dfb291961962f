"""The ``multilabel`` task object: BCE with logits, sigmoid, thresholds and the metrics."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike, NDArray

from bnnr_multilabel.metrics import check_threshold, decode_threshold, multilabel_metrics


class MultilabelTask:
    """Multi-label classification (satisfies :class:`bnnr_core.protocols.Task`).

    :param threshold: decision threshold used by :meth:`decode` and :meth:`compute_metrics`: a
        number, or one value per label (e.g. from
        :func:`bnnr_multilabel.thresholds.tune_thresholds`); each in ``[0, 1]``.

    Tensor methods keep the device of their input; metrics take numpy arrays.
    """

    name: str = "multilabel"

    def __init__(self, threshold: float | ArrayLike = 0.5) -> None:
        values = np.asarray(threshold, dtype=np.float64)
        # The label count is unknown until data arrives, so only the values are checked here.
        check_threshold(values, values.shape[0] if values.ndim == 1 else 1)
        self.threshold: float | NDArray[np.float64] = (
            float(values) if values.ndim == 0 else values.copy()
        )

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

    def __repr__(self) -> str:
        threshold = self.threshold if isinstance(self.threshold, float) else self.threshold.tolist()
        return f"MultilabelTask(threshold={threshold!r})"
