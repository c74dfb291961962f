"""Built-in task ``multilabel``: several independent labels per image.

The task object (:class:`bnnr_multilabel.task.MultilabelTask`) owns the loss (binary
cross-entropy with logits, mean over labels), the probabilities (sigmoid), decoding (a threshold,
scalar or per label) and the metrics. Pure-numpy helpers:

* :mod:`bnnr_multilabel.metrics`: metrics over a whole set, per-label report, average precision
  and ROC AUC per label;
* :mod:`bnnr_multilabel.thresholds`: per-label thresholds that maximise F1 on held-out data;
* :mod:`bnnr_multilabel.report`: the report sections of ``bnnr analyze`` (headline metric
  ``f1_macro``), from the cached predictions of one evaluation pass.

Factory options: ``threshold`` (a number or one per label, default 0.5) and
``tune_thresholds`` (default ``False``: when ``True`` the report also tunes per-label thresholds
and gives out-of-sample tuned metrics by 2-fold cross-fitting of the cached predictions).

Importing this package is cheap (no torch, no numpy): the hook only registers a factory. This
plugin does not depend on ``bnnr_classification``; either can be removed on its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bnnr_core import hookimpl
from bnnr_core.components import RegisterFn

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bnnr_multilabel.task import MultilabelTask

TASK_NAME = "multilabel"


def _make_task(
    threshold: float | Sequence[float] = 0.5, tune_thresholds: bool = False
) -> MultilabelTask:
    from bnnr_multilabel.task import MultilabelTask

    return MultilabelTask(threshold=threshold, tune_thresholds=tune_thresholds)


@hookimpl
def bnnr_register_tasks(register: RegisterFn) -> None:
    """Register the ``multilabel`` task (factory options: ``threshold``, default 0.5, and
    ``tune_thresholds``, default ``False``)."""
    register(
        TASK_NAME,
        _make_task,
        description=(
            "Multi-label classification: sigmoid, binary cross-entropy, per-label thresholds; "
            "F1 (samples/macro/micro), subset accuracy, Hamming loss, mAP, macro ROC AUC."
        ),
    )
