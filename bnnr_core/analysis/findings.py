"""Failure patterns grouped into findings, and recommendations linked to them by id.

Detectors (``failure_detector`` components) return *patterns*: one observation each, such as one
confused pair of classes. This module knows no pattern type; it

* validates a pattern (:func:`check_pattern`), so a malformed pattern from a third-party detector
  can be skipped and reported instead of crashing the run;
* groups patterns of the same ``(section, pattern_type)`` into one *finding*, ordered most severe
  first (:func:`build_findings`);
* turns every finding whose patterns carry a recommendation template into one recommendation
  (:func:`build_recommendations`).

Ids link the three lists: a finding's ``linked_pattern_ids`` name entries of
``failure_patterns_extended``, a recommendation's ``linked_finding_ids`` name findings.
The key shapes follow BNNR 0.7's ``analysis_report.json``; see ``docs/findings.md``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs

from bnnr_core.analysis.evaluation import CONFIDENCES, FINDING_SECTIONS, SEVERITIES

#: Keys every pattern must have, with the type of their value.
PATTERN_KEYS: Mapping[str, type | tuple[type, ...]] = {
    "pattern_type": str,
    "description": str,
    "severity": str,
    "count": numbers.Integral,
    "class_a": str,
    "class_b": str,
    "evidence": (list, tuple),
    "metadata": Mapping,
    "section": str,
    "title": str,
    "interpretation": str,
    "confidence": str,
    "recommended_action": str,
}
#: Keys of a pattern's optional ``recommendation`` template, with the type of their value.
RECOMMENDATION_KEYS: Mapping[str, type | tuple[type, ...]] = {
    "title": str,
    "action": str,
    "priority": numbers.Integral,
    "expected_impact": str,
    "literature_note": str,
}
#: Optional provenance keys the engine stamps on a pattern (the detector and its plugin).
PROVENANCE_KEYS: tuple[str, ...] = ("detector", "plugin")
#: Keys of a ``failure_patterns_extended`` entry (plus provenance keys when present).
EXTENDED_KEYS: tuple[str, ...] = (
    "pattern_type",
    "description",
    "severity",
    "count",
    "class_a",
    "class_b",
    "evidence",
    "metadata",
    "section",
)

#: Member descriptions quoted in a finding's description before "...and N more."
DESCRIPTIONS_PER_FINDING = 3
#: Evidence strings taken from each member pattern, and in a finding at most.
EVIDENCE_PER_MEMBER = 2
EVIDENCE_PER_FINDING = 6
#: Distinct member interpretations joined into a finding's interpretation.
INTERPRETATIONS_PER_FINDING = 2
#: Class names listed in a recommendation's scope before "(+N more)".
SCOPE_CLASSES = 6
#: Evidence strings joined into a legacy recommendation line, and legacy lines at most.
LEGACY_EVIDENCE = 3
LEGACY_RECOMMENDATIONS = 10
#: The legacy recommendation line when there is nothing to recommend.
NO_RECOMMENDATION = "No failure pattern was detected; no action is recommended."


#: How every recommendation's ``expected_impact`` starts: what the literature reports, not
#: something measured on the user's model.
LITERATURE_PREFIX = "Literature context (not verified on this run): "


def recommendation(
    *, title: str, action: str, priority: int, impact: str, literature_note: str
) -> dict[str, Any]:
    """A recommendation template for a pattern; ``impact`` is prefixed with
    :data:`LITERATURE_PREFIX`."""
    return {
        "title": title,
        "action": action,
        "priority": priority,
        "expected_impact": LITERATURE_PREFIX + impact,
        "literature_note": literature_note,
    }


def make_pattern(
    *,
    section: str,
    pattern_type: str,
    title: str,
    description: str,
    severity: str,
    count: int,
    evidence: Sequence[str],
    metadata: Mapping[str, Any],
    interpretation: str,
    confidence: str,
    recommended_action: str,
    recommendation: Mapping[str, Any],
    class_a: str = "",
    class_b: str = "",
    legacy: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """One pattern dictionary with every key a finding needs (``legacy`` only when given), for
    detectors, checks and steps to build what :func:`check_pattern` accepts."""
    pattern: dict[str, Any] = {
        "pattern_type": pattern_type,
        "description": description,
        "severity": severity,
        "count": int(count),
        "class_a": class_a,
        "class_b": class_b,
        "evidence": list(evidence),
        "metadata": dict(metadata),
        "section": section,
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


def _fail(pattern: Mapping[str, Any], problem: str) -> ValueError:
    kind = pattern.get("pattern_type")
    subject = f"failure pattern {kind!r}" if isinstance(kind, str) else "failure pattern"
    return ValueError(f"{subject} is malformed: {problem}.")


def _check_text(pattern: Mapping[str, Any], key: str, value: Any, *, required: bool) -> str:
    if not isinstance(value, str):
        raise _fail(pattern, f"{key!r} must be a string, not {type(value).__name__}")
    if required and not value.strip():
        raise _fail(pattern, f"{key!r} must not be empty")
    return value


def _check_scalar(pattern: Mapping[str, Any], where: str, value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return float(value)
    if isinstance(value, float):
        raise _fail(pattern, f"{where} is {value}, which is not a finite number")
    # numpy scalars: accept plain numbers only, as Python types.
    if hasattr(value, "item") and isinstance(value.item(), (bool, int, float)):
        return _check_scalar(pattern, where, value.item())
    raise _fail(pattern, f"{where} must be a JSON scalar, not {type(value).__name__}")


def _check_legacy(pattern: Mapping[str, Any], legacy: Any) -> list[dict[str, Any]]:
    entries = [legacy] if isinstance(legacy, Mapping) else legacy
    if not isinstance(entries, (list, tuple)) or not all(
        isinstance(entry, Mapping) and isinstance(entry.get("type"), str) for entry in entries
    ):
        raise _fail(pattern, "'legacy' must be a dict with a string 'type', or a list of them")
    return [
        {str(key): _check_scalar(pattern, f"legacy[{key!r}]", value) for key, value in e.items()}
        for e in entries
    ]


def check_pattern(pattern: Any) -> dict[str, Any]:
    """Validate one pattern from a detector and return a clean copy.

    Required keys: those of :data:`PATTERN_KEYS` (``evidence`` a non-empty list of strings,
    ``metadata`` a dict of JSON scalars, ``severity`` one of
    :data:`~bnnr_core.analysis.evaluation.SEVERITIES`, ``confidence`` one of
    :data:`~bnnr_core.analysis.evaluation.CONFIDENCES`, ``section`` one of
    :data:`~bnnr_core.analysis.evaluation.FINDING_SECTIONS`). Optional: ``recommendation``
    (a dict with the keys of :data:`RECOMMENDATION_KEYS`, ``priority`` >= 1), ``legacy`` (a dict
    with a string ``type``, or a list of them) and the provenance keys ``detector``/``plugin``.
    Unknown keys are dropped. The copy holds lists and dicts, never the caller's objects.

    :raises ValueError: with one sentence naming the pattern type and the problem.
    """
    if not isinstance(pattern, Mapping):
        raise ValueError(
            f"failure pattern is malformed: expected a dict, got {type(pattern).__name__}."
        )
    missing = [key for key in PATTERN_KEYS if key not in pattern]
    if missing:
        raise _fail(pattern, f"missing key(s) {', '.join(repr(key) for key in missing)}")
    for key, expected in PATTERN_KEYS.items():
        value = pattern[key]
        if not isinstance(value, expected) or (key == "count" and isinstance(value, bool)):
            raise _fail(pattern, f"{key!r} has type {type(value).__name__}")
    for key in ("pattern_type", "description", "title", "interpretation", "recommended_action"):
        _check_text(pattern, key, pattern[key], required=True)
    choices = {"severity": SEVERITIES, "confidence": CONFIDENCES, "section": FINDING_SECTIONS}
    for key, allowed in choices.items():
        if pattern[key] not in allowed:
            raise _fail(pattern, f"{key!r} is {pattern[key]!r}, not one of {', '.join(allowed)}")
    if pattern["count"] < 0:
        raise _fail(pattern, f"'count' is {pattern['count']}, below 0")
    evidence = [
        _check_text(pattern, "evidence item", item, required=True) for item in pattern["evidence"]
    ]
    if not evidence:
        raise _fail(pattern, "'evidence' must not be empty")
    clean: dict[str, Any] = {key: pattern[key] for key in PATTERN_KEYS}
    clean["count"] = int(pattern["count"])
    clean["evidence"] = evidence
    clean["metadata"] = {
        str(key): _check_scalar(pattern, f"metadata[{key!r}]", value)
        for key, value in pattern["metadata"].items()
    }
    template = pattern.get("recommendation")
    if template is not None:
        if not isinstance(template, Mapping):
            raise _fail(pattern, "'recommendation' must be a dict")
        for key, expected in RECOMMENDATION_KEYS.items():
            value = template.get(key)
            if not isinstance(value, expected) or isinstance(value, bool):
                kind = "an integer" if key == "priority" else "a string"
                raise _fail(pattern, f"recommendation[{key!r}] must be {kind}")
        if template["priority"] < 1:
            raise _fail(pattern, "recommendation['priority'] must be 1 or more")
        for key in ("title", "action"):
            _check_text(pattern, f"recommendation[{key!r}]", template[key], required=True)
        clean["recommendation"] = {key: template[key] for key in RECOMMENDATION_KEYS}
        clean["recommendation"]["priority"] = int(template["priority"])
    if pattern.get("legacy") is not None:
        clean["legacy"] = _check_legacy(pattern, pattern["legacy"])
    for key in PROVENANCE_KEYS:
        if key in pattern:
            clean[key] = _check_text(pattern, key, pattern[key], required=False)
    return clean


@attrs.frozen(kw_only=True)
class FindingsResult(Mapping[str, Any]):
    """What :func:`build_findings` returns; readable as attributes or as a mapping."""

    #: Every pattern, in input order, with an ``id`` ``"pattern_<i>"``.
    failure_patterns_extended: list[dict[str, Any]]
    #: Patterns grouped by ``(section, pattern_type)``, most severe first, truncated.
    findings: list[dict[str, Any]]
    #: The legacy ``failure_patterns`` list: the patterns' ``legacy`` dicts, in order.
    failure_patterns: list[dict[str, Any]]

    def __getitem__(self, key: str) -> Any:
        if key not in attrs.fields_dict(type(self)):
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(attrs.fields_dict(type(self)))

    def __len__(self) -> int:
        return len(attrs.fields_dict(type(self)))


def _rank(value: str, order: Sequence[str]) -> int:
    return order.index(value)


def _class_name(class_id: str, class_names: Sequence[str]) -> str:
    try:
        index = int(class_id)
    except ValueError:
        return class_id
    return str(class_names[index]) if 0 <= index < len(class_names) else class_id


def _unique(items: Iterator[str] | Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _group(members: list[tuple[str, dict[str, Any]]], class_names: Sequence[str]) -> dict[str, Any]:
    """One finding (without its id) from ``(pattern id, pattern)`` pairs of one group."""
    members = sorted(members, key=lambda member: _rank(member[1]["severity"], SEVERITIES))
    patterns = [pattern for _, pattern in members]
    first = patterns[0]
    description = " ".join(p["description"] for p in patterns[:DESCRIPTIONS_PER_FINDING])
    if len(patterns) > DESCRIPTIONS_PER_FINDING:
        description += f" ...and {len(patterns) - DESCRIPTIONS_PER_FINDING} more."
    evidence = _unique(item for p in patterns for item in p["evidence"][:EVIDENCE_PER_MEMBER])
    interpretations = _unique(p["interpretation"] for p in patterns)
    class_ids = _unique(c for p in patterns for c in (p["class_a"], p["class_b"]) if c)
    return {
        "title": first["title"],
        "finding_type": first["pattern_type"],
        "description": description,
        "evidence": evidence[:EVIDENCE_PER_FINDING],
        "interpretation": " ".join(interpretations[:INTERPRETATIONS_PER_FINDING]),
        "confidence": min((p["confidence"] for p in patterns), key=CONFIDENCES.index),
        "severity": first["severity"],
        "class_ids": class_ids,
        "class_names": [_class_name(class_id, class_names) for class_id in class_ids],
        "linked_pattern_ids": [pattern_id for pattern_id, _ in members],
        "recommended_action": first["recommended_action"],
        "section": first["section"],
    }


def build_findings(
    patterns: Sequence[Mapping[str, Any]],
    *,
    class_names: Sequence[str] = (),
    max_findings: int = 12,
) -> FindingsResult:
    """Group ``patterns`` into findings and build the pattern lists of the report.

    Patterns of the same ``(section, pattern_type)`` form one finding: its description quotes the
    first three member descriptions, its evidence the first two strings of each member (at most
    six), its severity and confidence are the strongest among members. Findings are sorted by
    severity (most severe first), then number of members (more first), then title; ids
    ``finding_<k>`` are assigned after sorting (``finding_0`` is the most severe), then the list is
    truncated to ``max_findings``. Patterns of dropped findings stay in
    ``failure_patterns_extended``.

    :param patterns: detector output; each pattern must pass :func:`check_pattern`.
    :param class_names: names of the class ids ``"0"``..``"C-1"``, for ``class_names``.
    :raises ValueError: for a malformed pattern (validate and skip them first with
        :func:`check_pattern` to keep the others).
    """
    clean = [check_pattern(pattern) for pattern in patterns]
    extended = []
    groups: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
    for index, pattern in enumerate(clean):
        pattern_id = f"pattern_{index}"
        entry = {"id": pattern_id, **{key: pattern[key] for key in EXTENDED_KEYS}}
        entry.update({key: pattern[key] for key in PROVENANCE_KEYS if key in pattern})
        extended.append(entry)
        key = (pattern["section"], pattern["pattern_type"])
        groups.setdefault(key, []).append((pattern_id, pattern))
    grouped = [_group(members, class_names) for members in groups.values()]
    grouped.sort(
        key=lambda finding: (
            _rank(finding["severity"], SEVERITIES),
            -len(finding["linked_pattern_ids"]),
            finding["title"],
        )
    )
    findings = [{"id": f"finding_{k}", **finding} for k, finding in enumerate(grouped)]
    legacy = [entry for pattern in clean for entry in pattern.get("legacy", ())]
    return FindingsResult(
        failure_patterns_extended=extended,
        findings=findings[:max_findings],
        failure_patterns=legacy,
    )


def _scope(finding: Mapping[str, Any]) -> str:
    names = list(finding["class_names"])
    if not names:
        return "global"
    scope = ", ".join(names[:SCOPE_CLASSES])
    if len(names) > SCOPE_CLASSES:
        scope += f" (+{len(names) - SCOPE_CLASSES} more)"
    return scope


def build_recommendations(
    findings: Sequence[Mapping[str, Any]],
    patterns: Sequence[Mapping[str, Any]],
    *,
    max_items: int = 15,
) -> tuple[list[dict[str, Any]], list[str]]:
    """One recommendation per finding whose patterns carry a ``recommendation`` template.

    The template of the finding's first linked pattern that has one is used (members are ordered
    most severe first). ``title`` is the template title, plus ``": <scope>"`` when the finding
    names classes; ``why`` is the finding's interpretation and its first evidence. Recommendations
    are sorted by ``(priority, title)``, given ids ``rec_<k>``, and truncated to ``max_items``.

    :param findings: ``build_findings(...).findings``.
    :param patterns: the patterns passed to :func:`build_findings` (the pattern with id
        ``pattern_<i>`` is ``patterns[i]``, unless a pattern carries its own ``id``).
    :returns: ``(structured, legacy)``: the structured recommendations, and at most ten legacy
        lines ``"<title> — <evidence>. <action>"`` (or one line saying there is nothing to do).
    """
    by_id = {
        str(pattern.get("id", f"pattern_{index}")): pattern
        for index, pattern in enumerate(patterns)
    }
    structured = []
    for finding in findings:
        templates = [
            by_id[pattern_id]["recommendation"]
            for pattern_id in finding["linked_pattern_ids"]
            if pattern_id in by_id and by_id[pattern_id].get("recommendation")
        ]
        if not templates:
            continue
        template = templates[0]
        scope = _scope(finding)
        evidence = list(finding["evidence"])
        structured.append(
            {
                "title": template["title"] + (f": {scope}" if finding["class_names"] else ""),
                "scope": scope,
                "why": f"{finding['interpretation']} From this run: {evidence[0]}.",
                "action": template["action"],
                "expected_impact": template["expected_impact"],
                "confidence": finding["confidence"],
                "priority": template["priority"],
                "linked_finding_ids": [finding["id"]],
                "evidence_from_run": evidence[:EVIDENCE_PER_FINDING],
                "literature_note": template["literature_note"],
            }
        )
    structured.sort(key=lambda item: (item["priority"], item["title"]))
    structured = [{"id": f"rec_{k}", **item} for k, item in enumerate(structured)][:max_items]
    legacy = [
        f"{item['title']} — {'; '.join(item['evidence_from_run'][:LEGACY_EVIDENCE])}. "
        f"{item['action']}"
        for item in structured[:LEGACY_RECOMMENDATIONS]
    ]
    return structured, legacy or [NO_RECOMMENDATION]
