"""Built-in failure-pattern detectors for single-label classification.

Each detector is its own ``failure_detector`` component, so one can be disabled or replaced
without touching the others. The detectors live in :mod:`bnnr_failures.detectors` (numpy only,
no other plugin) and are imported by the factory, so importing this package stays cheap.
What fires each detector, and its thresholds, is documented in ``docs/findings.md``.
"""

from __future__ import annotations

from collections.abc import Callable

from bnnr_core import hookimpl
from bnnr_core.components import RegisterFn
from bnnr_core.protocols import FailureDetector

#: Component name -> description, in the order the detectors run.
DETECTORS: dict[str, str] = {
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


def _factory(name: str) -> Callable[[], FailureDetector]:
    """A factory that imports the detectors module and builds detector ``name``."""

    def make() -> FailureDetector:
        from bnnr_failures.detectors import DETECTORS as CLASSES

        return CLASSES[name]()

    return make


@hookimpl
def bnnr_register_failure_detectors(register: RegisterFn) -> None:
    """Register every built-in classification failure detector."""
    for name, description in DETECTORS.items():
        register(name, _factory(name), description=description)
