"""The multi-label sections."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
import numpy as np

from bnnr_core.analysis import saliency as sal
from bnnr_core.analysis.xai.maps import _margins, _num
from bnnr_core.analysis.xai.options import MULTILABEL_FOLDER, MULTILABEL_NOTE, empty_sections
from bnnr_core.analysis.xai.probe import MultilabelProbe, _multi_hot
from bnnr_core.analysis.xai.sections import _Sections


@attrs.define(kw_only=True)
class _MultilabelContext(_Sections):
    """The multi-label sections: per-label quality from the label-stratified probe, and every
    explained wrong label of the highest-loss images."""

    noun: ClassVar[str] = "label"
    nouns: ClassVar[str] = "labels"
    score_text: ClassVar[str] = "sigmoid probability of the explained label"
    explained: ClassVar[str] = "predicted-present label"
    overlays_hint: ClassVar[str] = (
        f"the label's overlays in artifacts/{MULTILABEL_FOLDER} (high-loss images)"
    )

    probe: MultilabelProbe
    loss: np.ndarray = attrs.field(init=False)
    probabilities: np.ndarray = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.targets = _multi_hot(self.evaluation.targets)
        self.predictions = _multi_hot(self.evaluation.predictions)
        self.loss = np.asarray(self.evaluation.per_sample_loss, dtype=np.float64).reshape(-1)
        self.probabilities = np.asarray(self.evaluation.probabilities, dtype=np.float64)

    @property
    def labels(self) -> int:
        return int(self.probabilities.shape[1])

    def positions(self, keys: np.ndarray) -> np.ndarray:
        """Positions of the finished maps of ``(row, label)`` keys, in order."""
        found = [self.store.position(int(row), int(label)) for row, label in keys]
        return np.array([p for p in found if p is not None], dtype=np.int64)

    def quality_groups(self) -> dict[int, np.ndarray]:
        stratified = self.probe.stratified
        groups = {}
        for label in range(self.labels):
            positions = self.positions(stratified[stratified[:, 1] == label])
            if positions.size:
                groups[label] = positions
        return groups

    def quality_positions(self) -> np.ndarray:
        return self.positions(self.probe.stratified)

    def insight(self, cls: int, summary: Mapping[str, Any]) -> str:
        return sal.class_insight(self.label(cls), self.method, summary, multilabel=True)

    def names(self, mask: np.ndarray) -> list[int]:
        return [int(label) for label in np.flatnonzero(mask)]

    # -- sections -------------------------------------------------------------------------

    def build(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        summaries = self.class_summaries()
        sections = empty_sections()
        sections.update(self.quality_sections(summaries))
        examples = self.error_examples()
        sections["xai_examples_per_class"] = {"multilabel_high_loss": examples}
        self.add_error_counts(sections, examples)
        summary = sections["xai_quality_summary"]
        sections["xai_quality_summary"] = {
            "multilabel_probe_count": len({entry["index"] for entry in examples}),
            "multilabel_xai_note": MULTILABEL_NOTE,
            **summary,
            "explained_errors": "every wrong label of the highest-loss images",
            "error_maps": self.error_summary(examples),
        }
        return sections, self.patterns(summaries, sections["xai_quality_summary"])

    def error_examples(self) -> list[dict[str, Any]]:
        """One entry per explained wrong label: the highest-loss image first, its most wrong
        label first."""
        entries = []
        for rank, row in enumerate(int(r) for r in self.probe.worst):
            stem = f"{MULTILABEL_FOLDER}/ml_{rank:04d}"
            image_path: str | None = None
            for label, false_positive in zip(
                self.probe.wrong[rank], self.probe.false_positive[rank], strict=True
            ):
                label = int(label)
                position = self.store.position(row, label)
                if position is None:
                    continue
                if image_path is None:
                    image_path = self.file(f"{stem}_image.png", ("image", row))
                probability = _num(self.probabilities[row, label])
                name = self.label(label)
                if false_positive:
                    error = "false_positive"
                    note = (
                        f"The map explains the logit of label {name}, predicted present "
                        f"(probability {probability:.3f}) but absent: the evidence the model "
                        "used for the wrong label."
                    )
                else:
                    error = "false_negative"
                    note = (
                        f"The map explains the logit of label {name}, present but not predicted "
                        f"(probability {probability:.3f}): the evidence for it the model sees. "
                        "The label's probability is low on this image, so deletion and insertion "
                        "have little to measure: read this map's faithfulness as informative only."
                    )
                entries.append(
                    {
                        "index": row,
                        "sample_id": self._sample_id(row),
                        "rank": rank,
                        "target_label": label,
                        "target_name": self.name(label),
                        "error": error,
                        "loss": _num(self.loss[row]) if row < self.loss.size else None,
                        "probability": probability,
                        "true_labels": self.names(self.targets[row]),
                        "pred_labels": self.names(self.predictions[row]),
                        "explained": "label_logit",
                        "explained_class": label,
                        "overlay_path": self.file(
                            f"{stem}_label_{label}.png", ("overlay", row, label)
                        ),
                        "image_path": image_path,
                        "description": "Attention: "
                        + sal.describe_attention(self.map_stats(position)),
                        **self.faithfulness(position),
                        "note": note,
                    }
                )
        return entries

    def error_summary(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Faithfulness of the explained wrong labels, per error kind."""
        summary: dict[str, Any] = {"wrong_labels_left_out": int(self.probe.left_out)}
        for kind in ("false_positive", "false_negative"):
            keys = np.array(
                [(e["index"], e["target_label"]) for e in examples if e["error"] == kind],
                dtype=np.int64,
            ).reshape(-1, 2)
            positions = self.positions(keys)
            auc = self.auc[positions]
            deletion_margin, insertion_margin = _margins(self.store, positions)
            margins = auc[:, 2] - auc[:, 0]

            def mean(values: np.ndarray, count: int = positions.size) -> float | None:
                return _num(np.nanmean(values)) if count else None

            summary[kind] = {
                "maps": int(positions.size),
                "images": int(np.unique(keys[:, 0]).size),
                "mean_probability": mean(self.probabilities[keys[:, 0], keys[:, 1]]),
                "deletion_auc": mean(auc[:, 0]),
                "insertion_auc": mean(auc[:, 1]),
                "random_deletion_auc": mean(auc[:, 2]),
                "random_insertion_auc": mean(auc[:, 3]),
                "deletion_margin": _num(deletion_margin),
                "insertion_margin": _num(insertion_margin),
                "faithful_maps": int((margins >= sal.FAITHFUL_MARGIN).sum()),
            }
        return summary

    def add_error_counts(
        self, sections: dict[str, Any], examples: Sequence[Mapping[str, Any]]
    ) -> None:
        """Per label, the explained false positives and negatives: a sentence and a count in its
        diagnosis, and an insight of its own for a label without quality-probe maps (e.g. one
        that is never predicted present)."""
        insights, diagnoses = sections["xai_insights"], sections["xai_diagnoses"]
        for label in range(self.labels):
            mine = [e for e in examples if e["target_label"] == label]
            if not mine:
                continue
            key, name = str(label), self.label(label)
            positives = sum(e["error"] == "false_positive" for e in mine)
            negatives = len(mine) - positives
            images = self.probe.worst.size
            sentence = (
                f"Among the {images} highest-loss images explained, label {name} is a false "
                f"positive on {positives} and a false negative on {negatives} (maps in "
                "xai_examples_per_class.multilabel_high_loss)."
            )
            if key in diagnoses:
                diagnosis = diagnoses[key]
                diagnosis["text"] = f"{diagnosis['text']} {sentence}"
                diagnosis["high_loss_errors"] = {
                    "false_positive": positives,
                    "false_negative": negatives,
                }
                diagnosis["evidence"].append(
                    f"high_loss_errors[{label}]=fp {positives}, fn {negatives}"
                )
                continue
            positions = self.positions(
                np.array([(e["index"], label) for e in mine], dtype=np.int64)
            )
            auc = self.auc[positions]
            predicted = int(self.predictions[:, label].sum())
            why = (
                "it is not predicted present on any image"
                if not predicted
                else f"none of the {predicted} images where it is predicted present was sampled"
            )
            text = f"Label {name} has no quality-probe maps: {why}. {sentence}"
            if positions.size:
                text += (
                    f" Their mean deletion AUC is {np.nanmean(auc[:, 0]):.3f} vs "
                    f"{np.nanmean(auc[:, 2]):.3f} for random maps, insertion AUC "
                    f"{np.nanmean(auc[:, 1]):.3f} vs {np.nanmean(auc[:, 3]):.3f}."
                )
            insights[key] = text
