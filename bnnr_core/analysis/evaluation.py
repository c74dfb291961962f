"""What one evaluation pass produced, shared read-only by every later analysis step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import numpy as np

#: Severities of failure patterns and findings, most severe first.
SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "low")
#: Confidence levels of findings, strongest first.
CONFIDENCES: tuple[str, ...] = ("high", "medium", "low")
#: Report sections whose findings count separately in the health score.
#: ``predictions``: failure detectors over the cached predictions; ``xai``: saliency maps;
#: ``data_quality``: data-quality checks.
FINDING_SECTIONS: tuple[str, ...] = ("predictions", "xai", "data_quality")


@attrs.frozen(kw_only=True, eq=False)
class Evaluation:
    """The cached results of the single inference pass, plus the task's report sections.

    Arrays are in dataset order and must not be modified (they are shared by every step).
    Class ids in reports are the strings ``"0"`` .. ``"C-1"``; ``class_names`` gives the
    human-readable name of each.
    """

    #: Registered task name, e.g. ``"classification"``.
    task: str
    class_names: tuple[str, ...]
    #: ``(N, C)`` probabilities (rows of NaN where the model produced non-finite logits).
    probabilities: np.ndarray
    #: ``(N,)`` class indices, or ``(N, C)`` multi-hot targets.
    targets: np.ndarray
    #: ``(N,)`` decoded class indices (``-1`` for a non-finite row), or ``(N, C)`` multi-hot.
    predictions: np.ndarray
    #: ``(N,)`` loss of every sample.
    per_sample_loss: np.ndarray
    #: ``(N, D)`` penultimate-layer features, or ``None``.
    embeddings: np.ndarray | None = None
    #: ``(N,)`` position of each row's image in the data set (rows skip undecodable files, so
    #: row ``i`` is not always image ``i``); ``None`` when rows and positions coincide.
    dataset_indices: np.ndarray | None = None
    #: One identifier per sample: the file path relative to the data root, or
    #: ``"<dataset>:<split>:<index>"`` for array data sets.
    sample_ids: tuple[str, ...] = ()
    #: The task's report sections (``metrics``, ``confusion``, ``class_diagnostics``,
    #: ``distribution_summary``, ``calibration_summary``, ...), already JSON-friendly.
    sections: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def num_samples(self) -> int:
        return int(self.probabilities.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_name(self, class_id: str | int) -> str:
        """Human-readable name of a class id (``"3"`` or ``3``); the id itself if unknown."""
        try:
            return self.class_names[int(class_id)]
        except (ValueError, IndexError):
            return str(class_id)
