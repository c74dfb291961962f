"""Patterns grouped into findings and recommendations (bnnr_core.analysis.findings).

The module knows no pattern type, so the patterns here are invented ones.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bnnr_core.analysis.evaluation import CONFIDENCES, FINDING_SECTIONS, SEVERITIES
from bnnr_core.analysis.findings import (
    EXTENDED_KEYS,
    NO_RECOMMENDATION,
    FindingsResult,
    build_findings,
    build_recommendations,
    check_pattern,
)

NAMES = ("cat", "dog", "bird", "fish", "frog", "owl", "bee", "ant", "elk")


def _pattern(pattern_type: str = "thing", **overrides: Any) -> dict[str, Any]:
    pattern: dict[str, Any] = {
        "pattern_type": pattern_type,
        "description": f"A {pattern_type} happened.",
        "severity": "medium",
        "count": 3,
        "class_a": "",
        "class_b": "",
        "evidence": [f"{pattern_type}_count=3"],
        "metadata": {"threshold": 0.5},
        "section": "predictions",
        "title": f"Title of {pattern_type}",
        "interpretation": f"What {pattern_type} means.",
        "confidence": "medium",
        "recommended_action": f"Fix {pattern_type}.",
        "recommendation": {
            "title": f"Fix {pattern_type}",
            "action": f"Do something about {pattern_type}.",
            "priority": 3,
            "expected_impact": "Literature context (not verified on this run): helps.",
            "literature_note": "Someone et al., 2020",
        },
    }
    pattern.update(overrides)
    return pattern


# -------------------------------------------------------------------------------------------
# check_pattern
# -------------------------------------------------------------------------------------------


def test_a_valid_pattern_is_copied_without_unknown_keys() -> None:
    original = _pattern(
        extra="dropped", detector="thing_detector", plugin="mine", count=np.int64(7)
    )
    original["metadata"] = {"n": np.int64(4), "share": np.float64(0.25), "flag": np.bool_(True)}
    clean = check_pattern(original)
    assert "extra" not in clean
    assert clean["detector"] == "thing_detector" and clean["plugin"] == "mine"
    assert (
        clean["evidence"] == original["evidence"] and clean["evidence"] is not original["evidence"]
    )
    assert clean["metadata"] == {"n": 4, "share": 0.25, "flag": True}
    assert type(clean["metadata"]["n"]) is int and type(clean["metadata"]["flag"]) is bool
    assert clean["recommendation"] == original["recommendation"]
    assert type(clean["count"]) is int and clean["count"] == 7


def test_legacy_may_be_one_dict_or_a_list() -> None:
    assert check_pattern(_pattern(legacy={"type": "x", "count": 2}))["legacy"] == [
        {"type": "x", "count": 2}
    ]
    two = [{"type": "x"}, {"type": "y"}]
    assert check_pattern(_pattern(legacy=two))["legacy"] == two
    assert "legacy" not in check_pattern(_pattern(legacy=None))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"severity": "urgent"}, "'severity' is 'urgent', not one of critical, high, medium, low"),
        ({"confidence": "sure"}, "'confidence' is 'sure'"),
        ({"section": "elsewhere"}, "'section' is 'elsewhere', not one of predictions, xai"),
        ({"evidence": []}, "'evidence' must not be empty"),
        ({"evidence": ["ok=1", 3]}, "'evidence item' must be a string"),
        ({"evidence": "count=3"}, "'evidence' has type str"),
        ({"interpretation": "  "}, "'interpretation' must not be empty"),
        ({"count": True}, "'count' has type bool"),
        ({"count": 2.0}, "'count' has type float"),
        ({"count": -1}, "'count' is -1, below 0"),
        ({"class_a": 3}, "'class_a' has type int"),
        ({"metadata": {"x": math.nan}}, "metadata['x'] is nan, which is not a finite number"),
        ({"metadata": {"x": [1, 2]}}, "metadata['x'] must be a JSON scalar, not list"),
        ({"metadata": [1]}, "'metadata' has type list"),
        ({"recommendation": "do it"}, "'recommendation' must be a dict"),
        ({"recommendation": {"title": "t"}}, "recommendation['action'] must be a string"),
        ({"legacy": [{"count": 1}]}, "'legacy' must be a dict with a string 'type'"),
        ({"detector": 7}, "'detector' must be a string"),
    ],
)
def test_malformed_patterns_raise_one_clear_sentence(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        check_pattern(_pattern("broken_thing", **change))
    text = str(raised.value)
    assert text.startswith("failure pattern 'broken_thing' is malformed: ")
    assert message in text
    assert text.endswith(".")


def test_bad_recommendation_priority_is_rejected() -> None:
    template = dict(_pattern()["recommendation"], priority=0)
    with pytest.raises(ValueError, match="priority'\\] must be 1 or more"):
        check_pattern(_pattern(recommendation=template))


def test_missing_keys_are_all_named() -> None:
    pattern = _pattern()
    del pattern["title"], pattern["evidence"]
    with pytest.raises(ValueError, match="missing key\\(s\\) 'evidence', 'title'"):
        check_pattern(pattern)
    with pytest.raises(ValueError, match="expected a dict, got list"):
        check_pattern(["not", "a", "pattern"])
    with pytest.raises(ValueError, match=r"^failure pattern is malformed: missing key"):
        check_pattern({"severity": "high"})


def test_build_findings_rejects_a_malformed_pattern() -> None:
    with pytest.raises(ValueError, match="'severity'"):
        build_findings([_pattern(), _pattern(severity="bad")])


# -------------------------------------------------------------------------------------------
# build_findings
# -------------------------------------------------------------------------------------------


def _pair(a: int, b: int, severity: str = "medium", confidence: str = "medium") -> dict[str, Any]:
    return _pattern(
        "pair",
        description=f"{NAMES[a]} -> {NAMES[b]}.",
        class_a=str(a),
        class_b=str(b),
        severity=severity,
        confidence=confidence,
        evidence=[f"pair[{a}->{b}]=1", f"share[{a}->{b}]=0.1", "shared=1"],
        interpretation=f"{NAMES[b]} absorbs {NAMES[a]}.",
        legacy={"type": "pair", "true_class": str(a), "pred_class": str(b)},
    )


def test_patterns_of_one_type_and_section_form_one_finding() -> None:
    patterns = [
        _pair(0, 1),
        _pattern("lonely", severity="low"),
        _pair(1, 2, severity="high", confidence="low"),
        _pair(0, 2, confidence="high"),
        _pair(3, 0),
        _pattern("pair", section="xai", severity="low"),
    ]
    result = build_findings(patterns, class_names=NAMES)
    # Both low findings have one member: "Title of lonely" sorts before "Title of pair".
    assert [f["finding_type"] for f in result.findings] == ["pair", "lonely", "pair"]
    pairs = result.findings[0]
    assert pairs["section"] == "predictions"
    assert pairs["severity"] == "high" and pairs["confidence"] == "high"
    # Most severe member first, then input order.
    assert pairs["linked_pattern_ids"] == ["pattern_2", "pattern_0", "pattern_3", "pattern_4"]
    assert pairs["description"] == "dog -> bird. cat -> dog. cat -> bird. ...and 1 more."
    assert pairs["evidence"] == [
        "pair[1->2]=1",
        "share[1->2]=0.1",
        "pair[0->1]=1",
        "share[0->1]=0.1",
        "pair[0->2]=1",
        "share[0->2]=0.1",
    ]
    assert pairs["interpretation"] == "bird absorbs dog. dog absorbs cat."
    assert pairs["class_ids"] == ["1", "2", "0", "3"]
    assert pairs["class_names"] == ["dog", "bird", "cat", "fish"]
    assert pairs["recommended_action"] == "Fix pair."
    assert pairs["title"] == "Title of pair"
    assert result.findings[2]["section"] == "xai"
    assert result.findings[1]["class_ids"] == [] and result.findings[1]["class_names"] == []


def test_evidence_is_deduplicated_and_never_empty() -> None:
    same = [_pattern("x", evidence=["a=1", "b=2"]) for _ in range(4)]
    (finding,) = build_findings(same).findings
    assert finding["evidence"] == ["a=1", "b=2"]
    assert finding["description"].endswith("...and 1 more.")
    assert finding["interpretation"] == "What x means."


def test_findings_sort_by_severity_then_size_then_title_and_ids_follow_the_order() -> None:
    patterns = [
        _pattern("b_small", severity="medium", title="B"),
        _pattern("a_big", severity="medium", title="Z"),
        _pattern("a_big", severity="medium", title="Z"),
        _pattern("c_small", severity="medium", title="A"),
        _pattern("critical_one", severity="critical", title="Y"),
        _pattern("low_one", severity="low", title="0"),
        _pattern("high_one", severity="high", title="X"),
    ]
    findings = build_findings(patterns).findings
    assert [f["title"] for f in findings] == ["Y", "X", "Z", "A", "B", "0"]
    assert [f["id"] for f in findings] == [f"finding_{k}" for k in range(6)]
    assert findings[0]["severity"] == "critical"


def test_findings_are_truncated_after_sorting_but_patterns_are_kept() -> None:
    patterns = [_pattern(f"type_{k}", severity="low") for k in range(5)]
    patterns.append(_pattern("worst", severity="critical"))
    result = build_findings(patterns, max_findings=2)
    assert [f["finding_type"] for f in result.findings] == ["worst", "type_0"]
    assert [f["id"] for f in result.findings] == ["finding_0", "finding_1"]
    assert len(result.failure_patterns_extended) == 6


def test_extended_patterns_keep_input_order_ids_and_provenance() -> None:
    patterns = [_pattern("x", detector="x_detector", plugin="mine"), _pair(0, 1)]
    extended = build_findings(patterns).failure_patterns_extended
    assert [entry["id"] for entry in extended] == ["pattern_0", "pattern_1"]
    assert list(extended[0]) == ["id", *EXTENDED_KEYS, "detector", "plugin"]
    assert list(extended[1]) == ["id", *EXTENDED_KEYS]
    assert extended[1]["class_a"] == "0" and extended[1]["evidence"] == patterns[1]["evidence"]


def test_legacy_list_flattens_the_patterns_legacy_entries_in_order() -> None:
    patterns = [
        _pattern("x", legacy=[{"type": "a"}, {"type": "b"}]),
        _pattern("y"),
        _pattern("z", legacy={"type": "c"}),
    ]
    assert build_findings(patterns).failure_patterns == [
        {"type": "a"},
        {"type": "b"},
        {"type": "c"},
    ]


def test_result_reads_as_attributes_and_as_a_mapping() -> None:
    result = build_findings([_pattern()])
    assert isinstance(result, FindingsResult)
    assert result["findings"] is result.findings
    assert set(dict(result)) == {"failure_patterns_extended", "findings", "failure_patterns"}
    with pytest.raises(KeyError):
        result["recommendations"]


def test_no_patterns_give_empty_lists() -> None:
    result = build_findings([])
    assert (result.findings, result.failure_patterns_extended, result.failure_patterns) == (
        [],
        [],
        [],
    )
    assert build_recommendations([], []) == ([], [NO_RECOMMENDATION])


_patterns = st.lists(
    st.builds(
        lambda kind, section, severity, confidence, a: _pattern(
            kind,
            section=section,
            severity=severity,
            confidence=confidence,
            class_a=a,
            recommendation=None if kind == "no_rec" else _pattern(kind)["recommendation"],
        ),
        st.sampled_from(["alpha", "beta", "gamma", "delta", "no_rec"]),
        st.sampled_from(FINDING_SECTIONS),
        st.sampled_from(SEVERITIES),
        st.sampled_from(CONFIDENCES),
        st.sampled_from(["", "0", "1", "2"]),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(patterns=_patterns, max_findings=st.integers(1, 15), max_items=st.integers(1, 15))
def test_ids_always_link_up(
    patterns: list[dict[str, Any]], max_findings: int, max_items: int
) -> None:
    result = build_findings(patterns, class_names=NAMES, max_findings=max_findings)
    pattern_ids = [entry["id"] for entry in result.failure_patterns_extended]
    assert pattern_ids == [f"pattern_{i}" for i in range(len(patterns))]
    linked = [pid for finding in result.findings for pid in finding["linked_pattern_ids"]]
    assert set(linked) <= set(pattern_ids) and len(linked) == len(set(linked))
    assert len(result.findings) <= max_findings
    ranks = [SEVERITIES.index(finding["severity"]) for finding in result.findings]
    assert ranks == sorted(ranks)
    for finding in result.findings:
        members = [patterns[int(pid.split("_")[1])] for pid in finding["linked_pattern_ids"]]
        assert {(m["section"], m["pattern_type"]) for m in members} == {
            (finding["section"], finding["finding_type"])
        }
        assert finding["evidence"] and finding["interpretation"]
    structured, legacy = build_recommendations(result.findings, patterns, max_items=max_items)
    finding_ids = {finding["id"] for finding in result.findings}
    for item in structured:
        assert set(item["linked_finding_ids"]) <= finding_ids
    assert [item["id"] for item in structured] == [f"rec_{k}" for k in range(len(structured))]
    keys = [(item["priority"], item["title"]) for item in structured]
    assert keys == sorted(keys) and len(structured) <= max_items
    assert 1 <= len(legacy) <= 10


# -------------------------------------------------------------------------------------------
# build_recommendations
# -------------------------------------------------------------------------------------------


def _template(title: str, priority: int) -> dict[str, Any]:
    return dict(_pattern()["recommendation"], title=title, priority=priority)


def test_one_recommendation_per_finding_with_a_template() -> None:
    patterns = [
        _pair(0, 1, severity="high"),
        _pair(2, 0),
        _pattern("calibration", recommendation=_template("Calibrate", 2)),
        _pattern("no_advice", recommendation=None, severity="critical"),
    ]
    patterns[0]["recommendation"] = _template("Reduce confusions", 4)
    patterns[1]["recommendation"] = _template("Ignored: not the first member", 1)
    findings = build_findings(patterns, class_names=NAMES).findings
    structured, legacy = build_recommendations(findings, patterns)
    assert [item["title"] for item in structured] == [
        "Calibrate",
        "Reduce confusions: cat, dog, bird",
    ]
    assert [item["id"] for item in structured] == ["rec_0", "rec_1"]
    calibrate, confusions = structured
    by_id = {finding["id"]: finding for finding in findings}
    assert by_id[confusions["linked_finding_ids"][0]]["finding_type"] == "pair"
    assert by_id[calibrate["linked_finding_ids"][0]]["finding_type"] == "calibration"
    assert calibrate["scope"] == "global"
    assert confusions["scope"] == "cat, dog, bird"
    assert confusions["why"] == "dog absorbs cat. cat absorbs bird. From this run: pair[0->1]=1."
    assert confusions["priority"] == 4 and confusions["confidence"] == "medium"
    assert confusions["evidence_from_run"] == by_id[confusions["linked_finding_ids"][0]]["evidence"]
    assert confusions["expected_impact"].startswith("Literature context")
    assert confusions["literature_note"] == "Someone et al., 2020"
    assert legacy == [
        "Calibrate — calibration_count=3. Do something about thing.",
        "Reduce confusions: cat, dog, bird — pair[0->1]=1; share[0->1]=0.1; pair[2->0]=1. "
        "Do something about thing.",
    ]


def test_scope_lists_six_class_names_then_a_count() -> None:
    patterns = [_pattern("wide", class_a=str(k)) for k in range(9)]
    findings = build_findings(patterns, class_names=NAMES).findings
    (item,), _ = build_recommendations(findings, patterns)
    assert item["scope"] == "cat, dog, bird, fish, frog, owl (+3 more)"
    assert item["title"] == "Fix wide: cat, dog, bird, fish, frog, owl (+3 more)"
    unnamed = build_findings(patterns[:2]).findings
    (item,), _ = build_recommendations(unnamed, patterns[:2])
    assert item["scope"] == "0, 1"


def test_recommendations_and_legacy_lines_are_truncated() -> None:
    patterns = [
        _pattern(f"type_{k:02d}", recommendation=_template(f"T{k:02d}", 1)) for k in range(20)
    ]
    findings = build_findings(patterns, max_findings=20).findings
    structured, legacy = build_recommendations(findings, patterns)
    assert len(structured) == 15 and len(legacy) == 10
    assert [item["title"] for item in structured] == [f"T{k:02d}" for k in range(15)]
    structured, _ = build_recommendations(findings, patterns, max_items=3)
    assert [item["id"] for item in structured] == ["rec_0", "rec_1", "rec_2"]


def test_patterns_may_carry_their_own_ids() -> None:
    patterns = [_pattern("x"), _pattern("y", recommendation=_template("Do y", 1))]
    findings = build_findings(patterns).findings
    shuffled = [dict(patterns[1], id="pattern_1"), dict(patterns[0], id="pattern_0")]
    assert build_recommendations(findings, shuffled) == build_recommendations(findings, patterns)


def test_without_templates_there_is_one_fallback_line() -> None:
    patterns = [_pattern(recommendation=None)]
    findings = build_findings(patterns).findings
    assert build_recommendations(findings, patterns) == ([], [NO_RECOMMENDATION])
