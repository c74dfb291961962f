"""What the object a component factory returns must look like, per component kind.

These are structural types (``typing.Protocol``): a plugin needs no base class, only the
attributes and methods below. The engines in the core call nothing else. Tensors are
``torch.Tensor`` and arrays ``numpy.ndarray``; torch is imported for type checking only, so
importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import torch


@runtime_checkable
class Task(Protocol):
    """A task path (single-label classification, multi-label, ...).

    Loss, decoding and metrics live here, not in the engines, so analyze and training use one
    definition of each.
    """

    #: Registered name, e.g. ``"classification"``.
    name: str

    def per_sample_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Loss of every sample, shape ``(N,)``, on the device of ``logits``."""
        ...

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, C)`` to probabilities ``(N, C)`` (softmax or sigmoid)."""
        ...

    def decode(self, probabilities: np.ndarray) -> np.ndarray:
        """Probabilities to predictions: class indices ``(N,)`` or a multi-hot ``(N, C)``.

        A task may accept task-specific keyword options (the multi-label task takes
        ``threshold=``); engines call ``decode`` with ``probabilities`` only, so the task's own
        configured decision rule applies.
        """
        ...

    def compute_metrics(
        self, probabilities: np.ndarray, targets: np.ndarray, *, num_classes: int
    ) -> dict[str, float | None]:
        """Metrics over the whole set (never a mean of per-batch values).

        A metric that cannot be computed (e.g. undefined on the data) is ``None``.
        """
        ...


@runtime_checkable
class AnalysisTask(Task, Protocol):
    """A task ``bnnr analyze`` can report on: it adds its own report sections.

    The engine runs the model once and hands the cached arrays here; everything task-specific
    in ``analysis_report.json`` (metrics with intervals, confusion, distributions, class
    diagnostics, calibration, folds) comes from this method.
    """

    #: The metric the health score starts from (e.g. ``"balanced_accuracy"``).
    headline_metric: str

    def report_sections(
        self,
        *,
        probabilities: np.ndarray,
        targets: np.ndarray,
        per_sample_loss: np.ndarray,
        class_names: Sequence[str],
        sample_ids: Sequence[str] = (),
        seed: int = 0,
        cv_folds: int = 0,
        n_bootstrap: int = 1000,
    ) -> dict[str, Any]:
        """Report sections keyed by their top-level report key; JSON-friendly values."""
        ...


@runtime_checkable
class Augmentation(Protocol):
    """A batch augmentation: images ``(N, C, H, W)`` in, images of the same shape out."""

    name: str

    def __call__(self, images: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor: ...


@runtime_checkable
class XaiMethod(Protocol):
    """A saliency method: one batch of maps in ``[0, 1]`` at input resolution, on the input's
    device, for the given target class of each image."""

    name: str

    def explain(
        self, model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor: ...


@runtime_checkable
class DataQualityCheck(Protocol):
    """A data-quality check over a dataset view; returns issue dictionaries (JSON-friendly).

    ``view`` is a :class:`bnnr_core.analysis.data_quality.DataQualityView` (the images of each
    split decoded once, their statistics and hashes, and the model's outputs); ``config`` is the
    check's ``defaults`` updated with the user's thresholds. A check may also define ``defaults``
    (every threshold it accepts, with its default), and raise
    :class:`bnnr_core.analysis.data_quality.CheckSkipped` when the view lacks what it needs.
    Issue keys: docs/data-quality.md.
    """

    name: str

    def run(self, view: Any, *, config: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]: ...


@runtime_checkable
class FailureDetector(Protocol):
    """A failure-pattern detector over an :class:`bnnr_core.analysis.evaluation.Evaluation`;
    returns pattern dictionaries (keys in docs/findings.md, checked by
    :func:`bnnr_core.analysis.findings.check_pattern`)."""

    name: str

    def detect(self, evaluation: Any) -> Sequence[Mapping[str, Any]]: ...


@runtime_checkable
class Exporter(Protocol):
    """Writes a report document (an analysis or run report) as files under ``output_dir``.

    Returns the paths written. Writes are atomic: a failed export leaves no half-written file.
    """

    name: str

    def export(
        self, report: Mapping[str, Any], output_dir: Path, *, artifact_root: Path | None = None
    ) -> list[Path]: ...
