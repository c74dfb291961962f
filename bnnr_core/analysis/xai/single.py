"""The single-label sections."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from bnnr_core.analysis import saliency as sal
from bnnr_core.analysis.xai.maps import _margins, _num
from bnnr_core.analysis.xai.options import empty_sections
from bnnr_core.analysis.xai.probe import PairSelection, Probe, confusion_counts
from bnnr_core.analysis.xai.sections import _Sections


@attrs.define(kw_only=True)
class _Context(_Sections):
    """The single-label sections."""

    probe: Probe
    matrix: np.ndarray = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.targets = np.asarray(self.evaluation.targets, dtype=np.int64)
        self.predictions = np.asarray(self.evaluation.predictions, dtype=np.int64)
        self.matrix = confusion_counts(self.evaluation)

    def quality_groups(self) -> dict[int, np.ndarray]:
        stratified = self.probe.stratified
        groups = {}
        for cls in range(self.evaluation.num_classes):
            positions = self.probe_positions(stratified[self.targets[stratified] == cls])
            if positions.size:
                groups[cls] = positions
        return groups

    def quality_positions(self) -> np.ndarray:
        return self.probe_positions(self.probe.stratified)

    def confidence(self, row: int) -> float | None:
        return _num(self.evaluation.probabilities[row, self.predictions[row]])

    def example(self, row: int, stem: str) -> dict[str, Any] | None:
        """One gallery/worst-case entry for ``row`` (``None`` if its predicted map failed)."""
        predicted, true = int(self.predictions[row]), int(self.targets[row])
        position = self.store.position(row, predicted)
        if position is None:
            return None
        entry: dict[str, Any] = {
            "index": int(row),
            "sample_id": self._sample_id(row),
            "true_label": true,
            "true_name": self.name(true),
            "pred_label": predicted,
            "pred_name": self.name(predicted),
            "confidence": self.confidence(row),
            "explained": "predicted",
            "explained_class": predicted,
            "overlay_path": self.file(f"{stem}.png", ("overlay", row, predicted)),
            "image_path": self.file(f"{stem}_image.png", ("image", row)),
            "description": "Attention: " + sal.describe_attention(self.map_stats(position)),
            **self.faithfulness(position),
        }
        if predicted != true:
            true_position = self.store.position(row, true)
            entry["overlay_true_path"] = (
                self.file(f"{stem}_true.png", ("overlay", row, true))
                if true_position is not None
                else ""
            )
            entry["true_class_map"] = (
                {"explained": "true", "explained_class": true, **self.faithfulness(true_position)}
                if true_position is not None
                else {}
            )
        return entry

    def build(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        summaries = self.class_summaries()
        sections = empty_sections()
        sections.update(self.quality_sections(summaries))
        sections["xai_examples_per_class"] = self.worst_examples()
        sections["confusion_pair_xai"] = self.pair_sections()
        sections["best_worst_examples"] = self.gallery_sections()
        return sections, self.patterns(summaries, sections["xai_quality_summary"])

    def probe_positions(self, rows: np.ndarray) -> np.ndarray:
        """Positions of the finished predicted-class maps of ``rows``."""
        found = [self.store.position(int(r), int(self.predictions[r])) for r in rows]
        return np.array([p for p in found if p is not None], dtype=np.int64)

    def confused_with(self, cls: int) -> list[dict[str, Any]]:
        row = self.matrix[cls].copy()
        row[cls] = 0
        order = [j for j in np.lexsort((np.arange(row.size), -row)) if row[j] > 0][:3]
        return [
            {"class": str(j), "class_name": self.name(int(j)), "count": int(row[j])} for j in order
        ]

    def worst_examples(self) -> dict[str, list[dict[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = {}
        for rank, row in enumerate(self.probe.worst):
            entry = self.example(int(row), f"xai_examples/err_{rank:04d}")
            if entry is not None:
                grouped.setdefault(str(self.targets[row]), []).append(entry)
        return grouped

    def pair_sections(self) -> list[dict[str, Any]]:
        sections = []
        for pair in self.probe.pairs:
            folder = f"confusion_pairs/{pair.a}_to_{pair.b}"
            overlays = []
            for i, row in enumerate(pair.confused):
                entry = self.example(int(row), f"{folder}/confused_{i}")
                if entry is not None:
                    overlays.append({**entry, "type": "confused"})
            confused = self.probe_positions(pair.confused)
            confused_true = np.array(
                [
                    p
                    for r in pair.confused
                    if (p := self.store.position(int(r), pair.a)) is not None
                ],
                dtype=np.int64,
            )
            correct = self.probe_positions(pair.correct)
            stats_correct = self.mean_stats(correct)
            stats_confused = self.mean_stats(confused)
            sections.append(
                {
                    "class_a": str(pair.a),
                    "class_b": str(pair.b),
                    "class_a_name": self.name(pair.a),
                    "class_b_name": self.name(pair.b),
                    "count": pair.count,
                    "sample_overlays": overlays,
                    "heuristic_description": self.pair_description(pair, correct, confused),
                    "mean_overlay_correct_a": self.mean_file(
                        f"{folder}/mean_correct_0.png", pair.correct, pair.a
                    ),
                    "mean_overlay_confused_ab": self.mean_file(
                        f"{folder}/mean_confused_0.png", pair.confused, pair.b
                    ),
                    "stats_correct": stats_correct,
                    "stats_confused": stats_confused,
                    "stats_confused_true": self.mean_stats(confused_true),
                    "correct_count": int(correct.size),
                    "confused_count": int(confused.size),
                    "explained": {
                        "correct": "true (= predicted) class a",
                        "confused": "predicted class b",
                        "confused_true": "true class a",
                    },
                }
            )
        return sections

    def mean_file(self, relative: str, rows: np.ndarray, cls: int) -> str:
        rows = np.array([r for r in rows if self.store.position(int(r), cls) is not None])
        if not rows.size:
            return ""
        return self.file(relative, ("mean", tuple(int(r) for r in rows), cls))

    def pair_description(
        self, pair: PairSelection, correct: np.ndarray, confused: np.ndarray
    ) -> str:
        a, b = self.label(pair.a), self.label(pair.b)
        if not confused.size:
            return ""
        stats_confused = self.mean_stats(confused)
        text = (
            f"On {confused.size} images of {a} predicted as {b}, the maps for {b} are "
            f"{sal.describe_attention(stats_confused)}"
        )
        if correct.size:
            stats_correct = self.mean_stats(correct)
            text = (
                f"When {a} is classified correctly ({correct.size} images), the maps are "
                f"{sal.describe_attention(stats_correct)}. {text}: "
                f"{sal.describe_shift(_floats(stats_correct), _floats(stats_confused))}."
            )
        else:
            text += f"; no correctly classified image of {a} to compare with."
        both = np.concatenate([correct, confused])
        deletion_margin, _ = _margins(self.store, both)
        if not (math.isfinite(deletion_margin) and deletion_margin >= sal.FAITHFUL_MARGIN):
            text += " These maps do not beat random maps on deletion: read them with care."
        return text

    def gallery_sections(self) -> dict[str, Any]:
        gallery = {}
        for cls, (best, worst) in self.probe.gallery.items():
            folder = f"class_examples/class_{cls}"
            best_entries = [self.example(int(r), f"{folder}/best_{k}") for k, r in enumerate(best)]
            worst_entries = [
                self.example(int(r), f"{folder}/worst_{k}") for k, r in enumerate(worst)
            ]
            gallery[str(cls)] = {
                "best": [e for e in best_entries if e is not None],
                "worst": [e for e in worst_entries if e is not None],
            }
        return gallery


def _floats(stats: Mapping[str, float | None]) -> dict[str, float]:
    return {key: float(value or 0.0) for key, value in stats.items()}
