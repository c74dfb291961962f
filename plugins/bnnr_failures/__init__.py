"""Built-in failure-pattern detectors for single-label and multi-label classification.

Each detector is its own ``failure_detector`` component, so one can be disabled or replaced
without touching the others. The single-label detectors live in :mod:`bnnr_failures.detectors`
(numpy only), the multi-label ones in :mod:`bnnr_failures.multilabel` (no numpy); neither
imports another plugin, and both are imported by the factory only, so importing this package
stays cheap. Every detector returns ``[]`` for a task it does not understand. What fires each
detector, and its thresholds, is documented in ``docs/findings.md``.
"""

from __future__ import annotations

from collections.abc import Callable

from bnnr_core import hookimpl
from bnnr_core.components import RegisterFn
from bnnr_core.protocols import FailureDetector

#: Single-label detectors: component name -> description, in the order they run.
CLASSIFICATION_DETECTORS: dict[str, str] = {
    "zero_recall_class": "A class with at least 5 samples none of which is predicted correctly.",
    "near_zero_recall": "A class with at least 5 samples and recall above 0 but below 0.2.",
    "low_overall_accuracy": "Balanced accuracy below 0.5; says when it is near chance level.",
    "class_collapse": "One class takes most predictions (distribution_summary.possible_collapse).",
    "confused_pair": "Off-diagonal confusion cells of at least 2 samples and 5 % of the class.",
    "over_predicted_class": "A class predicted at least 10 times and twice as often as it occurs.",
    "overconfident_errors": "At least 5 errors with probability >= 0.9, 25 % of all errors.",
    "poor_calibration": "Expected calibration error of at least 0.1, with its direction.",
    "minority_class_suppression": "A rare class whose recall is below the median recall.",
}
#: Multi-label detectors: component name -> description, in the order they run.
MULTILABEL_DETECTORS: dict[str, str] = {
    "multilabel_zero_recall": "Multi-label: a label with at least 5 positives, none predicted.",
    "multilabel_near_zero_recall": "Multi-label: a label with 5+ positives and recall below 0.2.",
    "low_multilabel_f1_macro": "Multi-label: macro F1 below 0.35, against the all-positive F1.",
    "multilabel_prediction_imbalance": "Multi-label: one label takes most predicted positives.",
    "multilabel_cooccurrence_shortcut": (
        "Multi-label: a label falsely predicted 3x more often when another is present."
    ),
    "multilabel_fp_bias": "Multi-label: fp >= 5 and >= 3x fn; raise the label's threshold.",
    "multilabel_fn_bias": "Multi-label: fn >= 5 and >= 3x fp; lower the label's threshold.",
    "multilabel_poor_calibration": "Multi-label: mean per-label calibration error of 0.1 or more.",
    "multilabel_rare_label": "Multi-label: a rare label whose recall is below the median recall.",
}
#: Every detector of this plugin, in the order they run.
DETECTORS: dict[str, str] = {**CLASSIFICATION_DETECTORS, **MULTILABEL_DETECTORS}


def _factory(name: str) -> Callable[[], FailureDetector]:
    """A factory that imports the module of detector ``name`` and builds it."""

    def make() -> FailureDetector:
        if name in MULTILABEL_DETECTORS:
            from bnnr_failures.multilabel import DETECTORS as MULTILABEL_CLASSES

            return MULTILABEL_CLASSES[name]()
        from bnnr_failures.detectors import DETECTORS as CLASSES

        return CLASSES[name]()

    return make


@hookimpl
def bnnr_register_failure_detectors(register: RegisterFn) -> None:
    """Register every built-in failure detector (single-label and multi-label)."""
    for name, description in DETECTORS.items():
        register(name, _factory(name), description=description)
