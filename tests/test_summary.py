"""The executive summary and its health score (bnnr_core.analysis.summary)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnnr_core.analysis.evaluation import CONFIDENCES, FINDING_SECTIONS, SEVERITIES
from bnnr_core.analysis.summary import (
    SECTION_CAPS,
    SEVERITY_WEIGHTS,
    executive_summary,
    health_status,
)

ALL_RAN = {"predictions": True, "xai": True, "data_quality": True}
STATUS_RANK = {"ok": 0, "warning": 1, "critical": 2}


def _finding(
    severity: str, section: str = "predictions", confidence: str = "high", title: str = ""
) -> dict[str, Any]:
    return {
        "title": title or f"{severity} in {section}",
        "severity": severity,
        "section": section,
        "confidence": confidence,
    }


def _summary(
    performance: float | None,
    findings: list[dict[str, Any]],
    sections_run: dict[str, bool] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "metrics": {"balanced_accuracy": performance, "accuracy": 0.99},
        "headline_metric": "balanced_accuracy",
        "findings": findings,
        "recommendations": [],
        "class_diagnostics": [],
        "sections_run": ALL_RAN if sections_run is None else sections_run,
    }
    arguments.update(overrides)
    return executive_summary(**arguments)


def test_every_finding_section_has_a_cap_and_every_severity_a_weight() -> None:
    assert set(SECTION_CAPS) == set(FINDING_SECTIONS)
    assert set(SEVERITY_WEIGHTS) == set(SEVERITIES)


# -------------------------------------------------------------------------------------------
# The formula, by hand
# -------------------------------------------------------------------------------------------


def test_worked_example_from_the_docs() -> None:
    findings = [
        _finding("high"),
        _finding("medium", confidence="medium"),
        _finding("medium", confidence="low"),
    ]
    summary = _summary(0.82, findings, {"predictions": True, "xai": False, "data_quality": True})
    # P = 0.82; predictions 0.10 + 0.04 + 0.04 = 0.18; xai not run: 0.10; data quality 0.
    assert summary["health_score"] == pytest.approx(0.82 * (1 - 0.28))
    assert summary["health_score"] == 0.5904
    assert summary["health_status"] == "warning"
    assert summary["severity"] == "medium"
    assert summary["score_breakdown"] == {
        "headline_metric": "balanced_accuracy",
        "performance": 0.82,
        "penalties": {
            "predictions": {"ran": True, "penalty": 0.18, "cap": 0.5},
            "xai": {"ran": False, "penalty": 0.1, "cap": 0.1},
            "data_quality": {"ran": True, "penalty": 0.0, "cap": 0.1},
        },
    }
    assert summary["unchecked_sections"] == ["xai"]
    assert summary["key_findings"] == [
        "high in predictions",
        "[Likely] medium in predictions",
        "[Suspected] medium in predictions",
    ]


def test_a_clean_run_scores_its_headline_metric() -> None:
    summary = _summary(0.95, [])
    assert summary["health_score"] == 0.95
    assert summary["health_status"] == "ok" and summary["severity"] == "low"
    assert summary["key_findings"] == ["No failure pattern detected; balanced accuracy is 95.0%"]
    assert summary["unchecked_sections"] == []
    assert summary["top_actions"] == [] and summary["critical_classes"] == []


def test_section_penalties_are_capped() -> None:
    findings = [_finding("critical")] * 3 + [_finding("high", "xai")] * 2
    summary = _summary(0.9, findings)
    penalties = summary["score_breakdown"]["penalties"]
    assert penalties["predictions"]["penalty"] == 0.5  # 0.75 capped
    assert penalties["xai"]["penalty"] == 0.1  # 0.20 capped
    assert summary["health_score"] == pytest.approx(0.9 * 0.4)


def test_low_findings_in_every_section() -> None:
    findings = [_finding("low", section) for section in FINDING_SECTIONS]
    assert _summary(1.0, findings)["health_score"] == 0.97


def test_unchecked_sections_cost_their_cap_and_missing_ones_count_as_unchecked() -> None:
    summary = _summary(0.9, [], {"predictions": True})
    assert summary["unchecked_sections"] == ["xai", "data_quality"]
    assert summary["health_score"] == pytest.approx(0.9 * 0.8)
    assert summary["health_status"] == "warning"


def test_disabling_xai_never_helps_unlike_bnnr_0_7() -> None:
    findings = [_finding("medium", "xai")]
    with_xai = _summary(0.9, findings)["health_score"]
    without_xai = _summary(0.9, [], {"predictions": True, "xai": False, "data_quality": True})
    assert with_xai == pytest.approx(0.9 * 0.96)
    assert without_xai["health_score"] == pytest.approx(0.9 * 0.9)
    assert without_xai["health_score"] < with_xai


@pytest.mark.parametrize("value", [None, math.nan, "0.9", True])
def test_a_missing_or_unusable_headline_metric_scores_zero(value: Any) -> None:
    summary = _summary(value, [])
    assert summary["health_score"] == 0.0
    assert summary["health_status"] == "critical"
    assert summary["score_breakdown"]["performance"] == 0.0


def test_missing_headline_metric_is_said_in_the_key_findings() -> None:
    summary = _summary(None, [])
    assert summary["key_findings"] == [
        "No failure pattern detected; balanced accuracy is not available"
    ]


def test_score_is_continuous_not_a_step_function() -> None:
    scores = [_summary(p / 100, [])["health_score"] for p in range(60, 100)]
    assert len(set(scores)) == len(scores)
    assert scores == sorted(scores)


# -------------------------------------------------------------------------------------------
# Status rules
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "severities", "status"),
    [
        (0.4999, [], "critical"),
        (0.5, [], "warning"),
        (0.7499, [], "warning"),
        (0.75, [], "ok"),
        (0.99, ["critical"], "critical"),
        (0.99, ["high"], "warning"),
        (0.99, ["medium", "low"], "ok"),
        (0.6, ["high"], "warning"),
        (0.3, ["low"], "critical"),
    ],
)
def test_status_rules(score: float, severities: list[str], status: str) -> None:
    assert health_status(score, [_finding(severity) for severity in severities]) == status


def test_a_critical_finding_makes_a_high_score_critical() -> None:
    summary = _summary(0.99, [_finding("critical")])
    assert summary["health_score"] == pytest.approx(0.99 * 0.75)
    assert summary["health_status"] == "critical" and summary["severity"] == "high"


# -------------------------------------------------------------------------------------------
# Lists
# -------------------------------------------------------------------------------------------


def test_lists_are_truncated_and_taken_in_order() -> None:
    findings = [_finding("low", title=f"F{k}") for k in range(7)]
    recommendations = [{"title": f"R{k}"} for k in range(5)]
    diagnostics = [
        {"class_id": str(k), "class_name": f"c{k}", "severity": "critical" if k != 2 else "ok"}
        for k in range(8)
    ]
    summary = _summary(
        0.9, findings, recommendations=recommendations, class_diagnostics=diagnostics
    )
    assert summary["key_findings"] == ["F0", "F1", "F2", "F3", "F4"]
    assert summary["top_actions"] == ["R0", "R1", "R2"]
    assert summary["critical_classes"] == ["0", "1", "3", "4", "5"]
    assert summary["critical_class_names"] == ["c0", "c1", "c3", "c4", "c5"]


# -------------------------------------------------------------------------------------------
# Monotonicity
# -------------------------------------------------------------------------------------------

_findings = st.lists(
    st.builds(
        _finding,
        st.sampled_from(SEVERITIES),
        st.sampled_from(FINDING_SECTIONS),
        st.sampled_from(CONFIDENCES),
    ),
    max_size=30,
)
_sections_run = st.fixed_dictionaries({section: st.booleans() for section in FINDING_SECTIONS})


@settings(max_examples=300, deadline=None)
@given(
    performance=st.floats(0, 1),
    findings=_findings,
    sections_run=_sections_run,
    section=st.sampled_from(FINDING_SECTIONS),
)
def test_marking_a_section_as_not_run_never_raises_the_score(
    performance: float, findings: list[dict[str, Any]], sections_run: dict[str, bool], section: str
) -> None:
    before = _summary(performance, findings, sections_run)
    after = _summary(performance, findings, {**sections_run, section: False})
    assert 0.0 <= after["health_score"] <= before["health_score"] <= 1.0
    assert STATUS_RANK[after["health_status"]] >= STATUS_RANK[before["health_status"]]
    assert section in after["unchecked_sections"]


@settings(max_examples=200, deadline=None)
@given(
    performance=st.floats(0, 1),
    findings=_findings,
    sections_run=_sections_run,
    extra=st.builds(_finding, st.sampled_from(SEVERITIES), st.sampled_from(FINDING_SECTIONS)),
)
def test_one_more_finding_never_raises_the_score(
    performance: float,
    findings: list[dict[str, Any]],
    sections_run: dict[str, bool],
    extra: dict[str, Any],
) -> None:
    before = _summary(performance, findings, sections_run)
    after = _summary(performance, [*findings, extra], sections_run)
    assert after["health_score"] <= before["health_score"]
    assert STATUS_RANK[after["health_status"]] >= STATUS_RANK[before["health_status"]]
