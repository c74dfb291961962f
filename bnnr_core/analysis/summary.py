"""The executive summary of an analysis report and its health score.

The health score is continuous in the headline metric and only ever lowered by findings and by
sections that did not run::

    P     = metrics[headline_metric]                  (missing -> 0)
    w     = {critical: 0.25, high: 0.10, medium: 0.04, low: 0.01}   per finding
    pen_s = min(cap_s, sum of w over the findings of section s)   if section s ran
          = cap_s                                                  if it did not run
    score = P * (1 - sum_s pen_s)

with caps ``predictions`` 0.5, ``xai`` 0.1, ``data_quality`` 0.1. Because a section that did not
run takes its full cap, turning a check off never raises the score (BNNR 0.7 rewarded disabling
XAI). See ``docs/findings.md`` for a worked example.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from bnnr_core.analysis.evaluation import FINDING_SECTIONS

#: Penalty of one finding, by severity.
SEVERITY_WEIGHTS: Mapping[str, float] = {
    "critical": 0.25,
    "high": 0.10,
    "medium": 0.04,
    "low": 0.01,
}
#: Largest penalty of each section (and the penalty of a section that did not run).
SECTION_CAPS: Mapping[str, float] = {"predictions": 0.5, "xai": 0.1, "data_quality": 0.1}
#: Below these scores the status is ``critical`` / ``warning``.
CRITICAL_BELOW = 0.5
WARNING_BELOW = 0.75
#: Legacy ``severity`` of each health status.
LEGACY_SEVERITY: Mapping[str, str] = {"ok": "low", "warning": "medium", "critical": "high"}
#: Prefix of a key finding, by the finding's confidence.
CONFIDENCE_PREFIX: Mapping[str, str] = {"high": "", "medium": "[Likely] ", "low": "[Suspected] "}
#: Items listed in ``key_findings``, ``top_actions`` and ``critical_classes``.
KEY_FINDINGS = 5
TOP_ACTIONS = 3
CRITICAL_CLASSES = 5


def _performance(metrics: Mapping[str, Any], headline_metric: str) -> float:
    value = metrics.get(headline_metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return 0.0
    return min(1.0, max(0.0, float(value)))


def section_penalties(
    findings: Sequence[Mapping[str, Any]], sections_run: Mapping[str, bool]
) -> dict[str, dict[str, Any]]:
    """``{section: {"ran", "penalty", "cap"}}`` for every finding section.

    A section missing from ``sections_run`` counts as not run.
    """
    penalties = {}
    for section in FINDING_SECTIONS:
        cap = SECTION_CAPS[section]
        ran = bool(sections_run.get(section, False))
        if ran:
            weight = math.fsum(
                SEVERITY_WEIGHTS.get(str(finding.get("severity")), 0.0)
                for finding in findings
                if finding.get("section") == section
            )
            penalty = min(cap, weight)
        else:
            penalty = cap
        penalties[section] = {"ran": ran, "penalty": round(penalty, 4), "cap": cap}
    return penalties


def health_score(performance: float, penalties: Mapping[str, Mapping[str, Any]]) -> float:
    """``performance x (1 - sum of penalties)``, rounded to 4 decimal places."""
    total = sum(float(entry["penalty"]) for entry in penalties.values())
    return round(performance * (1.0 - total), 4)


def health_status(score: float, findings: Sequence[Mapping[str, Any]]) -> str:
    """``critical`` below 0.5 or with a critical finding; ``warning`` below 0.75 or with a high
    finding; else ``ok``."""
    severities = {finding.get("severity") for finding in findings}
    if score < CRITICAL_BELOW or "critical" in severities:
        return "critical"
    if score < WARNING_BELOW or "high" in severities:
        return "warning"
    return "ok"


def executive_summary(
    *,
    metrics: Mapping[str, Any],
    headline_metric: str,
    findings: Sequence[Mapping[str, Any]],
    recommendations: Sequence[Mapping[str, Any]],
    class_diagnostics: Sequence[Mapping[str, Any]],
    sections_run: Mapping[str, bool],
) -> dict[str, Any]:
    """The ``executive_summary`` of a report.

    :param metrics: the task's metrics; ``metrics[headline_metric]`` is the performance ``P``.
    :param findings: ``build_findings(...).findings`` (most severe first).
    :param recommendations: the structured recommendations (first = most urgent).
    :param class_diagnostics: rows with ``class_id``, ``class_name`` and ``severity``, by rank.
    :param sections_run: whether each of ``predictions``, ``xai`` and ``data_quality`` ran.
    :returns: ``health_status``, ``health_score``, ``severity`` (legacy), ``key_findings``,
        ``top_actions``, ``critical_classes``, ``critical_class_names``, ``score_breakdown`` and
        ``unchecked_sections``.
    """
    performance = _performance(metrics, headline_metric)
    penalties = section_penalties(findings, sections_run)
    score = health_score(performance, penalties)
    status = health_status(score, findings)
    key_findings = [
        CONFIDENCE_PREFIX.get(str(finding.get("confidence")), "") + str(finding["title"])
        for finding in findings[:KEY_FINDINGS]
    ]
    if not key_findings:
        value = metrics.get(headline_metric)
        shown = f"{100 * performance:.1f}%" if value is not None else "not available"
        key_findings = [
            f"No failure pattern detected; {headline_metric.replace('_', ' ')} is {shown}"
        ]
    critical = [row for row in class_diagnostics if row.get("severity") == "critical"]
    critical = critical[:CRITICAL_CLASSES]
    return {
        "health_status": status,
        "health_score": score,
        "severity": LEGACY_SEVERITY[status],
        "key_findings": key_findings,
        "top_actions": [str(item["title"]) for item in recommendations[:TOP_ACTIONS]],
        "critical_classes": [str(row["class_id"]) for row in critical],
        "critical_class_names": [str(row.get("class_name", row["class_id"])) for row in critical],
        "score_breakdown": {
            "headline_metric": headline_metric,
            "performance": round(performance, 4),
            "penalties": penalties,
        },
        "unchecked_sections": [section for section, entry in penalties.items() if not entry["ran"]],
    }
