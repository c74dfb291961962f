"""Helpers the built-in detectors share: reading sections, naming classes, building patterns.

A pattern is the plain dictionary a :class:`bnnr_core.protocols.FailureDetector` returns; its
keys are documented in ``docs/findings.md`` and checked by
:func:`bnnr_core.analysis.findings.check_pattern`. No other plugin is imported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

#: The only task these detectors understand.
CLASSIFICATION = "classification"
#: Report section every pattern of this plugin belongs to.
SECTION = "predictions"
#: Prefix of every ``expected_impact``: the sentence is literature context, not a measurement.
LITERATURE_PREFIX = "Literature context (not verified on this run): "


def is_classification(evaluation: Any) -> bool:
    """Whether ``evaluation`` comes from the single-label ``classification`` task."""
    return getattr(evaluation, "task", None) == CLASSIFICATION


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


def class_label(evaluation: Any, class_id: Any) -> str:
    """``class "cat" (id 3)``; ``class 3`` when the class has no name of its own."""
    name = class_name(evaluation, class_id)
    return f"class {class_id}" if name == str(class_id) else f'class "{name}" (id {class_id})'


def capitalize(text: str) -> str:
    """``text`` with its first character in upper case (the rest unchanged)."""
    return text[:1].upper() + text[1:]


def percent(value: float) -> str:
    """``0.6774`` -> ``"67.7%"``."""
    return f"{100 * value:.1f}%"


def recommendation(
    *, title: str, action: str, priority: int, impact: str, literature_note: str
) -> dict[str, Any]:
    """A recommendation template; ``impact`` is prefixed with :data:`LITERATURE_PREFIX`."""
    return {
        "title": title,
        "action": action,
        "priority": priority,
        "expected_impact": LITERATURE_PREFIX + impact,
        "literature_note": literature_note,
    }


def make_pattern(
    *,
    pattern_type: str,
    title: str,
    description: str,
    severity: str,
    count: int,
    evidence: Sequence[str],
    metadata: Mapping[str, float | int],
    interpretation: str,
    confidence: str,
    recommended_action: str,
    recommendation: Mapping[str, Any],
    class_a: str = "",
    class_b: str = "",
    legacy: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """One pattern dictionary with every key a finding needs (``legacy`` only when given)."""
    pattern: dict[str, Any] = {
        "pattern_type": pattern_type,
        "description": description,
        "severity": severity,
        "count": int(count),
        "class_a": class_a,
        "class_b": class_b,
        "evidence": list(evidence),
        "metadata": dict(metadata),
        "section": SECTION,
        "title": title,
        "interpretation": interpretation,
        "confidence": confidence,
        "recommended_action": recommended_action,
        "recommendation": dict(recommendation),
    }
    if legacy is not None:
        pattern["legacy"] = (
            dict(legacy) if isinstance(legacy, Mapping) else [dict(item) for item in legacy]
        )
    return pattern


def confidence_from_count(count: int, *, high: int, medium: int) -> str:
    """``"high"`` when ``count >= high``, ``"medium"`` when ``count >= medium``, else ``"low"``."""
    if count >= high:
        return "high"
    if count >= medium:
        return "medium"
    return "low"
