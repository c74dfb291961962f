"""Helpers the built-in detectors share: reading sections, naming classes, building patterns,
and the base classes of the single-label and multi-label detectors.

A pattern is the plain dictionary a :class:`bnnr_core.protocols.FailureDetector` returns; its
keys are documented in ``docs/findings.md`` and checked by
:func:`bnnr_core.analysis.findings.check_pattern`. No other plugin is imported.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from bnnr_core.analysis.findings import make_pattern as core_make_pattern

#: A ``class_diagnostics`` row, and a pattern's ``metadata``.
Row = Mapping[str, Any]
Metadata = dict[str, float | int]

#: The tasks the detectors understand: single-label and multi-label classification.
CLASSIFICATION = "classification"
MULTILABEL = "multilabel"
#: Report section every pattern of this plugin belongs to.
SECTION = "predictions"
#: Prefix of every ``expected_impact``: the sentence is literature context, not a measurement.


def section(evaluation: Any, name: str) -> Any:
    """The report section ``name`` of ``evaluation``, or ``None`` when it is missing."""
    sections = getattr(evaluation, "sections", None)
    if not isinstance(sections, Mapping):
        return None
    return sections.get(name)


def number(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` (missing, non-numeric, NaN or infinite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def integer(value: Any) -> int:
    """``value`` as an int; ``0`` when it is not a finite number."""
    result = number(value)
    return 0 if result is None else int(result)


def class_name(evaluation: Any, class_id: Any) -> str:
    """Human-readable name of class ``class_id`` (``"3"`` or ``3``); the id if unknown."""
    names: Sequence[str] = getattr(evaluation, "class_names", ()) or ()
    try:
        index = int(class_id)
    except (TypeError, ValueError):
        return str(class_id)
    return str(names[index]) if 0 <= index < len(names) else str(class_id)


def class_label(evaluation: Any, class_id: Any, noun: str = "class") -> str:
    """``class "cat" (id 3)``; ``class 3`` when the class has no name of its own (``noun``
    instead of ``class``: ``label "cat" (id 3)``)."""
    name = class_name(evaluation, class_id)
    return f"{noun} {class_id}" if name == str(class_id) else f'{noun} "{name}" (id {class_id})'


def diagnostic_rows(evaluation: Any) -> list[Row]:
    """The ``class_diagnostics`` rows (one per class or label), or ``[]``."""
    rows = section(evaluation, "class_diagnostics")
    if not isinstance(rows, list):
        return []
    return [row for row in rows if isinstance(row, Mapping) and "class_id" in row]


def recall_rows(evaluation: Any) -> list[tuple[str, int, float]]:
    """``(class_id, support, recall)`` of the ``class_diagnostics`` rows with samples and a
    recall."""
    return [
        (str(row["class_id"]), integer(row.get("support")), recall)
        for row in diagnostic_rows(evaluation)
        if integer(row.get("support")) > 0 and (recall := number(row.get("recall"))) is not None
    ]


def collapse_summary(evaluation: Any) -> tuple[Mapping[str, Any], float, int, str] | None:
    """``distribution_summary`` when it flags a possible collapse, with the share of the
    predictions that go to one class, the number of predictions and that class's id (``""``
    when unknown); ``None`` when the section is missing or flags none."""
    summary = section(evaluation, "distribution_summary")
    if not isinstance(summary, Mapping) or summary.get("possible_collapse") is not True:
        return None
    share = number(summary.get("collapse_share")) or 0.0
    collapse = summary.get("collapse_class")
    class_id = "" if collapse is None else str(collapse)
    return summary, share, integer(summary.get("pred_total")), class_id


def add_number(
    evidence: list[str],
    metadata: Metadata,
    key: str,
    value: float | None,
    *,
    spec: str = ".3f",
    quoted: str = "",
) -> None:
    """Quote ``value`` in ``evidence`` as ``quoted=value`` (``key=value`` when ``quoted`` is
    empty; formatted with ``spec``) and record it as ``metadata[key]``; nothing when ``value``
    is ``None``."""
    if value is None:
        return
    evidence.append(f"{quoted or key}={value:{spec}}")
    metadata[key] = value


def capitalize(text: str) -> str:
    """``text`` with its first character in upper case (the rest unchanged)."""
    return text[:1].upper() + text[1:]


def percent(value: float) -> str:
    """``0.6774`` -> ``"67.7%"``."""
    return f"{100 * value:.1f}%"


def make_pattern(**fields: Any) -> dict[str, Any]:
    """:func:`bnnr_core.analysis.findings.make_pattern` for section ``predictions``."""
    return core_make_pattern(section=SECTION, **fields)


def confidence_from_count(count: int, *, high: int, medium: int) -> str:
    """``"high"`` when ``count >= high``, ``"medium"`` when ``count >= medium``, else ``"low"``."""
    if count >= high:
        return "high"
    if count >= medium:
        return "medium"
    return "low"


class Detector(ABC):
    """Common shape of the built-in detectors: ``name``, ``title`` and ``detect``."""

    name: str
    #: The only task the detector understands; ``detect`` returns ``[]`` for any other.
    task: ClassVar[str]
    title: ClassVar[str]
    advice: ClassVar[dict[str, Any]]

    def detect(self, evaluation: Any) -> list[dict[str, Any]]:
        """Patterns found in ``evaluation``; ``[]`` for any task other than :attr:`task`."""
        if getattr(evaluation, "task", None) != self.task:
            return []
        return self._find(evaluation)

    @abstractmethod
    def _find(self, evaluation: Any) -> list[dict[str, Any]]:
        """The patterns of an evaluation of :attr:`task`."""

    def _pattern(self, **fields: Any) -> dict[str, Any]:
        return make_pattern(
            pattern_type=self.name,
            title=self.title,
            recommended_action=self.advice["action"],
            recommendation=self.advice,
            **fields,
        )


class RecallDetector(Detector):
    """Classes (or labels) with at least :attr:`min_support` samples whose recall is in a range
    (shared by zero and near-zero recall, single-label and multi-label)."""

    severity: ClassVar[str]
    #: Thresholds of the range, recorded in the metadata.
    thresholds: ClassVar[dict[str, float]]
    #: Smaller classes are not reported; from :attr:`high_confidence_support` samples on a
    #: finding has high confidence (medium below).
    min_support: ClassVar[int]
    high_confidence_support: ClassVar[int]
    #: ``class`` or ``label``, and what the description says of the recalled samples.
    noun: ClassVar[str]
    recalled: ClassVar[str]

    @abstractmethod
    def _in_range(self, recall: float) -> bool:
        """Whether a class with this recall is reported."""

    @abstractmethod
    def _details(self, evaluation: Any, row: Row, class_id: str) -> tuple[list[str], Metadata]:
        """Evidence and metadata of a reported class beyond its recall, support and predictions."""

    @abstractmethod
    def _interpretation(self, evaluation: Any, row: Row, class_id: str, recall: float) -> str:
        """What the low recall of ``class_id`` means for the user's model."""

    def _find(self, evaluation: Any) -> list[dict[str, Any]]:
        patterns = []
        for row in diagnostic_rows(evaluation):
            recall = number(row.get("recall"))
            support = integer(row.get("support"))
            if recall is None or support < self.min_support or not self._in_range(recall):
                continue
            class_id = str(row["class_id"])
            name = class_name(evaluation, class_id)
            found = round(recall * support)
            evidence, metadata = self._details(evaluation, row, class_id)
            label = class_label(evaluation, class_id, self.noun)
            patterns.append(
                self._pattern(
                    description=(
                        f"{capitalize(label)} has recall {percent(recall)}: {found} of its "
                        f"{support} {self.recalled}."
                    ),
                    severity=self.severity,
                    count=support - found,
                    class_a=class_id,
                    evidence=[
                        f"recall[{name}]={recall:.3f}",
                        f"support[{name}]={support}",
                        f"pred_count[{name}]={integer(row.get('pred_count'))}",
                        *evidence,
                    ],
                    metadata={
                        "recall": recall,
                        "support": support,
                        "min_support": self.min_support,
                        **metadata,
                    },
                    interpretation=self._interpretation(evaluation, row, class_id, recall),
                    confidence="high" if support >= self.high_confidence_support else "medium",
                )
            )
        return patterns
