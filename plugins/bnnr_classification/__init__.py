"""Built-in task ``classification``: single-label classification of images.

The task object (:class:`bnnr_classification.task.ClassificationTask`) owns the loss
(cross-entropy), the probabilities (softmax), decoding (argmax) and the metrics, so analyze and
training share one definition of each. The pure-numpy helpers live in submodules other plugins
may import:

* :mod:`bnnr_classification.metrics`: confusion matrix, metrics over a whole set, per-class report;
* :mod:`bnnr_classification.calibration`: reliability bins, ECE, MCE, Brier score;
* :mod:`bnnr_classification.bootstrap`: seeded percentile-bootstrap confidence intervals;
* :mod:`bnnr_classification.report`: the task's sections of an analysis report (metrics with
  intervals, confusion, distributions, class diagnostics, calibration, folds, confident errors).

Importing this package is cheap (no torch, no numpy): the hook only registers a factory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bnnr_core import hookimpl
from bnnr_core.components import RegisterFn

if TYPE_CHECKING:
    from bnnr_classification.task import ClassificationTask

TASK_NAME = "classification"


def _make_task() -> ClassificationTask:
    from bnnr_classification.task import ClassificationTask

    return ClassificationTask()


@hookimpl
def bnnr_register_tasks(register: RegisterFn) -> None:
    """Register the ``classification`` task."""
    register(
        TASK_NAME,
        _make_task,
        description=(
            "Single-label classification: softmax, cross-entropy, argmax; accuracy, balanced "
            "accuracy, macro F1/precision/recall, Cohen's kappa, MCC, ECE, top-5 accuracy."
        ),
    )
