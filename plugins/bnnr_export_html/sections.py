"""The sections of the HTML report, each turned from the report document into plain view values.

One builder per section returns a dictionary the template ``report.html.j2`` shows; a section
without data gets a ``reason`` (from ``analysis_scope.sections`` when its step did not run).
:func:`build_context` assembles them in page order.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bnnr_export_html import charts
from bnnr_export_html.images import ImageEmbedder
from bnnr_export_html.values import (
    INDEX_LIST_CAP,
    METRIC_LABELS,
    PERCENT_METRICS,
    ClassNames,
    anchor,
    as_dict,
    as_int,
    as_list,
    as_number,
    as_text,
    capped,
    dec,
    faithfulness_facts,
    is_path_key,
    make_figure,
    make_thumbnails,
    metric_text,
    path_values,
    pct,
    sample_list,
    severity_class,
    sort_value,
)

#: With more classes than this, the confusion heatmap shows the most-confused classes only.
TOP_CONFUSED = 20
#: The folded full matrix is SVG up to this many non-zero cells, a PNG above.
FULL_MATRIX_SVG_CELLS = 3000
#: Rows of the most-confused-pairs table.
TOP_PAIRS = 10
#: Classes in the distribution chart (those with the largest difference when there are more).
DISTRIBUTION_ROWS = 30
#: Rows of the per-class and per-label tables.
TABLE_ROWS = 500
#: Caps of the galleries (examples, pairs, classes, warnings, groups, thumbnails); what is left
#: out is counted on the page and in the footer, together bounding the size of the file.
GALLERY_CAP = 20
PAIR_CAP = 6
PAIR_SAMPLE_CAP = 8
BEST_WORST_CLASSES = 10
BEST_WORST_EACH = 3
DQ_WARNING_CAP = 12
DQ_THUMBNAIL_CAP = 12
DQ_GROUP_CAP = 8
DQ_GROUP_THUMBNAIL_CAP = 6
#: Order of the headline metrics in the header; other metrics follow by name.
METRIC_ORDER = [
    "accuracy",
    "balanced_accuracy",
    "f1_macro",
    "precision_macro",
    "recall_macro",
    "top5_accuracy",
    "subset_accuracy",
    "f1_samples",
    "cohen_kappa",
    "mcc",
    "loss",
    "ece",
]
#: Sections of ``analysis_scope.sections`` that a reader may expect, with display names.
SCOPE_NAMES = {
    "metrics": "metrics",
    "failure_patterns": "failure detectors",
    "xai": "saliency (XAI)",
    "data_quality": "data quality",
    "cv_results": "cross-validation",
}


def _scope(report: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``analysis_scope.sections`` entries."""
    return as_dict(as_dict(report.get("analysis_scope")).get("sections"))


def _reason(report: Mapping[str, Any], key: str, default: str) -> str:
    """Why section ``key`` is empty: its ``analysis_scope`` status and reason, or ``default``."""
    entry = as_dict(_scope(report).get(key))
    status, reason = as_text(entry.get("status")), as_text(entry.get("reason"))
    if status and status != "ok":
        return f"Not run ({status}): {reason}." if reason else f"Not run ({status})."
    return default


def _header(report: Mapping[str, Any], names: ClassNames) -> dict[str, Any]:
    """The header: health, headline metrics with intervals, score breakdown, unchecked steps."""
    summary = as_dict(report.get("executive_summary"))
    breakdown = as_dict(summary.get("score_breakdown"))
    headline = as_text(breakdown.get("headline_metric"))
    metrics = as_dict(report.get("metrics"))
    intervals = as_dict(as_dict(report.get("metrics_ci")).get("intervals"))
    level = as_number(as_dict(report.get("metrics_ci")).get("confidence_level"))
    ordered = [k for k in METRIC_ORDER if k in metrics]
    ordered += sorted(k for k in metrics if k not in METRIC_ORDER and k != "nonfinite_rows")
    metric_views = []
    for key in ordered:
        if as_number(metrics[key]) is None and metrics[key] is not None:
            continue
        interval = as_dict(intervals.get(key))
        ci = ""
        if (
            as_number(interval.get("low")) is not None
            and as_number(interval.get("high")) is not None
        ):
            ci = (
                f"{pct(level, 0) if level else '95%'} CI "
                f"{metric_text(key, interval['low'])} – {metric_text(key, interval['high'])}"
            )
        metric_views.append(
            {
                "key": key,
                "label": METRIC_LABELS.get(key, key.replace("_", " ")),
                "value": metric_text(key, metrics[key]),
                "ci": ci,
                "headline": key == headline,
            }
        )
    penalties = [
        {
            "section": SCOPE_NAMES.get(section, section),
            "ran": "yes" if as_dict(entry).get("ran") else "no (full cap)",
            "penalty": dec(as_dict(entry).get("penalty"), 2),
            "cap": dec(as_dict(entry).get("cap"), 2),
        }
        for section, entry in sorted(as_dict(breakdown.get("penalties")).items())
    ]
    scope_rows = [
        {
            "name": SCOPE_NAMES.get(key, key.replace("_", " ")),
            "status": as_text(as_dict(entry).get("status")) or "unknown",
            "css": severity_class(as_dict(entry).get("status")),
            "reason": as_text(as_dict(entry).get("reason")),
        }
        for key, entry in sorted(_scope(report).items())
    ]
    unchecked = [
        {
            "name": SCOPE_NAMES.get(as_text(key), as_text(key)),
            "reason": _reason(report, as_text(key), "Not run."),
        }
        for key in as_list(summary.get("unchecked_sections"))
    ]
    notes = as_dict(report.get("analysis_scope")).get("notes")
    nonfinite = as_int(metrics.get("nonfinite_rows"))
    status = as_text(summary.get("health_status")) or "unknown"
    return {
        "status": status,
        "status_css": severity_class(status),
        "score": pct(summary.get("health_score")),
        "key_findings": [as_text(x) for x in as_list(summary.get("key_findings"))],
        "top_actions": [as_text(x) for x in as_list(summary.get("top_actions"))],
        "critical_classes": [names.label(x) for x in as_list(summary.get("critical_classes"))],
        "metrics": metric_views,
        "headline": METRIC_LABELS.get(headline, headline),
        "performance": pct(breakdown.get("performance"), 2),
        "penalties": penalties,
        "scope": scope_rows,
        "unchecked": unchecked,
        "notes": [as_text(n) for n in as_list(notes)]
        if isinstance(notes, list)
        else ([as_text(notes)] if notes else []),
        "nonfinite_rows": nonfinite or 0,
        "facts": _facts(report),
        "durations": [
            (key, f"{dec(value, 2)} s")
            for key, value in sorted(
                as_dict(as_dict(report.get("provenance")).get("durations_s")).items()
            )
        ],
    }


def _facts(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Model, data and run facts from ``provenance``, as (label, text) rows."""
    prov = as_dict(report.get("provenance"))
    model, data, inputs = (
        as_dict(prov.get("model")),
        as_dict(prov.get("data")),
        as_dict(prov.get("input")),
    )
    scope = as_dict(report.get("analysis_scope"))
    facts: list[tuple[str, str]] = []

    def add(label: str, *values: Any, sep: str = " · ") -> None:
        text = sep.join(as_text(v) for v in values if v not in (None, "", [], {}))
        if text:
            facts.append((label, text))

    add("Task", scope.get("task"))
    add("Model", model.get("path"))
    add(
        "Architecture",
        model.get("arch"),
        f"format {model['format']}" if model.get("format") else None,
        f"{model['num_classes']} classes" if model.get("num_classes") is not None else None,
    )
    add("Model SHA-256", model.get("sha256"))
    add("Data", data.get("source"), data.get("location"), data.get("split"))
    evaluated, total = as_int(data.get("evaluated_samples")), as_int(data.get("num_samples"))
    if evaluated is not None:
        add("Samples", f"{evaluated} evaluated" + (f" of {total}" if total is not None else ""))
    skipped = as_list(data.get("skipped"))
    if skipped:
        add("Skipped files", f"{len(skipped)} (see analysis_report.json provenance.data.skipped)")
    size = as_list(inputs.get("size"))
    add(
        "Input",
        f"{inputs['channels']} channel(s)" if inputs.get("channels") is not None else None,
        "×".join(as_text(s) for s in size) if size else None,
        f"mean {as_text(inputs['mean'])}" if inputs.get("mean") else None,
        f"std {as_text(inputs['std'])}" if inputs.get("std") else None,
    )
    add("Device", prov.get("device"))
    add("Seed", prov.get("seed"))
    ci = as_dict(report.get("metrics_ci"))
    add(
        "Intervals",
        ci.get("method"),
        f"{ci['n_resamples']} resamples" if ci.get("n_resamples") else None,
    )
    add("Analysed", prov.get("started_at"), prov.get("finished_at"), sep=" → ")
    add("BNNR", prov.get("version"), f"report schema {report.get('schema_version')}")
    command = prov.get("command_line")
    if isinstance(command, list):
        add("Command", " ".join(shlex.quote(as_text(part)) for part in command))
    plugins = as_dict(prov.get("plugins"))
    add("Plugins", ", ".join(f"{name} {as_text(v)}" for name, v in sorted(plugins.items())))
    return facts


def _findings(report: Mapping[str, Any], names: ClassNames) -> dict[str, Any]:
    """Findings and recommendations, each linking to the other by id anchors."""
    patterns = {
        as_text(as_dict(p).get("id")): as_dict(p)
        for p in as_list(report.get("failure_patterns_extended"))
    }
    recs = [as_dict(r) for r in as_list(report.get("recommendations_structured"))]
    findings = [as_dict(f) for f in as_list(report.get("findings"))]
    finding_titles = {as_text(f.get("id")): as_text(f.get("title")) for f in findings}
    rec_views = []
    back_links: dict[str, list[dict[str, str]]] = {}
    for rec in recs:
        links = []
        for finding_id in as_list(rec.get("linked_finding_ids")):
            key = as_text(finding_id)
            known = key in finding_titles
            links.append(
                {
                    "href": f"#{anchor('finding', key)}" if known else "",
                    "text": f"{key}: {finding_titles[key]}" if known else f"{key} (not listed)",
                }
            )
            back_links.setdefault(key, []).append(
                {"href": f"#{anchor('rec', rec.get('id'))}", "text": as_text(rec.get("title"))}
            )
        rec_views.append(
            {
                "anchor": anchor("rec", rec.get("id")),
                "id": as_text(rec.get("id")),
                "title": as_text(rec.get("title")),
                "priority": as_text(rec.get("priority")),
                "confidence": as_text(rec.get("confidence")),
                "scope": as_text(rec.get("scope")),
                "why": as_text(rec.get("why")),
                "action": as_text(rec.get("action")),
                "impact": as_text(rec.get("expected_impact")),
                "literature": as_text(rec.get("literature_note")),
                "evidence": [as_text(e) for e in as_list(rec.get("evidence_from_run"))],
                "links": links,
            }
        )
    finding_views = []
    for finding in findings:
        key = as_text(finding.get("id"))
        linked = []
        for pattern_id in as_list(finding.get("linked_pattern_ids")):
            pattern = patterns.get(as_text(pattern_id), {})
            linked.append(
                {
                    "id": as_text(pattern_id),
                    "text": as_text(pattern.get("description")) or "(pattern not listed)",
                    "detector": as_text(pattern.get("detector")),
                    "severity": as_text(pattern.get("severity")),
                    "css": severity_class(pattern.get("severity")),
                }
            )
        class_names = as_list(finding.get("class_names")) or [
            names.name(c) for c in as_list(finding.get("class_ids"))
        ]
        finding_views.append(
            {
                "anchor": anchor("finding", key),
                "id": key,
                "title": as_text(finding.get("title")),
                "severity": as_text(finding.get("severity")),
                "css": severity_class(finding.get("severity")),
                "confidence": as_text(finding.get("confidence")),
                "section": as_text(finding.get("section")),
                "description": as_text(finding.get("description")),
                "interpretation": as_text(finding.get("interpretation")),
                "evidence": [as_text(e) for e in as_list(finding.get("evidence"))],
                "classes": [as_text(c) for c in class_names],
                "action": as_text(finding.get("recommended_action")),
                "patterns": linked,
                "recommendations": back_links.get(key, []),
            }
        )
    scope = as_dict(_scope(report).get("failure_patterns"))
    errors = [as_text(e) for e in as_list(scope.get("errors"))]
    return {
        "findings": finding_views,
        "findings_reason": _reason(
            report, "failure_patterns", "No failure pattern was detected by the detectors that ran."
        ),
        "detectors": [as_text(d) for d in as_list(scope.get("detectors"))],
        "detector_errors": errors,
        "recommendations": rec_views,
        "legacy_recommendations": []
        if recs
        else [as_text(r) for r in as_list(report.get("recommendations"))],
    }


def _class_table(report: Mapping[str, Any], names: ClassNames) -> dict[str, Any]:
    """The per-class table: ``class_diagnostics`` (worst first), else ``per_class_accuracy``."""
    rows = []
    diagnostics = [as_dict(d) for d in as_list(report.get("class_diagnostics"))]
    if diagnostics:
        columns = [
            "Rank",
            "Class",
            "Support",
            "Predicted",
            "Precision",
            "Recall",
            "F1",
            "Kappa",
            "Severity",
        ]
        for entry in diagnostics:
            rows.append(
                [
                    (as_text(entry.get("rank")), sort_value(entry.get("rank")), ""),
                    (names.label(entry.get("class_id")), "", ""),
                    (as_text(entry.get("support")), sort_value(entry.get("support")), ""),
                    (as_text(entry.get("pred_count")), sort_value(entry.get("pred_count")), ""),
                    (pct(entry.get("precision")), sort_value(entry.get("precision")), ""),
                    (pct(entry.get("recall")), sort_value(entry.get("recall")), ""),
                    (pct(entry.get("f1")), sort_value(entry.get("f1")), ""),
                    (dec(entry.get("cohen_kappa")), sort_value(entry.get("cohen_kappa")), ""),
                    (
                        as_text(entry.get("severity")),
                        str(["critical", "warning", "ok"].index(entry["severity"]))
                        if entry.get("severity") in ("critical", "warning", "ok")
                        else "",
                        severity_class(entry.get("severity")),
                    ),
                ]
            )
    else:
        columns = ["Class", "Support", "Accuracy"]
        for key, entry in as_dict(report.get("per_class_accuracy")).items():
            item = as_dict(entry)
            rows.append(
                [
                    (names.label(key), "", ""),
                    (as_text(item.get("support")), sort_value(item.get("support")), ""),
                    (pct(item.get("accuracy")), sort_value(item.get("accuracy")), ""),
                ]
            )
    shown = rows[:TABLE_ROWS]
    return {
        "columns": columns,
        "rows": shown,
        "left_out": len(rows) - len(shown),
        "reason": "" if rows else "The task did not produce per-class results.",
    }


def _matrix(confusion: Mapping[str, Any]) -> list[list[int]] | None:
    """``confusion.matrix`` as a square list of integer rows, or ``None``."""
    rows = as_list(confusion.get("matrix"))
    matrix = [[as_int(v) or 0 for v in as_list(row)] for row in rows]
    if not matrix or any(len(row) != len(matrix) for row in matrix):
        return None
    return matrix


def _most_confused(matrix: Sequence[Sequence[int]], count: int) -> list[int]:
    """The ``count`` classes with the most confusions (as true or predicted class), by id."""
    n = len(matrix)
    involvement = [sum(matrix[i][j] + matrix[j][i] for j in range(n) if j != i) for i in range(n)]
    ranked = sorted(range(n), key=lambda i: (-involvement[i], i))[:count]
    return sorted(ranked)


def _confusion(report: Mapping[str, Any], names: ClassNames) -> dict[str, Any]:
    """The heatmap (most-confused classes when there are many), full matrix and top pairs."""
    confusion = as_dict(report.get("confusion"))
    matrix = _matrix(confusion)
    task = as_text(as_dict(report.get("analysis_scope")).get("task"))
    if matrix is None:
        multilabel = task == "multilabel" or confusion.get("type") == "multilabel_per_label"
        return {
            "reason": "Multilabel tasks have no confusion matrix; see the per-label table."
            if multilabel
            else "The task did not produce a confusion matrix."
        }
    ids = as_list(confusion.get("labels"))
    if len(ids) != len(matrix):
        ids = list(range(len(matrix)))
    labels = [names.label(class_id) for class_id in ids]
    n = len(matrix)
    view: dict[str, Any] = {"reason": "", "classes": n, "full_svg": None, "full_png": None}
    all_classes = list(range(n))
    shown = all_classes if n <= TOP_CONFUSED else _most_confused(matrix, TOP_CONFUSED)
    caption = (
        f"Confusion matrix, {n} classes"
        if n <= TOP_CONFUSED
        else f"Confusion matrix of the {len(shown)} most-confused of {n} classes"
    )
    view["heatmap"] = charts.confusion_heatmap(matrix, labels, shown, caption=caption)
    view["caption"] = caption
    if n > TOP_CONFUSED:
        nonzero = sum(1 for row in matrix for v in row if v)
        if nonzero <= FULL_MATRIX_SVG_CELLS:
            view["full_svg"] = charts.confusion_heatmap(
                matrix, labels, all_classes, caption=f"Full confusion matrix, {n} classes"
            )
        else:
            view["full_png"] = charts.confusion_png(matrix, all_classes)
    pairs = sorted(
        ((matrix[i][j], i, j) for i in range(n) for j in range(n) if i != j and matrix[i][j]),
        key=lambda item: (-item[0], item[1], item[2]),
    )[:TOP_PAIRS]
    view["pairs"] = [
        {
            "true": labels[i],
            "pred": labels[j],
            "count": count,
            "share": pct(count / sum(matrix[i])) if sum(matrix[i]) else "n/a",
            "reverse": matrix[j][i],
        }
        for count, i, j in pairs
    ]
    excluded = as_int(confusion.get("excluded_nonfinite"))
    view["excluded"] = excluded or 0
    return view


def _calibration(report: Mapping[str, Any]) -> dict[str, Any]:
    """The reliability diagram and the calibration numbers."""
    summary = as_dict(report.get("calibration_summary"))
    if not summary:
        return {
            "reason": _reason(
                report, "calibration", "The task did not produce a calibration summary."
            )
        }
    # Multi-label reports pool all (image, label) slots into one set of bins.
    pooled = "bins" not in summary and "bins_pooled" in summary
    bins = [as_dict(b) for b in as_list(summary.get("bins_pooled" if pooled else "bins"))]
    facts = [
        (label, fmt(summary.get(key)))
        for label, key, fmt in (
            ("ECE", "ece", dec),
            ("Mean per-label ECE", "ece_mean", dec),
            ("MCE", "mce", dec),
            ("Brier score", "brier", dec),
            ("Mean confidence", "mean_confidence", pct),
            ("Accuracy", "accuracy", pct),
            ("Confidence − accuracy", "confidence_gap", pct),
            ("Samples", "n_samples", as_text),
            ("Bins", "n_bins", as_text),
        )
        if summary.get(key) is not None
    ]
    direction = as_text(summary.get("direction"))
    caption = (
        "Reliability diagram: share of present labels per probability bin, every (image, label) "
        "pair pooled"
        if pooled
        else "Reliability diagram: accuracy per confidence bin"
    )
    return {
        "reason": "",
        "facts": facts,
        "direction": direction,
        "chart": charts.reliability_diagram(bins, caption=caption) if bins else None,
        "caption": caption,
    }


def _distribution(report: Mapping[str, Any], names: ClassNames) -> dict[str, Any]:
    """True against predicted counts per class, and the over/under-predicted lists."""
    true_dist, pred_dist = (
        as_dict(report.get("true_distribution")),
        as_dict(report.get("pred_distribution")),
    )
    keys = list(dict.fromkeys([*true_dist, *pred_dist]))
    if not keys:
        return {"reason": "The task did not produce label distributions."}
    rows = [
        (str(key), as_int(true_dist.get(key)) or 0, as_int(pred_dist.get(key)) or 0) for key in keys
    ]
    shown = rows
    if len(rows) > DISTRIBUTION_ROWS:
        chosen = sorted(rows, key=lambda r: (-abs(r[2] - r[1]), keys.index(r[0])))[
            :DISTRIBUTION_ROWS
        ]
        shown = [r for r in rows if r in chosen]
    summary = as_dict(report.get("distribution_summary"))

    def entries(key: str) -> list[str]:
        out = []
        for entry in as_list(summary.get(key)):
            item = as_dict(entry)
            out.append(
                f"{names.label(item.get('class'))}: true {as_text(item.get('true'))}, "
                f"predicted {as_text(item.get('pred'))} (×{dec(item.get('ratio'), 2)})"
            )
        return out

    collapse = None
    if summary.get("possible_collapse"):
        collapse = (
            f"Possible collapse onto {names.label(summary.get('collapse_class'))}: "
            f"{pct(summary.get('collapse_share'))} of the predictions."
        )
    caption = (
        f"True and predicted counts per class ({len(shown)} of {len(rows)} classes, "
        "those with the largest difference)"
        if len(shown) < len(rows)
        else "True and predicted counts per class"
    )
    return {
        "reason": "",
        "chart": charts.distribution_bars(
            [(names.label(k), t, p) for k, t, p in shown], caption=caption
        ),
        "caption": caption,
        "over": entries("over_predicted"),
        "under": entries("under_predicted"),
        "collapse": collapse,
        "rule": as_text(summary.get("rule")),
    }


def _errors(
    report: Mapping[str, Any], names: ClassNames, embedder: ImageEmbedder
) -> dict[str, Any]:
    """The confident-errors table."""
    entries = [as_dict(e) for e in as_list(report.get("confident_errors"))]
    if not entries:
        return {"reason": "No confidently wrong prediction is listed in this report."}
    with_images = any(path_values(e) for e in entries)
    rows = []

    def label_set(key: str) -> str | None:
        """Multi-label entries list label ids; ``None`` for a single-label entry."""
        if key not in entry:
            return None
        labels = [names.label(item) for item in as_list(entry.get(key))]
        return ", ".join(labels) if labels else "(none)"

    for entry in entries:
        true_id, pred_id = entry.get("true_label"), entry.get("pred_label")
        wrong = label_set("wrong_labels")
        true_set, pred_set = label_set("true_labels"), label_set("pred_labels")
        rows.append(
            {
                "sample": as_text(entry.get("sample_id") or entry.get("index")),
                "true": true_set
                if true_set is not None
                else names.label(true_id)
                if true_id is not None
                else as_text(entry.get("true_name")),
                "pred": (f"{pred_set} (wrong: {wrong})" if wrong else pred_set)
                if pred_set is not None
                else names.label(pred_id)
                if pred_id is not None
                else as_text(entry.get("pred_name")),
                "confidence": pct(entry.get("confidence")),
                "confidence_v": sort_value(entry.get("confidence")),
                "loss": dec(entry.get("loss")),
                "loss_v": sort_value(entry.get("loss")),
                "figure": make_figure(entry, embedder, names, "wrong prediction")
                if with_images
                else None,
            }
        )
    return {"reason": "", "rows": rows, "with_images": with_images}


def _gallery(
    entries: Iterable[Any], embedder: ImageEmbedder, names: ClassNames, alt: str, cap: int
) -> dict[str, Any]:
    """Figures of the first ``cap`` entries, and how many were left out."""
    items, left_out = capped([as_dict(e) for e in entries], cap, embedder)
    return {"figures": [make_figure(e, embedder, names, alt) for e in items], "left_out": left_out}


def _xai(report: Mapping[str, Any], names: ClassNames, embedder: ImageEmbedder) -> dict[str, Any]:
    """Saliency: quality per class, worst errors, confused pairs, best and worst per class."""
    keys = (
        "xai_insights",
        "xai_diagnoses",
        "xai_quality_summary",
        "xai_quality_per_class",
        "xai_examples_per_class",
        "confusion_pair_xai",
        "best_worst_examples",
    )
    if not any(report.get(k) for k in keys):
        return {"reason": _reason(report, "xai", "No saliency results in this report.")}
    partial = as_dict(_scope(report).get("xai"))
    summary = _scalars(as_dict(report.get("xai_quality_summary")))
    insights, diagnoses = as_dict(report.get("xai_insights")), as_dict(report.get("xai_diagnoses"))
    quality = as_dict(report.get("xai_quality_per_class"))
    class_rows: list[dict[str, Any]] = []
    for key in list(dict.fromkeys([*quality, *diagnoses, *insights])):
        entry, diagnosis = as_dict(quality.get(key)), as_dict(diagnoses.get(key))
        class_rows.append(
            {
                "cls": names.label(key),
                "quality": dec(entry.get("mean_quality", diagnosis.get("quality_score"))),
                "quality_v": sort_value(entry.get("mean_quality", diagnosis.get("quality_score"))),
                "samples": as_text(entry.get("sample_count")),
                "flags": as_text(entry.get("flags")),
                "severity": as_text(diagnosis.get("severity")),
                "css": severity_class(diagnosis.get("severity")),
                "text": as_text(
                    insights.get(key) or diagnosis.get("text") or diagnosis.get("short_text")
                ),
                "faithfulness": faithfulness_facts(entry),
            }
        )
    class_rows.sort(key=lambda row: (row["quality_v"] == "", float(row["quality_v"] or 0)))
    worst = sorted(
        (
            as_dict(e)
            for v in as_dict(report.get("xai_examples_per_class")).values()
            for e in as_list(v)
        ),
        key=lambda e: -(as_number(e.get("confidence")) or 0.0),
    )
    pairs = []
    pair_entries, pairs_left_out = capped(
        [as_dict(p) for p in as_list(report.get("confusion_pair_xai"))], PAIR_CAP, embedder
    )
    for pair in pair_entries:
        means = [
            (key, pair[key])
            for key in sorted(pair, key=lambda k: ("correct" not in k, k))
            if key.startswith("mean_")
            and is_path_key(key)
            and isinstance(pair[key], str)
            and pair[key] != ""
        ]
        a, b = names.label(pair.get("class_a")), names.label(pair.get("class_b"))
        pairs.append(
            {
                "a": a,
                "b": b,
                "count": as_text(pair.get("count")),
                "description": as_text(pair.get("heuristic_description")),
                "means": [
                    {
                        "label": _mean_label(key, a, b),
                        "image": embedder.embed(path, f"{_mean_label(key, a, b)} ({a} → {b})"),
                    }
                    for key, path in means
                ],
                "faithfulness": faithfulness_facts(pair),
                "samples": _gallery(
                    as_list(pair.get("sample_overlays")),
                    embedder,
                    names,
                    f"confused sample {a} → {b}",
                    PAIR_SAMPLE_CAP,
                ),
            }
        )
    best_worst = as_dict(report.get("best_worst_examples"))
    order = [as_text(as_dict(d).get("class_id")) for d in as_list(report.get("class_diagnostics"))]
    class_keys = sorted(best_worst, key=lambda k: (order.index(k) if k in order else len(order), k))
    chosen, classes_left_out = capped(
        [(key, as_dict(best_worst[key])) for key in class_keys], BEST_WORST_CLASSES, embedder
    )
    per_class = []
    for key, entry in chosen:
        per_class.append(
            {
                "cls": names.label(key),
                "best": _gallery(
                    as_list(entry.get("best")),
                    embedder,
                    names,
                    f"most confident correct {names.label(key)}",
                    BEST_WORST_EACH,
                ),
                "worst": _gallery(
                    as_list(entry.get("worst")),
                    embedder,
                    names,
                    f"most confident error on {names.label(key)}",
                    BEST_WORST_EACH,
                ),
            }
        )
    return {
        "reason": "",
        "partial": _reason(report, "xai", "") if partial.get("status") not in (None, "ok") else "",
        "summary": summary,
        "classes": class_rows,
        "worst": _gallery(worst, embedder, names, "wrong prediction", GALLERY_CAP),
        "pairs": pairs,
        "pairs_left_out": pairs_left_out,
        "best_worst": per_class,
        "best_worst_left_out": classes_left_out,
    }


def _scalars(values: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """The scalar items of ``values`` and of its dictionaries one level down, as facts."""
    facts = []
    for key, value in sorted(values.items()):
        label = f"{prefix}{key}".replace("_", " ")
        if isinstance(value, Mapping) and not prefix:
            facts.extend(_scalars(value, f"{key} "))
        elif isinstance(value, bool):
            facts.append((label, "yes" if value else "no"))
        elif as_number(value) is not None:
            facts.append((label, dec(value)))
        elif isinstance(value, str) and value:
            facts.append((label, value))
    return facts


def _mean_label(key: str, a: str, b: str) -> str:
    """The caption of a mean saliency map of a confused pair."""
    if "correct" in key:
        return f"mean saliency, {a} classified correctly"
    if "confused" in key:
        return f"mean saliency, {a} predicted as {b}"
    return key.replace("_", " ")


def _data_quality(
    report: Mapping[str, Any], names: ClassNames, embedder: ImageEmbedder
) -> dict[str, Any]:
    """Data-quality warnings and near-duplicate groups with their thumbnails."""
    dq = as_dict(report.get("data_quality")) or as_dict(report.get("data_quality_summary"))
    if not dq:
        return {
            "reason": _reason(report, "data_quality", "No data-quality results in this report.")
        }
    facts = [
        (key.replace("_", " "), as_text(value))
        for key, value in sorted(dq.items())
        if key != "summary" and not isinstance(value, Mapping | list) and value is not None
    ]
    warnings = []
    shown, warnings_left_out = capped(
        [as_dict(w) for w in as_list(dq.get("warnings"))], DQ_WARNING_CAP, embedder
    )
    for warning in shown:
        kind = as_text(warning.get("type")) or "warning"
        thumbs, left_out = make_thumbnails(
            warning, embedder, names, f"data-quality: {kind}", DQ_THUMBNAIL_CAP
        )
        warnings.append(
            {
                "type": kind,
                "severity": as_text(warning.get("severity")) or "unknown",
                "css": severity_class(warning.get("severity")),
                "count": as_text(warning.get("count")),
                "message": as_text(warning.get("message")),
                "samples": sample_list(warning),
                "thumbnails": thumbs,
                "left_out": left_out,
            }
        )
    groups = []
    shown_groups, groups_left_out = capped(
        [as_dict(g) for g in as_list(dq.get("duplicate_groups"))], DQ_GROUP_CAP, embedder
    )
    for number, group in enumerate(shown_groups):
        thumbs, left_out = make_thumbnails(
            group, embedder, names, f"near-duplicate group {number + 1}", DQ_GROUP_THUMBNAIL_CAP
        )
        ids = as_list(group.get("sample_ids")) or as_list(group.get("indices"))
        labels = as_list(group.get("labels"))
        groups.append(
            {
                "size": as_text(group.get("size") or len(ids)),
                "samples": sample_list(group),
                "labels": ", ".join(names.label(label) for label in labels[:INDEX_LIST_CAP]),
                "thumbnails": thumbs,
                "left_out": left_out,
            }
        )
    return {
        "reason": "",
        "summary": as_text(dq.get("summary")),
        "facts": facts,
        "warnings": warnings,
        "warnings_left_out": warnings_left_out,
        "groups": groups,
        "groups_left_out": groups_left_out,
    }


def _cv(report: Mapping[str, Any]) -> dict[str, Any]:
    """The cross-validation summary (mean, std, min, max) and per-fold tables."""
    cv = as_dict(report.get("cv_results"))
    if not cv:
        return {
            "reason": _reason(report, "cv_results", "No cross-validation results in this report.")
        }
    stats: dict[str, dict[str, Any]] = {}
    for key, value in as_dict(cv.get("global_metrics")).items():
        stat, _, metric = key.partition("_")
        if stat in ("mean", "std", "min", "max") and metric:
            stats.setdefault(metric, {})[stat] = value
    global_rows = [
        {
            "metric": METRIC_LABELS.get(metric, metric.replace("_", " ")),
            **{
                s: metric_text(metric, values.get(s)) if s in values else ""
                for s in ("mean", "min", "max")
            },
            "std": (pct(values["std"]) if metric in PERCENT_METRICS else dec(values["std"]))
            if "std" in values
            else "",
        }
        for metric, values in stats.items()
    ]
    folds = [as_dict(f) for f in as_list(cv.get("per_fold_metrics"))]
    columns = (
        [
            k
            for k in dict.fromkeys(k for f in folds for k in f)
            if k != "fold" and not isinstance(folds[0].get(k), Mapping | list)
        ]
        if folds
        else []
    )
    fold_rows = [
        [as_text(f.get("fold"))]
        + [metric_text(c, f.get(c)) if c != "support" else as_text(f.get(c)) for c in columns]
        for f in folds
    ]
    return {
        "reason": "",
        "n_folds": as_text(cv.get("n_folds")),
        "method": as_text(cv.get("method")),
        "note": as_text(cv.get("note")),
        "global_rows": global_rows,
        "columns": [METRIC_LABELS.get(c, c.replace("_", " ")) for c in columns],
        "folds": fold_rows,
    }


def _labels(report: Mapping[str, Any], names: ClassNames) -> dict[str, Any]:
    """The per-label table of a multilabel report (precision, recall, F1, TP, FP, FN)."""
    confusion = as_dict(report.get("confusion"))
    per_label = as_list(confusion.get("per_label"))
    ids = as_list(confusion.get("labels"))
    per_class = as_dict(report.get("per_class_accuracy"))
    keys = list(dict.fromkeys([*(str(i) for i in ids), *per_class]))
    if not keys:
        return {"reason": "The task did not produce per-label results."}
    counts = {str(i): as_dict(c) for i, c in zip(ids, per_label, strict=False)}
    rows = []
    for key in keys[:TABLE_ROWS]:
        entry, count = as_dict(per_class.get(key)), counts.get(key, {})
        rows.append(
            [(names.label(key), "")]
            + [
                (as_text(entry.get("support")), sort_value(entry.get("support"))),
                (pct(entry.get("precision")), sort_value(entry.get("precision"))),
                (
                    pct(entry.get("recall", entry.get("accuracy"))),
                    sort_value(entry.get("recall", entry.get("accuracy"))),
                ),
                (pct(entry.get("f1")), sort_value(entry.get("f1"))),
            ]
            + [(as_text(count.get(k)), sort_value(count.get(k))) for k in ("tp", "fp", "fn")]
        )
    return {
        "reason": "",
        "columns": ["Label", "Support", "Precision", "Recall", "F1", "TP", "FP", "FN"],
        "rows": rows,
        "left_out": max(len(keys) - TABLE_ROWS, 0),
    }


def build_context(report: Mapping[str, Any], embedder: ImageEmbedder) -> dict[str, Any]:
    """Every value the template shows, computed from ``report`` (images through ``embedder``)."""
    names = ClassNames(report)
    task = as_text(as_dict(report.get("analysis_scope")).get("task"))
    multilabel = task == "multilabel"
    toc = [
        ("summary", "Summary"),
        ("findings", "Findings"),
        ("recommendations", "Recommendations"),
        ("classes", "Per-class results"),
        ("confusion", "Confusion matrix"),
        ("calibration", "Calibration"),
        ("distribution", "Distributions"),
        ("errors", "Confident errors"),
        ("xai", "Saliency (XAI)"),
        ("data-quality", "Data quality"),
        ("cv", "Cross-validation"),
    ]
    if multilabel:
        toc.append(("labels", "Per-label results"))
    context = {
        "task": task,
        "toc": toc,
        "header": _header(report, names),
        "findings": _findings(report, names),
        "classes": _class_table(report, names),
        "confusion": _confusion(report, names),
        "calibration": _calibration(report),
        "distribution": _distribution(report, names),
        "errors": _errors(report, names, embedder),
        "xai": _xai(report, names, embedder),
        "dq": _data_quality(report, names, embedder),
        "cv": _cv(report),
        "labels": _labels(report, names) if multilabel else None,
        "version": as_text(as_dict(report.get("provenance")).get("version")),
        "schema_version": as_text(report.get("schema_version")),
    }
    model = as_text(as_dict(as_dict(report.get("provenance")).get("model")).get("path"))
    context["title"] = f"BNNR analysis: {Path(model).name}" if model else "BNNR analysis report"
    context["images"] = {
        "embedded": embedder.embedded,
        "bytes": embedder.embedded_bytes,
        "missing": embedder.missing,
        "left_out": embedder.left_out,
    }
    return context
