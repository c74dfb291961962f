"""Sections, patterns and overlays shared by the single-label and multi-label paths."""

from __future__ import annotations

import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import numpy as np

from bnnr_core.analysis import saliency as sal
from bnnr_core.analysis.findings import LITERATURE_PREFIX
from bnnr_core.analysis.xai.maps import _MapStore, _margins, _num
from bnnr_core.analysis.xai.options import (
    CONFIDENCE_MAPS,
    MIN_PATTERN_MAPS,
    RENDER_WORKERS,
    XaiOptions,
)

if TYPE_CHECKING:
    from bnnr_core.analysis.data import InputSpec
    from bnnr_core.analysis.evaluation import Evaluation


@attrs.define(kw_only=True)
class _Sections:
    """What the single-label and multi-label sections share: the per-class (per-label) quality
    of the quality probe, the patterns and the overlay files. A subclass says which maps form
    each class's quality probe (:meth:`quality_groups`) and builds the sections."""

    #: The thing a quality group is about, in prose ("class" or "label"), and its plural.
    noun: ClassVar[str] = "class"
    nouns: ClassVar[str] = "classes"
    #: What the faithfulness test scores (``xai_quality_summary.faithfulness.score``).
    score_text: ClassVar[str] = "softmax probability of the explained class"
    #: What a quality-probe map explains (``xai_quality_summary.explained``).
    explained: ClassVar[str] = "predicted"
    #: Where the user finds a class's overlays (pattern recommendations).
    overlays_hint: ClassVar[str] = "the class overlays in artifacts/class_examples"

    evaluation: Evaluation
    store: _MapStore
    method: str
    spec: InputSpec
    options: XaiOptions
    artifacts_dir: Path | None
    #: Relative path -> content key of every file to write.
    jobs: dict[str, tuple[Any, ...]] = attrs.field(factory=dict)
    targets: np.ndarray = attrs.field(init=False)
    predictions: np.ndarray = attrs.field(init=False)
    #: ``(K, 4)`` deletion, insertion, random deletion, random insertion AUC of every key.
    auc: np.ndarray = attrs.field(init=False)
    area_share: float = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.auc = sal.curve_auc(self.store.curves)  # (K, 4)
        height, width = self.spec.size
        self.area_share = sal.border_area_share(int(height), int(width))

    # -- what a subclass defines ----------------------------------------------------------

    def build(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The report sections (the keys of :data:`SECTION_KEYS`) and the patterns."""
        raise NotImplementedError

    def quality_groups(self) -> dict[int, np.ndarray]:
        """Per class (label), the positions of its finished quality-probe maps (non-empty)."""
        raise NotImplementedError

    def quality_positions(self) -> np.ndarray:
        """Positions of every finished quality-probe map."""
        raise NotImplementedError

    def confused_with(self, cls: int) -> list[dict[str, Any]]:
        """Up to three classes ``cls`` is most confused with (``[]`` when not defined)."""
        return []

    def insight(self, cls: int, summary: Mapping[str, Any]) -> str:
        """The ``xai_insights`` paragraph of a class."""
        return sal.class_insight(self.label(cls), self.method, summary)

    # -- helpers --------------------------------------------------------------------------

    def name(self, cls: int) -> str:
        return self.evaluation.class_name(cls)

    def label(self, cls: int) -> str:
        """The class's name for prose, with its id when they differ: ``cat (id 3)``."""
        name = self.name(cls)
        return name if name == str(cls) else f"{name} (id {cls})"

    def file(self, relative: str, content: tuple[Any, ...]) -> str:
        """Register a file to write; its report path (``""`` without an artifacts folder)."""
        if self.artifacts_dir is None:
            return ""
        self.jobs[relative] = content
        return f"{self.artifacts_dir.name}/{relative}"

    def faithfulness(self, position: int) -> dict[str, Any]:
        values = dict(
            zip(sal.FAITHFULNESS_KEYS, (_num(v) for v in self.auc[position]), strict=True)
        )
        margin = self.auc[position, 2] - self.auc[position, 0]
        values["faithful"] = bool(math.isfinite(margin) and margin >= sal.FAITHFUL_MARGIN)
        return values

    def map_stats(self, position: int) -> dict[str, float | None]:
        return {key: _num(self.store.stats[key][position]) for key in sal.STAT_KEYS}

    def mean_stats(self, positions: np.ndarray) -> dict[str, float | None]:
        if not positions.size:
            return {}
        return {key: _num(np.nanmean(self.store.stats[key][positions])) for key in sal.STAT_KEYS}

    def _sample_id(self, row: int) -> str:
        ids = self.evaluation.sample_ids
        return ids[row] if row < len(ids) else str(row)

    # -- sections -------------------------------------------------------------------------

    def class_summaries(self) -> dict[int, dict[str, Any]]:
        """Per class (label): the numbers of its quality-probe maps (:meth:`quality_groups`)."""
        summaries = {}
        for cls, positions in self.quality_groups().items():
            auc = self.auc[positions]
            deletion_margin, insertion_margin = _margins(self.store, positions)
            stats = self.mean_stats(positions)
            gini = stats.get("gini") or 0.0
            margins = auc[:, 2] - auc[:, 0]
            faithful = bool(
                math.isfinite(deletion_margin) and deletion_margin >= sal.FAITHFUL_MARGIN
            )
            quality = sal.quality_score(deletion_margin, insertion_margin, gini)
            summaries[cls] = {
                "sample_count": int(positions.size),
                "deletion_auc": float(np.nanmean(auc[:, 0])),
                "insertion_auc": float(np.nanmean(auc[:, 1])),
                "random_deletion_auc": float(np.nanmean(auc[:, 2])),
                "random_insertion_auc": float(np.nanmean(auc[:, 3])),
                "deletion_margin": deletion_margin,
                "insertion_margin": insertion_margin,
                "faithful_maps": int((margins >= sal.FAITHFUL_MARGIN).sum()),
                "faithful": faithful,
                "quality": quality,
                "stats": stats,
                "border_area_share": self.area_share,
                "background_focus": bool(
                    faithful and (stats.get("border_ratio") or 0.0) >= sal.BORDER_RATIO_THRESHOLD
                ),
            }
        return summaries

    def quality_sections(self, summaries: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
        insights: dict[str, str] = {}
        diagnoses: dict[str, Any] = {}
        per_class: dict[str, Any] = {}
        for cls, summary in summaries.items():
            key, name = str(cls), self.name(cls)
            stats = summary["stats"]
            components = {
                "faithfulness": sal.faithfulness_component(
                    summary["deletion_margin"], summary["insertion_margin"]
                ),
                "focus": _num(stats.get("gini") or 0.0),
                "deletion_margin": _num(summary["deletion_margin"]),
                "insertion_margin": _num(summary["insertion_margin"]),
                "deletion_auc": _num(summary["deletion_auc"]),
                "random_deletion_auc": _num(summary["random_deletion_auc"]),
                "insertion_auc": _num(summary["insertion_auc"]),
                "random_insertion_auc": _num(summary["random_insertion_auc"]),
                "faithful_share": summary["faithful_maps"] / summary["sample_count"],
                "entropy": stats.get("entropy"),
                "coverage": stats.get("coverage"),
                "edge_ratio": stats.get("edge_ratio"),
                "border_ratio": stats.get("border_ratio"),
            }
            severity = sal.class_severity(summary)
            confused = self.confused_with(cls)
            flags = [] if severity == "ok" else [f"severity:{severity}"]
            flags += ["unfaithful"] if not summary["faithful"] else []
            flags += ["low_quality"] if summary["quality"] < sal.LOW_QUALITY else []
            flags += ["background_focus"] if summary["background_focus"] else []
            flags += ["confused_with"] if confused else []
            insight = self.insight(cls, summary)
            confusion_text = ", ".join(f"{c['class_name']} ({c['count']}x)" for c in confused)
            text = insight
            if confusion_text:
                text += f" Most confused with: {confusion_text}."
            suggestion = sal.class_suggestion(summary)
            if suggestion:
                text += f" {suggestion}"
            verdict = "faithful" if summary["faithful"] else "not faithful"
            where = sal.describe_attention(stats).split(" (")[0]
            short = f"{name}: {verdict}, {where}, quality {summary['quality']:.2f}"
            if confused:
                short += f" — confused with {confused[0]['class_name']} ({confused[0]['count']}x)"
            insights[key] = insight
            diagnoses[key] = {
                "class_name": name,
                "text": text,
                "severity": severity,
                "quality_score": summary["quality"],
                "quality_breakdown": components,
                "confused_with": confused,
                "trend": "new",
                "short_text": short,
                "augmentation_impact": "",
                "baseline_delta": {},
                "evidence": self.class_evidence(cls, summary),
            }
            per_class[key] = {
                "class_id": key,
                "class_name": name,
                "mean_quality": summary["quality"],
                "sample_count": summary["sample_count"],
                "flags": flags,
                "components": components,
            }
        return {
            "xai_insights": insights,
            "xai_diagnoses": diagnoses,
            "xai_quality_per_class": per_class,
            "xai_quality_summary": self.quality_summary(summaries),
        }

    def class_evidence(self, cls: int, summary: Mapping[str, Any]) -> list[str]:
        stats = summary["stats"]
        return [
            f"deletion_auc[{cls}]={summary['deletion_auc']:.3f} "
            f"(random {summary['random_deletion_auc']:.3f})",
            f"insertion_auc[{cls}]={summary['insertion_auc']:.3f} "
            f"(random {summary['random_insertion_auc']:.3f})",
            f"faithful_maps[{cls}]={summary['faithful_maps']}/{summary['sample_count']}",
            f"quality[{cls}]={summary['quality']:.3f}",
            f"gini[{cls}]={(stats.get('gini') or 0.0):.3f}",
            f"border_ratio[{cls}]={(stats.get('border_ratio') or 0.0):.2f} "
            f"(strip area share {self.area_share:.2f})",
        ]

    def quality_summary(self, summaries: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
        positions = self.quality_positions()
        auc = self.auc[positions]
        curves = self.store.curves[positions]
        deletion_margin, insertion_margin = _margins(self.store, positions)
        qualities = [s["quality"] for s in summaries.values()]
        steps = self.options.faithfulness_steps
        margins = auc[:, 2] - auc[:, 0]

        def mean_curve(index: int) -> list[float | None]:
            return [_num(v) for v in np.nanmean(curves[:, index], axis=0)] if positions.size else []

        return {
            "mean_quality_score": _num(np.mean(qualities)) if qualities else None,
            "total_samples": int(positions.size),
            "method": self.method,
            "explained": self.explained,
            "classes_scored": len(summaries),
            "images_explained": int(np.unique(self.store.keys[self.store.done][:, 0]).size),
            "maps_computed": int(self.store.done.sum()),
            "quality_formula": (
                "faithfulness * (0.5 + 0.5 * focus); faithfulness = clip((deletion_margin + "
                f"insertion_margin) / {2 * sal.FAITHFULNESS_SCALE:g}, 0, 1); focus = mean Gini"
            ),
            "low_quality_threshold": sal.LOW_QUALITY,
            "low_quality_classes": [
                str(c) for c, s in summaries.items() if s["quality"] < sal.LOW_QUALITY
            ],
            "unfaithful_classes": [str(c) for c, s in summaries.items() if not s["faithful"]],
            "background_focus_classes": [
                str(c) for c, s in summaries.items() if s["background_focus"]
            ],
            "border_strip": {
                "fraction": sal.BORDER_FRACTION,
                "area_share": self.area_share,
                "ratio_threshold": sal.BORDER_RATIO_THRESHOLD,
            },
            "faithfulness": {
                "test": "deletion and insertion of pixels in map order vs a seeded random order",
                "steps": steps,
                "replacement": "per-channel mean of the image",
                "score": self.score_text,
                "margin": sal.FAITHFUL_MARGIN,
                "deletion_auc": _num(np.nanmean(auc[:, 0])) if positions.size else None,
                "insertion_auc": _num(np.nanmean(auc[:, 1])) if positions.size else None,
                "random_deletion_auc": _num(np.nanmean(auc[:, 2])) if positions.size else None,
                "random_insertion_auc": _num(np.nanmean(auc[:, 3])) if positions.size else None,
                "deletion_margin": _num(deletion_margin),
                "insertion_margin": _num(insertion_margin),
                "faithful_maps": int((margins >= sal.FAITHFUL_MARGIN).sum()),
                "faithful_share": _num(np.mean(margins >= sal.FAITHFUL_MARGIN))
                if positions.size
                else None,
                "faithful": bool(
                    math.isfinite(deletion_margin) and deletion_margin >= sal.FAITHFUL_MARGIN
                ),
                "mean_curves": {
                    "fractions": [k / steps for k in range(steps + 1)],
                    "deletion": mean_curve(0),
                    "insertion": mean_curve(1),
                    "random_deletion": mean_curve(2),
                    "random_insertion": mean_curve(3),
                },
            },
        }

    # -- patterns -------------------------------------------------------------------------

    def patterns(
        self, summaries: Mapping[int, Mapping[str, Any]], overall: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        patterns: list[dict[str, Any]] = []
        eligible = {c: s for c, s in summaries.items() if s["sample_count"] >= MIN_PATTERN_MAPS}
        legacy = {
            c: {"type": "low_xai_quality", "class": str(c), "quality_score": s["quality"]}
            for c, s in eligible.items()
            if s["quality"] < sal.LOW_QUALITY
        }
        faithfulness = overall["faithfulness"]
        total = int(overall["total_samples"])
        if total >= MIN_PATTERN_MAPS and not faithfulness["faithful"]:
            patterns.append(
                self.unfaithful_pattern(None, faithfulness, total, list(legacy.values()))
            )
            legacy = {}
        else:
            for cls, summary in eligible.items():
                if not summary["faithful"]:
                    patterns.append(
                        self.unfaithful_pattern(
                            cls,
                            summary,
                            summary["sample_count"],
                            [legacy.pop(cls)] if cls in legacy else [],
                        )
                    )
        for cls, summary in eligible.items():
            if summary["faithful"] and summary["quality"] < sal.LOW_QUALITY:
                patterns.append(self.low_quality_pattern(cls, summary, legacy.pop(cls, None)))
        for cls, summary in eligible.items():
            if summary["background_focus"]:
                patterns.append(self.background_pattern(cls, summary))
        return patterns

    def _common(self, cls: int | None, count: int) -> dict[str, Any]:
        high, medium = CONFIDENCE_MAPS
        return {
            "count": count,
            "class_a": "" if cls is None else str(cls),
            "class_b": "",
            "section": "xai",
            "confidence": "high" if count >= high else "medium" if count >= medium else "low",
        }

    def unfaithful_pattern(
        self,
        cls: int | None,
        numbers: Mapping[str, Any],
        count: int,
        legacy: list[dict[str, Any]],
    ) -> dict[str, Any]:
        deletion = float(numbers["deletion_auc"] or 0.0)
        random_deletion = float(numbers["random_deletion_auc"] or 0.0)
        margin = float(numbers["deletion_margin"] or 0.0)
        who = f"all {self.nouns}" if cls is None else f"{self.noun} {self.label(cls)}"
        pattern = {
            **self._common(cls, count),
            "pattern_type": "unfaithful_saliency",
            "title": "Saliency maps no better than random",
            "description": (
                f"The {self.method} maps for {who} do not beat random maps: deleting their most "
                f"salient pixels first gives deletion AUC {deletion:.3f} vs {random_deletion:.3f} "
                f"for random maps (margin {margin:.3f} < {sal.FAITHFUL_MARGIN})."
            ),
            "severity": "medium",
            "evidence": [
                f"deletion_auc={deletion:.3f}",
                f"random_deletion_auc={random_deletion:.3f}",
                f"deletion_margin={margin:.3f}",
                f"maps={count}",
            ],
            "metadata": {
                "method": self.method,
                "faithful_margin": sal.FAITHFUL_MARGIN,
                "deletion_auc": _num(deletion),
                "random_deletion_auc": _num(random_deletion),
                "deletion_margin": _num(margin),
                "faithfulness_steps": self.options.faithfulness_steps,
            },
            "interpretation": (
                "The maps do not identify the pixels the prediction depends on any better than "
                "chance, so they cannot be trusted as an explanation of where the model looks, "
                "however plausible they appear."
            ),
            "recommended_action": (
                "Do not draw conclusions from these maps; re-run with another --xai-method or "
                "--xai-layer and use only maps whose deletion curve beats random."
            ),
            "recommendation": {
                "title": "Do not trust these saliency maps",
                "action": (
                    "Re-run analyze with another saliency method (--xai-method) or target layer "
                    "(--xai-layer); keep only maps that beat random maps on the deletion test."
                ),
                "priority": 4,
                "expected_impact": LITERATURE_PREFIX
                + "saliency maps can be insensitive to the model (Adebayo et al., 2018); a "
                "deletion test against random maps separates faithful maps from such ones.",
                "literature_note": (
                    "Adebayo et al., Sanity Checks for Saliency Maps, NeurIPS 2018; Petsiuk "
                    "et al., RISE, BMVC 2018"
                ),
            },
        }
        if legacy:
            pattern["legacy"] = legacy
        return pattern

    def low_quality_pattern(
        self, cls: int, summary: Mapping[str, Any], legacy: dict[str, Any] | None
    ) -> dict[str, Any]:
        quality = summary["quality"]
        pattern = {
            **self._common(cls, summary["sample_count"]),
            "pattern_type": "low_xai_quality",
            "title": "Weak saliency evidence",
            "description": (
                f"The {self.method} maps for {self.noun} {self.label(cls)} score {quality:.3f} "
                f"in quality (below {sal.LOW_QUALITY}): they beat random maps only slightly or "
                "are diffuse."
            ),
            "severity": "low",
            "evidence": [
                f"quality[{cls}]={quality:.3f}",
                f"deletion_margin[{cls}]={summary['deletion_margin']:.3f}",
                f"insertion_margin[{cls}]={summary['insertion_margin']:.3f}",
                f"gini[{cls}]={(summary['stats'].get('gini') or 0.0):.3f}",
            ],
            "metadata": {
                "method": self.method,
                "quality_score": _num(quality),
                "low_quality_threshold": sal.LOW_QUALITY,
                "deletion_margin": _num(summary["deletion_margin"]),
                "insertion_margin": _num(summary["insertion_margin"]),
            },
            "interpretation": (
                f"The model's evidence for this {self.noun} is spread out or only weakly "
                "localised: its decisions may rest on diffuse texture or context rather than on "
                "the object."
            ),
            "recommended_action": (
                f"Look at this {self.noun}'s overlays and compare with another --xai-method "
                "before drawing conclusions."
            ),
        }
        if legacy:
            pattern["legacy"] = legacy
        return pattern

    def background_pattern(self, cls: int, summary: Mapping[str, Any]) -> dict[str, Any]:
        stats = summary["stats"]
        ratio = float(stats.get("border_ratio") or 0.0)
        edge = float(stats.get("edge_ratio") or 0.0)
        return {
            **self._common(cls, summary["sample_count"]),
            "pattern_type": "background_focus_suspected",
            "title": "Background focus suspected",
            "description": (
                f"Faithful {self.method} maps for {self.noun} {self.label(cls)} put "
                f"{edge:.0%} of their saliency in the border strip, {ratio:.1f}x its "
                f"{self.area_share:.0%} share of the image."
            ),
            "severity": "medium",
            "evidence": [
                f"edge_ratio[{cls}]={edge:.3f}",
                f"border_ratio[{cls}]={ratio:.2f}",
                f"border_area_share={self.area_share:.3f}",
                f"maps={summary['sample_count']}",
            ],
            "metadata": {
                "method": self.method,
                "border_fraction": sal.BORDER_FRACTION,
                "border_area_share": self.area_share,
                "border_ratio": ratio,
                "border_ratio_threshold": sal.BORDER_RATIO_THRESHOLD,
            },
            "interpretation": (
                f"The model relies disproportionately on the image border for this {self.noun}, "
                "which often means a shortcut (background, frame, watermark) rather than the "
                "object."
            ),
            "recommended_action": (
                f"Inspect this {self.noun}'s overlays; if the border carries a {self.noun} cue, "
                "remove it from the data or add random-crop/padding augmentation."
            ),
            "recommendation": {
                "title": "Check for background shortcuts",
                "action": (
                    f"Inspect {self.overlays_hint}; remove border or background cues from the "
                    "data, or train with random-crop/padding augmentation, then re-run analyze."
                ),
                "priority": 3,
                "expected_impact": LITERATURE_PREFIX
                + "models often learn shortcuts such as backgrounds instead of the intended "
                "object (Geirhos et al., 2020).",
                "literature_note": "Geirhos et al., Shortcut Learning in Deep Neural Networks, "
                "Nature Machine Intelligence 2020",
            },
        }

    # -- files ----------------------------------------------------------------------------

    def render(self, content: tuple[Any, ...]) -> bytes:
        kind = content[0]
        if kind == "image":
            return sal.png_bytes(self.store.images[content[1]])
        if kind == "overlay":
            _, row, cls = content
            return sal.png_bytes(sal.overlay(self.store.images[row], self.store.maps[(row, cls)]))
        _, rows, cls = content
        images = np.stack([self.store.images[r] for r in rows])
        maps = np.stack([self.store.maps[(r, cls)] for r in rows])
        return sal.png_bytes(sal.mean_overlay(images, maps))

    def write(self) -> list[Path]:
        """Encode every distinct overlay once and write all files, in parallel."""
        root = self.artifacts_dir
        if root is None or not self.jobs:
            return []
        contents = sorted(set(self.jobs.values()), key=repr)
        files = [(root / relative, content) for relative, content in sorted(self.jobs.items())]
        for folder in sorted({target.parent for target, _ in files}):
            folder.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=RENDER_WORKERS) as pool:
            encoded = dict(zip(contents, pool.map(self.render, contents), strict=True))
            list(pool.map(lambda item: item[0].write_bytes(encoded[item[1]]), files))
        return [target for target, _ in files]
