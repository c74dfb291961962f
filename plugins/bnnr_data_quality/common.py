"""What the checks share: building issues and failure patterns, naming classes and splits.

An issue is the dictionary a :class:`bnnr_core.protocols.DataQualityCheck` returns (keys in
``docs/data-quality.md``); a pattern is what :func:`bnnr_core.analysis.findings.check_pattern`
accepts, with section ``data_quality``. No other plugin is imported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from bnnr_core.analysis.findings import make_pattern as core_make_pattern
from bnnr_core.analysis.findings import recommendation

#: Report section of every pattern of this plugin.
SECTION = "data_quality"
#: Prefix of every ``expected_impact``: the sentence is literature context, not a measurement.
#: How each split is named in messages.
SPLIT_NOUNS = {"eval": "evaluation", "train": "training"}
#: Examples quoted in a pattern's evidence.
EVIDENCE_EXAMPLES = 3
#: Separator of the labels of a multi-label set in messages and groups (the manifest's), and
#: how an empty set is written.
LABEL_SEPARATOR = ";"
NO_LABEL = "(none)"


def split_noun(split: str) -> str:
    """``"evaluation"`` or ``"training"``."""
    return SPLIT_NOUNS.get(split, split)


def summary_key(split: str, key: str) -> str:
    """Flat summary key of ``key`` for ``split``: training-split numbers get ``train_``."""
    return key if split == "eval" else f"{split}_{key}"


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``"1 image"``, ``"3 images"``."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


def percent(value: float) -> str:
    """``0.6774`` -> ``"67.7%"``."""
    return f"{100 * value:.1f}%"


def label_set_text(row: np.ndarray, names: Sequence[str]) -> str:
    """A multi-hot row as ``"cat;dog"`` (``"(none)"`` when no label is present)."""
    present = [str(names[int(k)]) for k in np.flatnonzero(np.asarray(row) > 0)]
    return LABEL_SEPARATOR.join(present) if present else NO_LABEL


def label_keys(labels: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """One integer per row that is equal exactly when the labels are, and the text of each key.

    Single-label ``(n,)`` class indices are their own keys (text: the class name); multi-hot
    ``(n, C)`` rows get the number of their distinct label *set* (text: ``"cat;dog"``).
    """
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return labels.astype(np.int64), [str(name) for name in names]
    sets, keys = np.unique(labels > 0, axis=0, return_inverse=True)
    return keys.reshape(-1).astype(np.int64), [label_set_text(row, names) for row in sets]


def positions(scan: Any, mask: np.ndarray, order: np.ndarray | None = None) -> list[int]:
    """Dataset positions of the rows of ``scan`` selected by ``mask``, in ``order`` (row numbers,
    e.g. most severe first) or in dataset order."""
    rows = np.flatnonzero(mask) if order is None else np.asarray(order)[mask[order]]
    return [int(position) for position in scan.positions[rows]]


def confidence(count: int, *, high: int, medium: int) -> str:
    """``high`` from ``high`` instances, ``medium`` from ``medium``, ``low`` below."""
    return "high" if count >= high else "medium" if count >= medium else "low"


def make_issue(
    *,
    kind: str,
    severity: str,
    split: str,
    indices: Sequence[int],
    message: str,
    thresholds: Mapping[str, Any],
    summary: str,
    count: int | None = None,
    details: Iterable[Mapping[str, Any]] | None = None,
    pattern: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One issue; ``count`` defaults to ``len(indices)``; ``summary`` names its flat number in
    ``data_quality_summary`` (prefixed ``train_`` for the training split)."""
    total = len(indices) if count is None else count
    issue: dict[str, Any] = {
        "type": kind,
        "severity": severity,
        "split": split,
        "count": int(total),
        "indices": [int(index) for index in indices],
        "message": message,
        "thresholds": dict(thresholds),
        "summary": {summary_key(split, summary): int(total)},
    }
    if details is not None:
        issue["details"] = [dict(detail) for detail in details]
    if pattern is not None:
        issue["pattern"] = dict(pattern)
    return issue


def make_pattern(
    *,
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
    recommendation_title: str,
    priority: int,
    impact: str,
    literature_note: str,
    class_a: str = "",
    class_b: str = "",
) -> dict[str, Any]:
    """A failure pattern of section ``data_quality`` with its recommendation template;
    ``impact`` is prefixed with
    :data:`bnnr_core.analysis.findings.LITERATURE_PREFIX`."""
    return core_make_pattern(
        section=SECTION,
        pattern_type=pattern_type,
        title=title,
        description=description,
        severity=severity,
        count=count,
        evidence=evidence,
        metadata=metadata,
        interpretation=interpretation,
        confidence=confidence,
        recommended_action=recommended_action,
        recommendation=recommendation(
            title=recommendation_title,
            action=recommended_action,
            priority=priority,
            impact=impact,
            literature_note=literature_note,
        ),
        class_a=class_a,
        class_b=class_b,
    )


def examples(sample_ids: Sequence[str]) -> str:
    """The first few sample ids, for evidence: ``a.png, b.png, c.png (+4 more)``."""
    shown = ", ".join(sample_ids[:EVIDENCE_EXAMPLES])
    extra = len(sample_ids) - EVIDENCE_EXAMPLES
    return shown + (f" (+{extra} more)" if extra > 0 else "")
