"""The ``html`` exporter: content against the JSON, escaping, embedded images, size bounds,
reasons for sections that did not run, and byte-identical output through ``AnalysisReport``."""

from __future__ import annotations

import base64
import io
import json
import random
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from bnnr_export_html import HtmlExporter
from PIL import Image

from bnnr_core.analysis.output import write_report
from bnnr_core.analysis.report import AnalysisReport
from bnnr_core.errors import BnnrError
from bnnr_core.plugins import load_plugins

SECTION_IDS = [
    "summary",
    "findings",
    "recommendations",
    "classes",
    "confusion",
    "calibration",
    "distribution",
    "errors",
    "xai",
    "data-quality",
    "cv",
]
HOSTILE = [
    "<script>alert(1)</script>",
    '"onmouseover=alert(1) x="',
    "'><img src=x onerror=alert(1)>",
]
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

# -------------------------------------------------------------------------------------------
# A synthetic report with the shapes of docs/analyze.md (and BNNR 0.7's XAI/data quality)
# -------------------------------------------------------------------------------------------


def _matrix(n: int, seed: int, *, dense: bool) -> list[list[int]]:
    rng = random.Random(seed)
    matrix = [[0] * n for _ in range(n)]
    for i in range(n):
        matrix[i][i] = rng.randint(20, 40)
        for j in range(n):
            if j != i and (dense or rng.random() < 2 / n):
                matrix[i][j] = rng.randint(1, 6)
    return matrix


def make_report(
    n: int = 10, *, names: list[str] | None = None, seed: int = 0, dense: bool = False
) -> dict[str, Any]:
    """A classification report of ``n`` classes whose numbers are consistent with its matrix."""
    names = names or [f"class_{k}" for k in range(n)]
    matrix = _matrix(n, seed, dense=dense)
    support = [sum(row) for row in matrix]
    predicted = [sum(matrix[i][j] for i in range(n)) for j in range(n)]
    total = sum(support)
    accuracy = sum(matrix[k][k] for k in range(n)) / total
    recall = [matrix[k][k] / support[k] for k in range(n)]
    diagnostics = sorted(
        (
            {
                "class_id": str(k),
                "class_name": names[k],
                "accuracy": recall[k],
                "recall": recall[k],
                "precision": matrix[k][k] / predicted[k] if predicted[k] else None,
                "f1": recall[k],
                "support": support[k],
                "pred_count": predicted[k],
                "cohen_kappa": 0.5,
                "severity": "warning" if recall[k] < 0.8 else "ok",
            }
            for k in range(n)
        ),
        key=lambda d: (d["severity"] != "warning", d["recall"]),
    )
    for rank, entry in enumerate(diagnostics, start=1):
        entry["rank"] = rank
    bins = []
    for b in range(15):
        count = 0 if b < 5 else 3 * b
        bins.append(
            {
                "lower": b / 15,
                "upper": (b + 1) / 15,
                "count": count,
                "accuracy": None if not count else min(1.0, (b + 0.5) / 15 + 0.05),
                "mean_confidence": None if not count else (b + 0.5) / 15,
            }
        )
    return {
        "schema_version": "1.0.0",
        "metrics": {
            "accuracy": accuracy,
            "balanced_accuracy": sum(recall) / n,
            "f1_macro": 0.81234,
            "loss": 0.4321,
            "ece": 0.0456,
            "nonfinite_rows": 0,
        },
        "metrics_ci": {
            "confidence_level": 0.95,
            "method": "percentile_bootstrap",
            "n_resamples": 200,
            "seed": 0,
            "intervals": {
                "accuracy": {"low": accuracy - 0.02, "high": accuracy + 0.01},
                "f1_macro": None,
            },
        },
        "per_class_accuracy": {
            str(k): {"accuracy": recall[k], "support": support[k], "class_name": names[k]}
            for k in range(n)
        },
        "confusion": {
            "labels": list(range(n)),
            "class_names": names,
            "matrix": matrix,
            "excluded_nonfinite": 0,
        },
        "true_distribution": {str(k): support[k] for k in range(n)},
        "pred_distribution": {str(k): predicted[k] for k in range(n)},
        "distribution_summary": {
            "true_total": total,
            "pred_total": total,
            "over_predicted": [],
            "under_predicted": [
                {"class": "0", "class_name": names[0], "true": 10, "pred": 5, "ratio": 0.5}
            ],
            "possible_collapse": False,
            "collapse_class": None,
            "collapse_share": None,
            "rule": "a rule",
        },
        "class_diagnostics": diagnostics,
        "calibration_summary": {
            "ece": 0.0456,
            "mce": 0.1,
            "brier": 0.2,
            "n_bins": 15,
            "mean_confidence": 0.8,
            "accuracy": accuracy,
            "confidence_gap": 0.01,
            "direction": "calibrated",
            "n_samples": total,
            "bins": bins,
        },
        "cv_results": {},
        "confident_errors": [
            {
                "index": 7,
                "sample_id": "imgs/0/a.png",
                "true_label": 0,
                "true_name": names[0],
                "pred_label": 1,
                "pred_name": names[1],
                "confidence": 0.987,
                "loss": 4.5,
            }
        ],
        "failure_patterns": [],
        "failure_patterns_extended": [
            {
                "id": "pattern_0",
                "pattern_type": "confused_pair",
                "description": f"Class {names[0]} is predicted as {names[1]}.",
                "severity": "high",
                "detector": "confused_pair",
                "plugin": "failures",
            }
        ],
        "findings": [
            {
                "id": "finding_0",
                "title": "Frequent confusion pair",
                "finding_type": "confused_pair",
                "description": f"Class {names[0]} is predicted as {names[1]}.",
                "interpretation": f"{names[1]} absorbs samples of {names[0]}.",
                "evidence": ["confusions[0→1]=5"],
                "confidence": "high",
                "severity": "high",
                "class_ids": ["0", "1"],
                "class_names": [names[0], names[1]],
                "linked_pattern_ids": ["pattern_0"],
                "recommended_action": "Inspect the pair.",
                "section": "predictions",
            }
        ],
        "recommendations_structured": [
            {
                "id": "rec_0",
                "title": f"Reduce top class confusions: {names[0]}",
                "scope": names[0],
                "why": "Because.",
                "action": "Inspect the pair.",
                "expected_impact": "Literature context (not verified on this run): less.",
                "literature_note": "Northcutt et al.",
                "priority": 4,
                "confidence": "high",
                "linked_finding_ids": ["finding_0"],
                "evidence_from_run": ["confusions[0→1]=5"],
            }
        ],
        "recommendations": ["Reduce top class confusions."],
        "executive_summary": {
            "health_status": "warning",
            "health_score": 0.6543,
            "severity": "medium",
            "key_findings": ["Frequent confusion pair"],
            "top_actions": [f"Reduce top class confusions: {names[0]}"],
            "critical_classes": [],
            "critical_class_names": [],
            "score_breakdown": {
                "headline_metric": "balanced_accuracy",
                "performance": 0.9,
                "penalties": {
                    "predictions": {"ran": True, "penalty": 0.1, "cap": 0.5},
                    "xai": {"ran": False, "penalty": 0.1, "cap": 0.1},
                    "data_quality": {"ran": False, "penalty": 0.1, "cap": 0.1},
                },
            },
            "unchecked_sections": ["xai", "data_quality"],
        },
        "xai_insights": {},
        "xai_diagnoses": {},
        "xai_quality_summary": {},
        "xai_quality_per_class": {},
        "xai_examples_per_class": {},
        "confusion_pair_xai": [],
        "best_worst_examples": {},
        "data_quality": {},
        "data_quality_summary": {},
        "analysis_scope": {
            "task": "classification",
            "extended_analysis": True,
            "notes": [],
            "sections": {
                "metrics": {"status": "ok", "reason": ""},
                "failure_patterns": {"status": "ok", "reason": "9 detectors ran", "errors": []},
                "xai": {"status": "skipped", "reason": "no XAI method plugin is installed"},
                "data_quality": {"status": "disabled", "reason": "--no-data-quality was given"},
                "cv_results": {"status": "disabled", "reason": "--cv-folds was not given"},
            },
        },
        "provenance": {
            "tool": "bnnr",
            "version": "0.1.0",
            "started_at": "2026-01-01T00:00:00+00:00",
            "finished_at": "2026-01-01T00:00:01+00:00",
            "command_line": ["bnnr", "analyze"],
            "model": {"path": "/models/model.pt", "arch": "small_cnn", "num_classes": n},
            "data": {"source": "folder", "location": "/data", "split": "val"},
            "plugins": {"classification": "0.1.0"},
            "durations_s": {"inference": 0.5},
        },
    }


def _png(
    path: Path, size: tuple[int, int] = (64, 64), colour: tuple[int, int, int] = (200, 0, 0)
) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path.as_posix()


def add_xai_and_data_quality(report: dict[str, Any], root: Path) -> dict[str, Any]:
    """Fill the XAI and data-quality sections (BNNR 0.7 shapes) with images under ``root``."""
    _png(root / "artifacts/xai/worst_0.png", (512, 384))
    _png(root / "artifacts/xai/worst_0_image.png", colour=(90, 90, 90))
    _png(root / "artifacts/xai/worst_0_true.png", colour=(0, 90, 90))
    _png(root / "artifacts/pairs/0_to_1/mean_correct_0.png", colour=(0, 0, 200))
    _png(root / "artifacts/pairs/0_to_1/mean_confused_0.png", colour=(0, 200, 0))
    _png(root / "artifacts/pairs/0_to_1/confused_0.png")
    _png(root / "artifacts/class_examples/class_0/best_0.png")
    _png(root / "artifacts/dq/flagged/idx_3.png", (300, 300))
    _png(root / "artifacts/dq/dup/idx_5.png")
    report["xai_examples_per_class"] = {
        "0": [
            {
                "index": 3,
                "true_label": 0,
                "pred_label": 1,
                "confidence": 0.91,
                "overlay_path": "artifacts/xai/worst_0.png",
                "image_path": "artifacts/xai/worst_0_image.png",
                "overlay_true_path": "artifacts/xai/worst_0_true.png",
                "faithful": True,
                "deletion_auc": 0.123,
                "insertion_auc": 0.876,
                "random_deletion_auc": 0.5,
            },
            {"index": 4, "true_label": 0, "pred_label": 1, "overlay_path": "artifacts/gone.png"},
        ]
    }
    report["confusion_pair_xai"] = [
        {
            "class_a": "0",
            "class_b": "1",
            "count": 5,
            "sample_overlays": [
                {
                    "overlay_path": "artifacts/pairs/0_to_1/confused_0.png",
                    "true_label": 0,
                    "pred_label": 1,
                    "type": "confused",
                }
            ],
            "heuristic_description": "Attention shifts.",
            "mean_overlay_correct_a": "artifacts/pairs/0_to_1/mean_correct_0.png",
            "mean_overlay_confused_ab": "artifacts/pairs/0_to_1/mean_confused_0.png",
        }
    ]
    report["best_worst_examples"] = {
        "0": {
            "best": [
                {
                    "overlay_path": "artifacts/class_examples/class_0/best_0.png",
                    "true_label": 0,
                    "pred_label": 0,
                    "confidence": 0.99,
                    "description": "Attention: centered",
                }
            ],
            "worst": [],
        }
    }
    report["xai_quality_summary"] = {"mean_quality_score": 0.65, "total_samples": 40}
    report["xai_quality_per_class"] = {
        "0": {"class_id": "0", "mean_quality": 0.52, "sample_count": 10, "flags": ["x"]}
    }
    report["data_quality"] = {
        "scanned_samples": 124,
        "summary": "Found 3 issue(s) across 124 scanned images.",
        "warnings": [
            {
                "type": "critical_looking_type",
                "severity": "info",
                "count": 2,
                "indices": [3, 9],
                "sample_ids": ["eval:3", "eval:9"],
                "details": [{"given": "3", "suggested": "9"}, {"given": "1", "suggested": "2"}],
                "message": "2 images are near black.",
                "image_paths": ["out/artifacts/dq/flagged/idx_3.png", "artifacts/dq/missing.png"],
            }
        ],
        "duplicate_groups": [
            {"indices": [5, 6], "size": 2, "thumbnail_paths": ["artifacts/dq/dup/idx_5.png"]}
        ],
    }
    sections = report["analysis_scope"]["sections"]
    sections["xai"] = {"status": "ok", "reason": "opticam"}
    sections["data_quality"] = {"status": "ok", "reason": ""}
    return report


# -------------------------------------------------------------------------------------------
# Helpers
# -------------------------------------------------------------------------------------------


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text of each ``<script>``."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def render(report: dict[str, Any], root: Path | None, out: Path) -> str:
    [path] = HtmlExporter().export(report, out, artifact_root=root)
    assert path == out / "report.html"
    return path.read_text(encoding="utf-8")


def section(html: str, section_id: str) -> str:
    """The HTML of one ``<section id=...>`` (or the summary header)."""
    match = re.search(rf'<(section|header) id="{section_id}">(.*?)</\1>', html, flags=re.DOTALL)
    assert match, f"no section {section_id}"
    return match.group(2)


# -------------------------------------------------------------------------------------------
# Tests
# -------------------------------------------------------------------------------------------


def test_registration_imports_neither_jinja_pillow_numpy_nor_torch() -> None:
    code = (
        "import sys\n"
        "import bnnr_export_html\n"
        "from bnnr_core.plugins import load_plugins\n"
        "record = load_plugins(autoload=False).register(bnnr_export_html, 'html_exporter')\n"
        "assert record.status == 'ok' and record.provides == {'exporter': ('html',)}, record\n"
        "heavy = [m for m in ('jinja2', 'PIL', 'numpy', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert completed.returncode == 0, completed.stderr


def test_installed_exporter_is_found_with_its_file_name() -> None:
    component = load_plugins().component("exporter", "html")
    assert component.plugin == "html_exporter"
    assert component.metadata["files"] == ["report.html"]


def test_every_section_is_present_in_order_with_a_table_of_contents(tmp_path: Path) -> None:
    html = render(make_report(), None, tmp_path)
    positions = [html.index(f'id="{sid}"') for sid in SECTION_IDS]
    assert positions == sorted(positions)
    nav = re.search(r'<nav class="toc".*?</nav>', html, flags=re.DOTALL)
    assert nav is not None
    assert re.findall(r'href="#([^"]+)"', nav.group(0)) == SECTION_IDS
    assert 'id="labels"' not in html  # multilabel only
    assert html.count("<script>") == 1


def test_numbers_shown_match_the_json(tmp_path: Path) -> None:
    report = make_report()
    html = render(report, None, tmp_path)
    accuracy = report["metrics"]["accuracy"]
    interval = report["metrics_ci"]["intervals"]["accuracy"]
    kpi = re.search(r'id="metric-accuracy">(.*?)</div>', html, flags=re.DOTALL)
    assert kpi is not None
    assert f"{accuracy * 100:.1f}%" in kpi.group(1)
    assert f"95% CI {interval['low'] * 100:.1f}% – {interval['high'] * 100:.1f}%" in kpi.group(1)
    assert "Macro F1" in html and "81.2%" in html  # f1_macro has a null interval: no CI
    assert "score 65.4%" in section(html, "summary")
    # Every non-zero matrix cell is in the heatmap with its exact count.
    titles = re.findall(r"<title>(true [^<]*)</title>", section(html, "confusion"))
    matrix = report["confusion"]["matrix"]
    expected = set()
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            if count:
                verb = "correct" if i == j else f"predicted class_{j} ({j})"
                share = f"{count / sum(row):.1%}"
                expected.add(f"true class_{i} ({i}) → {verb}: {count} of {sum(row)} ({share})")
    assert set(titles) == expected
    # The per-class table has one row per class with its recall.
    table = section(html, "classes")
    for entry in report["class_diagnostics"]:
        assert f'data-v="{entry["recall"]!r}">{entry["recall"] * 100:.1f}%' in table
    assert table.count("<tr>") == len(report["class_diagnostics"]) + 1
    calibration = section(html, "calibration")
    assert "calibrated" in calibration and "0.046" in calibration
    assert calibration.count('class="rel-bar"') == 10  # the 10 bins with samples
    assert "imgs/0/a.png" in section(html, "errors") and "98.7%" in section(html, "errors")


def test_findings_and_recommendations_link_to_each_other(tmp_path: Path) -> None:
    html = render(make_report(), None, tmp_path)
    findings, recs = section(html, "findings"), section(html, "recommendations")
    assert '<article class="card" id="finding-finding_0">' in findings
    assert '<article class="card" id="rec-rec_0">' in recs
    assert 'href="#finding-finding_0"' in recs
    assert 'href="#rec-rec_0"' in findings
    assert "class_0 is predicted as class_1" in findings  # the linked pattern
    # The badge colour comes from the severity.
    assert '<span class="badge sev-high">high</span> Frequent confusion pair' in findings


def test_hostile_strings_are_escaped_everywhere(tmp_path: Path) -> None:
    names = [*HOSTILE, *(f"c{k}" for k in range(len(HOSTILE), 10))]
    report = make_report(names=names)
    report["findings"][0]["evidence"] = HOSTILE
    report["provenance"]["model"]["path"] = HOSTILE[1]
    report["confident_errors"][0]["sample_id"] = HOSTILE[2]
    report["analysis_scope"]["sections"]["xai"]["reason"] = HOSTILE[0]
    report["data_quality"] = {
        "warnings": [{"type": HOSTILE[0], "severity": HOSTILE[1], "image_paths": HOSTILE}]
    }
    report["findings"][0]["id"] = HOSTILE[1]
    html = render(report, tmp_path, tmp_path / "out")
    for hostile in HOSTILE:
        assert hostile not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;onmouseover=alert(1) x=&#34;" in html
    parsed = _parse(html)
    assert [tag for tag, _ in parsed.tags].count("script") == 1
    assert not any("alert" in script for script in parsed.scripts)
    for tag, attributes in parsed.tags:
        assert not any(name.startswith("on") for name in attributes), (tag, attributes)
        for name in ("src", "href"):
            value = attributes.get(name)
            assert value is None or value.startswith(("data:", "#")), (tag, attributes)
    assert "sev-unknown" in html  # a severity outside the vocabulary gets no class of its own


def test_csp_forbids_every_request_and_nothing_points_outside(tmp_path: Path) -> None:
    html = render(add_xai_and_data_quality(make_report(), tmp_path), tmp_path, tmp_path)
    head = html[: html.index("</head>")]
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}' in head
    assert head.index("Content-Security-Policy") < head.index("<style>")
    for tag, attributes in _parse(html).tags:
        for name in ("src", "href", "action", "srcset", "poster"):
            value = attributes.get(name)
            assert value is None or value.startswith(("data:", "#")), (tag, attributes)
        assert tag not in {"link", "iframe", "object", "embed", "base", "form"}
    assert "@import" not in html and "url(" not in html


def test_images_are_embedded_downscaled_from_the_artifact_root(tmp_path: Path) -> None:
    report = add_xai_and_data_quality(make_report(), tmp_path)
    html = render(report, tmp_path, tmp_path / "elsewhere")
    sources = [a["src"] for tag, a in _parse(html).tags if tag == "img"]
    assert sources and all(src and src.startswith("data:image/") for src in sources)
    sizes = []
    for src in sources:
        assert src is not None
        data = base64.b64decode(src.split(",", 1)[1])
        with Image.open(io.BytesIO(data)) as image:
            sizes.append(image.size)
    assert max(max(size) for size in sizes) <= 256
    assert (256, 192) in sizes  # the 512x384 overlay, downscaled with its aspect ratio
    xai = section(html, "xai")
    assert "deletion auc 0.123" in xai and "insertion auc 0.876" in xai
    assert "random deletion auc 0.500" in xai and "faithful yes" in xai
    worst = xai[xai.index("<h3>Worst errors</h3>") :]
    labels = re.findall(r'<span class="pic-label">([^<]*)</span>', worst)
    assert labels[:3] == ["image", "saliency", "saliency, true class"]
    assert "mean saliency, class_0 (0) classified correctly" in xai
    assert "mean saliency, class_0 (0) predicted as class_1 (1)" in xai
    # A BNNR 0.7 path relative to the working directory ("out/artifacts/...") is found too.
    dq = section(html, "data-quality")
    assert dq.count("<img ") == 2
    assert "<span>eval:3: labelled class_3 (3), model says class_9 (9)</span>" in dq
    assert "Samples: eval:3, eval:9" in dq
    # An info warning is styled as info, whatever its type says (BNNR 0.7's colour bug).
    assert '<span class="badge sev-info">info</span> critical_looking_type' in dq
    # The report says what it embedded.
    footer = html[html.index("<footer>") :]
    assert re.search(r"Images: \d+ embedded \([\d,]+ bytes\), 2 missing", footer)


def test_missing_or_outside_images_are_placeholders_never_links(tmp_path: Path) -> None:
    outside = tmp_path / "secret.png"
    _png(outside)
    root = tmp_path / "analysis"
    root.mkdir()
    report = make_report()
    report["xai_examples_per_class"] = {
        "0": [
            {"true_label": 0, "pred_label": 1, "overlay_path": "artifacts/gone.png"},
            {"true_label": 0, "pred_label": 1, "overlay_path": "../secret.png"},
            {"true_label": 0, "pred_label": 1, "overlay_path": str(outside)},
        ]
    }
    html = render(report, root, root)
    xai = section(html, "xai")
    assert "<img" not in xai
    assert xai.count(">missing image<small>") == 3
    assert "artifacts/gone.png (file not found)" in xai
    assert 'aria-label="missing image: wrong prediction: true class_0 (0), predicted' in xai


def test_many_classes_stay_bounded_and_readable(tmp_path: Path) -> None:
    for dense in (True, False):
        report = make_report(120, seed=3, dense=dense)
        out = tmp_path / ("dense" if dense else "sparse")
        html = render(report, None, out)
        size = (out / "report.html").stat().st_size
        assert size < 1_500_000, size
        confusion = section(html, "confusion")
        heatmap = confusion[: confusion.index('<details class="full-matrix">')]
        labels = set(re.findall(r"<title>true ([^<]*?) → ", heatmap))
        assert len(labels) == 20  # the 20 most-confused classes
        assert "Confusion matrix of the 20 most-confused of 120 classes" in heatmap
        full = confusion[confusion.index('<details class="full-matrix">') :]
        if dense:  # too many cells for SVG: one picture
            assert '<img class="matrix-png" src="data:image/png;base64,' in full
        else:
            assert "Full confusion matrix, 120 classes" in full
            assert len(set(re.findall(r"<title>true ([^<]*?) → ", full))) == 120
        assert section(html, "classes").count("<tr>") == 121
        distribution = section(html, "distribution")
        assert "30 of 120 classes" in distribution


def test_sections_that_did_not_run_say_why(tmp_path: Path) -> None:
    html = render(make_report(), None, tmp_path)
    assert "Not run (skipped): no XAI method plugin is installed." in section(html, "xai")
    assert "Not run (disabled): --no-data-quality was given." in section(html, "data-quality")
    assert "Not run (disabled): --cv-folds was not given." in section(html, "cv")
    summary = section(html, "summary")
    assert "Not checked in this analysis" in summary
    assert "saliency (XAI)</strong>: Not run (skipped)" in summary

    empty = make_report()
    for key in ("findings", "recommendations_structured", "confident_errors"):
        empty[key] = []
    empty["calibration_summary"] = {}
    empty["confusion"] = {}
    html = render(empty, None, tmp_path / "empty")
    assert "No failure pattern was detected" in section(html, "findings")
    assert "Reduce top class confusions." in section(html, "recommendations")  # legacy lines
    assert "did not produce a confusion matrix" in section(html, "confusion")
    assert "did not produce a calibration summary" in section(html, "calibration")
    assert "No confidently wrong prediction" in section(html, "errors")


def test_cross_validation_table(tmp_path: Path) -> None:
    report = make_report()
    report["cv_results"] = {
        "n_folds": 2,
        "method": "stratified_split_of_cached_predictions",
        "note": "No model is retrained.",
        "global_metrics": {
            "mean_accuracy": 0.9,
            "std_accuracy": 0.01,
            "min_accuracy": 0.89,
            "max_accuracy": 0.91,
            "mean_cohen_kappa": 0.8,
            "std_cohen_kappa": 0.02,
        },
        "per_fold_metrics": [
            {
                "fold": 0,
                "accuracy": 0.89,
                "cohen_kappa": 0.79,
                "support": 50,
                "per_class_recall": {"0": 1.0},
            },
            {
                "fold": 1,
                "accuracy": 0.91,
                "cohen_kappa": 0.81,
                "support": 50,
                "per_class_recall": {"0": 1.0},
            },
        ],
    }
    cv = section(render(report, None, tmp_path), "cv")
    assert "2 folds (stratified_split_of_cached_predictions). No model is retrained." in cv
    assert "<td>Accuracy</td><td>90.0%</td><td>1.0%</td><td>89.0%</td><td>91.0%</td>" in cv
    assert "<td>Cohen&#39;s kappa</td><td>0.800</td><td>0.020</td><td></td><td></td>" in cv
    assert "<tr><td>1</td><td>91.0%</td><td>0.810</td><td>50</td></tr>" in cv


def test_multilabel_report_has_a_per_label_table(tmp_path: Path) -> None:
    report = make_report(4)
    report["analysis_scope"]["task"] = "multilabel"
    report["confusion"] = {
        "type": "multilabel_per_label",
        "labels": [0, 1, 2, 3],
        "per_label": [{"tp": k, "fp": 2 * k, "fn": 3 * k} for k in range(4)],
        "n_samples": 48,
    }
    report["per_class_accuracy"] = {
        str(k): {"precision": 0.5, "recall": 0.25 * k, "f1": 0.1, "support": 10 + k}
        for k in range(4)
    }
    html = render(report, None, tmp_path)
    assert 'href="#labels"' in html
    labels = section(html, "labels")
    assert labels.count("<tr>") == 5
    assert '<td data-v="3.0">3</td><td data-v="6.0">6</td><td data-v="9.0">9</td>' in labels
    assert '<td data-v="0.75">75.0%</td>' in labels
    assert "see the per-label table" in section(html, "confusion")


def test_multilabel_errors_and_pooled_calibration_are_drawn(tmp_path: Path) -> None:
    report = make_report(4)
    report["analysis_scope"]["task"] = "multilabel"
    report["confident_errors"] = [
        {
            "index": 7,
            "sample_id": "img/7.png",
            "true_labels": [0, 2],
            "pred_labels": [2, 3],
            "wrong_labels": [0, 3],
            "loss": 0.9,
        }
    ]
    bins = [
        {
            "lower": b / 4,
            "upper": (b + 1) / 4,
            "count": 10,
            "mean_confidence": b / 4 + 0.1,
            "accuracy": b / 4,
        }
        for b in range(4)
    ]
    report["calibration_summary"] = {
        "type": "per_label",
        "n_bins": 4,
        "ece_mean": 0.05,
        "per_label": {},
        "bins_pooled": bins,
    }
    html = render(report, None, tmp_path)
    errors = section(html, "errors")
    names = report["confusion"]["class_names"]
    assert f"{names[0]} (0), {names[2]} (2)" in errors  # the true label set
    assert f"(wrong: {names[0]} (0), {names[3]} (3))" in errors
    calibration = section(html, "calibration")
    assert "<svg" in calibration and "pooled" in calibration
    assert "Mean per-label ECE" in calibration and "0.050" in calibration


def test_rendering_is_deterministic_and_the_footer_gives_the_exact_size(tmp_path: Path) -> None:
    report = add_xai_and_data_quality(make_report(), tmp_path)
    first = render(report, tmp_path, tmp_path / "a")
    second = render(json.loads(json.dumps(report)), tmp_path, tmp_path / "b")
    assert first == second
    size = (tmp_path / "a" / "report.html").stat().st_size
    assert f'<span id="report-size">{size:,} bytes' in first


def test_to_html_writes_the_exporters_bytes(tmp_path: Path) -> None:
    output = tmp_path / "analysis"
    report = add_xai_and_data_quality(make_report(), output)
    (output / "analysis_report.json").write_text(json.dumps(report), encoding="utf-8")
    [exported] = HtmlExporter().export(report, output)
    shared = tmp_path / "share" / "model-report.html"
    loaded = AnalysisReport.load(output / "analysis_report.json")
    assert loaded.document == report
    assert loaded.to_html(shared) == shared
    assert shared.read_bytes() == exported.read_bytes()
    # The folder works as well as the file; artifact_root can be given explicitly.
    again = AnalysisReport.load(output).to_html(tmp_path / "again.html", artifact_root=output)
    assert again.read_bytes() == exported.read_bytes()
    assert sorted(p.name for p in shared.parent.iterdir()) == ["model-report.html"]


def test_bnnr_analyze_output_gets_report_html(tmp_path: Path) -> None:
    written = write_report(make_report(), tmp_path / "out", host=load_plugins(), exporters=["html"])
    assert written == [tmp_path / "out" / "report.html"]
    assert written[0].read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_to_html_errors_are_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "analysis_report.json"
    path.write_text(json.dumps(make_report()), encoding="utf-8")
    with pytest.raises(BnnrError, match=r"^no HTML exporter is installed \(.*\)$"):
        AnalysisReport.load(path).to_html(tmp_path / "r.html", host=load_plugins(autoload=False))
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(BnnrError, match=r"^cannot read the analysis report: .* is not valid JSON"):
        AnalysisReport.load(path)
    with pytest.raises(BnnrError, match=r"does not exist$"):
        AnalysisReport.load(tmp_path / "nowhere.json")
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(BnnrError, match=r"does not hold a JSON object$"):
        AnalysisReport.load(path)
    assert not (tmp_path / "r.html").exists()


def test_galleries_are_capped_and_the_size_budget_holds(tmp_path: Path) -> None:
    from bnnr_export_html.images import ImageEmbedder

    report = make_report()
    _png(tmp_path / "artifacts/one.png")
    report["xai_examples_per_class"] = {
        "0": [{"true_label": 0, "pred_label": 1, "overlay_path": "artifacts/one.png"}] * 30
    }
    html = render(report, tmp_path, tmp_path / "out")
    xai = section(html, "xai")
    assert xai.count("<img ") == 20
    assert "10 more examples not shown (cap of the report)." in xai
    assert "10 left out by the report's caps" in html[html.index("<footer>") :]

    embedder = ImageEmbedder(tmp_path)
    first = embedder.embed("artifacts/one.png", "a")
    assert first.src is not None
    embedder.budget = embedder.embedded_bytes + len(first.src) - 1
    second = embedder.embed("artifacts/one.png", "b")
    assert second.src is None and second.problem == "left out: the report's size budget"
    assert (embedder.embedded, embedder.left_out, embedder.missing) == (1, 1, 0)
