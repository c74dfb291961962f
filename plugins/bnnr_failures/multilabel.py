"""The built-in failure detectors of multi-label classification.

Each detector reads the report sections of a ``multilabel`` evaluation (``metrics``,
``class_diagnostics``, ``confusion``, ``thresholds``, ``cooccurrence_errors``,
``distribution_summary``, ``calibration_summary``; keys in ``docs/analyze.md``) and returns pattern
dictionaries with the same keys as the single-label detectors. A detector returns ``[]`` for any
other task and when a section it needs is missing. Every threshold is a module constant,
recorded in the pattern's ``metadata`` and documented in ``docs/findings.md``. Numpy-free; no
other plugin is imported.
"""

from __future__ import annotations

import math
import statistics
from abc import abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from bnnr_core.analysis.findings import recommendation
from bnnr_failures.patterns import (
    MULTILABEL,
    Detector,
    Metadata,
    RecallDetector,
    Row,
    add_number,
    capitalize,
    class_label,
    collapse_summary,
    confidence_from_count,
    diagnostic_rows,
    integer,
    number,
    percent,
    recall_rows,
    section,
)
from bnnr_failures.patterns import class_name as label_name

#: A label needs at least this many positives before zero or near-zero recall is reported.
RECALL_MIN_SUPPORT = 5
#: Recall below this (and above 0) is "near zero".
NEAR_ZERO_RECALL = 0.2
#: Positives from which a recall finding has high confidence (medium below).
RECALL_HIGH_CONFIDENCE_SUPPORT = 20
#: AUROC from which a label's scores still rank its positives well (the threshold is the
#: problem), and up to which they barely do (the label is not learned).
RANKING_GOOD_AUROC = 0.75
RANKING_POOR_AUROC = 0.6

#: Macro F1 below this is critically low.
LOW_F1_MACRO = 0.35
#: Samples from which the macro-F1 finding has high (medium) confidence.
SAMPLES_HIGH_CONFIDENCE = 100
SAMPLES_MEDIUM_CONFIDENCE = 30

#: Threshold advice: the dominant error kind must be at least this many ...
BIAS_MIN_ERRORS = 5
#: ... and at least this multiple of the other kind (``fp >= 3·max(fn, 1)``).
BIAS_RATIO = 3
#: Dominant errors from which threshold advice has high confidence (medium below).
BIAS_HIGH_CONFIDENCE_ERRORS = 20

#: A label is rare when its positives are at most max(RARE_MIN_SUPPORT, RARE_POSITIVE_FRACTION
#: x all positives) (and above 0) ...
RARE_MIN_SUPPORT = 3
RARE_POSITIVE_FRACTION = 0.01
#: ... and it is reported when its recall is below the median recall. Medium confidence from
#: this many positives on (low below).
RARE_MEDIUM_CONFIDENCE_SUPPORT = 10

#: A co-occurrence pair is a shortcut from this lift ...
COOCCURRENCE_MIN_LIFT = 3.0
#: ... and this many co-occurring false positives ...
COOCCURRENCE_MIN_COUNT = 5
#: ... when chance is ruled out: the one-sided Fisher exact test of "b's false-positive rate is
#: higher with a than without a" gives a p-value below this, divided by the number of ordered
#: label pairs (Bonferroni).
COOCCURRENCE_ALPHA = 0.01
#: Count from which a shortcut has high confidence (medium below); at most this many patterns.
COOCCURRENCE_HIGH_CONFIDENCE_COUNT = 20
COOCCURRENCE_MAX_PATTERNS = 8

#: No prediction-imbalance finding below this many predicted positives; high confidence from
#: the second number on (medium below).
IMBALANCE_MIN_PREDICTIONS = 10
IMBALANCE_HIGH_CONFIDENCE_PREDICTIONS = 100

#: Mean per-label ECE from which calibration is poor (medium) and bad (high).
ECE_MEDIUM = 0.1
ECE_HIGH = 0.2
#: Per-label ECE over 15 bins is biased upwards on few samples: no finding below this many.
CALIBRATION_MIN_SAMPLES = 100
CALIBRATION_HIGH_CONFIDENCE_SAMPLES = 500
#: Labels with the largest ECE quoted in the evidence.
CALIBRATION_EVIDENCE_LABELS = 3


def label_text(evaluation: Any, label_id: Any) -> str:
    """``label "cat" (id 3)``; ``label 3`` when the label has no name of its own."""
    return class_label(evaluation, label_id, "label")


def _suggested_threshold(evaluation: Any, label_id: str) -> float | None:
    """The F1-optimal threshold of a label from ``thresholds.suggested`` (``None`` when the
    section is missing or tuning was not informative for the label)."""
    thresholds = section(evaluation, "thresholds")
    if not isinstance(thresholds, Mapping):
        return None
    suggested = thresholds.get("suggested")
    if not isinstance(suggested, Mapping):
        return None
    return number(suggested.get(label_id))


def _add_label_numbers(
    evidence: list[str],
    metadata: Metadata,
    name: str,
    *,
    threshold: float | None,
    suggested: float | None,
    auroc: float | None = None,
) -> None:
    """Quote the decision threshold of label ``name``, its AUROC and its F1-optimal threshold
    in ``evidence`` and ``metadata``, in this order, each when known."""
    add_number(evidence, metadata, "threshold", threshold, spec=".2f", quoted=f"threshold[{name}]")
    add_number(evidence, metadata, "auroc", auroc, quoted=f"auroc[{name}]")
    add_number(
        evidence,
        metadata,
        "suggested_threshold",
        suggested,
        spec=".2f",
        quoted=f"f1_optimal_threshold[{name}]",
    )


def fisher_greater(table: tuple[int, int, int, int]) -> float:
    """One-sided Fisher exact test of a 2x2 table ``(x, n1 - x, y, n2 - y)``: the probability,
    with both margins fixed, that the first row holds ``x`` or more of the ``x + y`` events
    (the hypergeometric upper tail). Pure Python, in log space; ``1.0`` for an empty table."""
    x, rest1, y, rest2 = table
    if min(table) < 0:
        raise ValueError(f"a 2x2 table holds counts >= 0, got {table}")
    n1, n2, events = x + rest1, y + rest2, x + y
    total = n1 + n2

    def log_choose(n: int, k: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)

    denominator = log_choose(total, events)
    high = min(n1, events)
    terms = [
        log_choose(n1, k) + log_choose(n2, events - k) - denominator
        for k in range(x, high + 1)
        if events - k <= n2
    ]
    if not terms:
        return 0.0
    peak = max(terms)
    return min(1.0, math.exp(peak) * math.fsum(math.exp(t - peak) for t in terms))


class _MultilabelDetector(Detector):
    """A multi-label detector: ``[]`` for any task other than multilabel."""

    task = MULTILABEL


# -------------------------------------------------------------------------------------------
# Recall
# -------------------------------------------------------------------------------------------


class _LabelRecall(RecallDetector):
    """Labels with at least :data:`RECALL_MIN_SUPPORT` positives whose recall is in a range; the
    interpretation reads the label's ranking (AUROC)."""

    task = MULTILABEL
    min_support = RECALL_MIN_SUPPORT
    high_confidence_support = RECALL_HIGH_CONFIDENCE_SUPPORT
    noun = "label"
    recalled = "positives are predicted"

    def _details(self, evaluation: Any, row: Row, class_id: str) -> tuple[list[str], Metadata]:
        evidence: list[str] = []
        metadata: Metadata = {
            "good_auroc": RANKING_GOOD_AUROC,
            "poor_auroc": RANKING_POOR_AUROC,
            **self.thresholds,
        }
        _add_label_numbers(
            evidence,
            metadata,
            label_name(evaluation, class_id),
            threshold=number(row.get("threshold")),
            auroc=number(row.get("auroc")),
            suggested=_suggested_threshold(evaluation, class_id),
        )
        return evidence, metadata

    def _interpretation(self, evaluation: Any, row: Row, class_id: str, recall: float) -> str:
        label = label_text(evaluation, class_id)
        auroc = number(row.get("auroc"))
        if auroc is not None and auroc >= RANKING_GOOD_AUROC:
            return (
                f"The scores of {label} still rank its positives above its negatives (AUROC "
                f"{auroc:.2f}), yet few reach the decision threshold: the threshold, not the "
                "features, is the main problem; a lower per-label threshold recovers recall."
            )
        if auroc is not None and auroc <= RANKING_POOR_AUROC:
            return (
                f"The scores of {label} barely separate its positives from its negatives "
                f"(AUROC {auroc:.2f}): the model has not learned this label. Check that the "
                "label columns are in the same order as in training and that its training "
                "annotations are complete."
            )
        return (
            f"The model misses most positives of {label}: predictions of this label "
            "cannot be relied on. Typical causes are too few training positives, missing "
            "annotations, or a threshold that is too high for a rare label."
        )


class ZeroRecallLabel(_LabelRecall):
    """A label with enough positives none of which is predicted (critical)."""

    name = "multilabel_zero_recall"
    title = "Zero-recall label"
    severity = "critical"
    thresholds: ClassVar[dict[str, float]] = {"max_recall": 0.0}
    advice = recommendation(
        title="Fix zero-recall labels",
        action=(
            "Check that the label columns match the training order, then lower the label's "
            "threshold on a validation split if its scores still rank positives well; otherwise "
            "add positives or train with an asymmetric or focal loss."
        ),
        priority=1,
        impact=(
            "asymmetric and focal losses down-weight the many easy negatives of multi-label "
            "training and usually recover recall of labels the model ignores."
        ),
        literature_note=(
            "Ridnik et al., Asymmetric Loss For Multi-Label Classification, ICCV 2021; Lin et "
            "al., Focal Loss for Dense Object Detection, ICCV 2017"
        ),
    )

    def _in_range(self, recall: float) -> bool:
        return recall <= 0.0


class NearZeroRecallLabel(_LabelRecall):
    """A label with enough positives of which fewer than 20 % are predicted (high)."""

    name = "multilabel_near_zero_recall"
    title = "Near-zero recall label"
    severity = "high"
    thresholds: ClassVar[dict[str, float]] = {"near_zero_recall": NEAR_ZERO_RECALL}
    advice = recommendation(
        title="Recover near-zero recall labels",
        action=(
            "Tune this label's threshold on a validation split, weight its positives in the "
            "binary cross-entropy (pos_weight) and add training images that show it."
        ),
        priority=3,
        impact=(
            "re-balanced binary cross-entropy and per-label thresholds typically raise the "
            "recall of under-represented labels at a small cost in precision."
        ),
        literature_note=(
            "Wu et al., Distribution-Balanced Loss for Multi-Label Classification in Long-Tailed "
            "Datasets, ECCV 2020; Ridnik et al., ICCV 2021"
        ),
    )

    def _in_range(self, recall: float) -> bool:
        return 0.0 < recall < NEAR_ZERO_RECALL


# -------------------------------------------------------------------------------------------
# Overall
# -------------------------------------------------------------------------------------------


class LowMacroF1(_MultilabelDetector):
    """Macro F1 below 0.35 (critical); compared with the all-positive baseline."""

    name = "low_multilabel_f1_macro"
    title = "Low macro F1 (multi-label)"
    advice = recommendation(
        title="Raise macro F1 (multi-label)",
        action=(
            "Verify the label-column order and that the model was trained with sigmoid outputs "
            "and binary cross-entropy, then tune per-label thresholds on a validation split and "
            "consider an asymmetric loss."
        ),
        priority=1,
        impact=(
            "per-label thresholds chosen on held-out data maximise each label's F1, and "
            "asymmetric losses improve multi-label F1 over plain binary cross-entropy."
        ),
        literature_note=(
            "Lipton et al., Optimal Thresholding of Classifiers to Maximize F1 Measure, ECML "
            "PKDD 2014; Ridnik et al., ICCV 2021"
        ),
    )

    def _find(self, evaluation: Any) -> list[dict[str, Any]]:
        metrics = section(evaluation, "metrics")
        if not isinstance(metrics, Mapping):
            return []
        f1_macro = number(metrics.get("f1_macro"))
        if f1_macro is None or f1_macro >= LOW_F1_MACRO:
            return []
        rows = diagnostic_rows(evaluation)
        samples = _samples(evaluation)
        evidence = [f"f1_macro={f1_macro:.3f}"]
        metadata: dict[str, float | int] = {
            "f1_macro": f1_macro,
            "threshold": LOW_F1_MACRO,
            "n_samples": samples,
        }
        for key in ("f1_micro", "f1_samples", "subset_accuracy", "mean_average_precision"):
            add_number(evidence, metadata, key, number(metrics.get(key)))
        low = [row for row in rows if (number(row.get("f1")) or 0.0) < LOW_F1_MACRO]
        evidence.append(f"labels_below_{LOW_F1_MACRO}={len(low)}/{len(rows)}")
        # Predicting every label for every sample gives label c the F1 2·q/(1 + q), q being its
        # prevalence; the mean over labels is the trivial baseline.
        baseline = None
        if rows and samples:
            prevalences = [integer(row.get("support")) / samples for row in rows]
            baseline = statistics.fmean(2 * q / (1 + q) for q in prevalences)
            add_number(evidence, metadata, "all_positive_baseline_f1_macro", baseline)
        if baseline is not None and f1_macro <= baseline:
            interpretation = (
                "Macro F1 is no better than predicting every label for every image "
                f"({baseline:.3f}): the predictions carry little information. Check the "
                "label-column order and the preprocessing against training first."
            )
        else:
            interpretation = (
                "An average label is found with poor precision or recall: the model is not "
                "usable for this task as it is. Per-label thresholds help when the scores still "
                "rank well (see mean_average_precision); otherwise the model needs more or "
                "better-labelled training data."
            )
        errors = sum(
            integer(entry.get("fp")) + integer(entry.get("fn")) for entry in _per_label(evaluation)
        )
        return [
            self._pattern(
                description=(
                    f"Macro F1 is {f1_macro:.3f} over {len(rows) or 'the'} labels "
                    f"({len(low)} below {LOW_F1_MACRO})."
                ),
                severity="critical",
                count=errors,
                evidence=evidence,
                metadata=metadata,
                interpretation=interpretation,
                confidence=confidence_from_count(
                    samples, high=SAMPLES_HIGH_CONFIDENCE, medium=SAMPLES_MEDIUM_CONFIDENCE
                ),
            )
        ]


def _samples(evaluation: Any) -> int:
    """Scored samples: ``confusion.n_samples``, else the evaluation's row count."""
    confusion = section(evaluation, "confusion")
    if isinstance(confusion, Mapping) and number(confusion.get("n_samples")) is not None:
        return integer(confusion.get("n_samples"))
    try:
        return int(getattr(evaluation, "num_samples", 0))
    except (TypeError, ValueError, AttributeError):
        return 0


def _per_label(evaluation: Any) -> list[Mapping[str, Any]]:
    """``confusion.per_label`` (``tp``, ``fp``, ``fn``, ``tn`` per label), or ``[]``."""
    confusion = section(evaluation, "confusion")
    if not isinstance(confusion, Mapping) or not isinstance(confusion.get("per_label"), list):
        return []
    return [entry for entry in confusion["per_label"] if isinstance(entry, Mapping)]


# -------------------------------------------------------------------------------------------
# Threshold advice
# -------------------------------------------------------------------------------------------


class _ThresholdBias(_MultilabelDetector):
    """Labels whose errors are dominated by one kind (false positives or false negatives)."""

    #: ``"fp"`` or ``"fn"``: the dominant kind of error.
    dominant: ClassVar[str]

    def _find(self, evaluation: Any) -> list[dict[str, Any]]:
        thresholds = {
            str(row["class_id"]): number(row.get("threshold"))
            for row in diagnostic_rows(evaluation)
        }
        patterns = []
        for index, entry in enumerate(_per_label(evaluation)):
            tp, fp, fn = (integer(entry.get(key)) for key in ("tp", "fp", "fn"))
            errors, other = (fp, fn) if self.dominant == "fp" else (fn, fp)
            if errors < BIAS_MIN_ERRORS or errors < BIAS_RATIO * max(other, 1):
                continue
            label_id = str(index)
            name = label_name(evaluation, label_id)
            label = label_text(evaluation, label_id)
            threshold = thresholds.get(label_id)
            suggested = _suggested_threshold(evaluation, label_id)
            # A suggestion is given only when the F1-optimal threshold lies on the advised side.
            if suggested is not None and threshold is not None:
                advised = suggested > threshold if self.dominant == "fp" else suggested < threshold
                if not advised:
                    suggested = None
            evidence = [
                f"{self.dominant}[{name}]={errors}",
                f"{_other(self.dominant)}[{name}]={other}",
                f"tp[{name}]={tp}",
            ]
            metadata: dict[str, float | int] = {
                "tp": tp,
                "fp": fp,
                "fn": fn,
                "min_errors": BIAS_MIN_ERRORS,
                "ratio": BIAS_RATIO,
            }
            _add_label_numbers(evidence, metadata, name, threshold=threshold, suggested=suggested)
            patterns.append(
                self._pattern(
                    description=self._description(label, errors, other, threshold, suggested),
                    severity="medium",
                    count=errors,
                    class_a=label_id,
                    evidence=evidence,
                    metadata=metadata,
                    interpretation=self._interpretation(label),
                    confidence="high" if errors >= BIAS_HIGH_CONFIDENCE_ERRORS else "medium",
                )
            )
        return patterns

    def _description(
        self, label: str, errors: int, other: int, threshold: float | None, suggested: float | None
    ) -> str:
        kind = "false positives" if self.dominant == "fp" else "false negatives"
        other_kind = "false negatives" if self.dominant == "fp" else "false positives"
        direction = "raising" if self.dominant == "fp" else "lowering"
        text = f"{capitalize(label)} has {errors} {kind} but {other} {other_kind}"
        if threshold is not None and suggested is not None:
            return (
                f"{text}; {direction} its threshold from {threshold:.2f} to {suggested:.2f} "
                "maximises its F1 on this set."
            )
        return f"{text}; consider {direction} its threshold."

    @abstractmethod
    def _interpretation(self, label: str) -> str:
        """What the bias of ``label`` means for the user's model."""


def _other(kind: str) -> str:
    return "fn" if kind == "fp" else "fp"


class FalsePositiveBias(_ThresholdBias):
    """A label predicted too often: fp >= 3·max(fn, 1) and fp >= 5 (medium)."""

    name = "multilabel_fp_bias"
    title = "Label predicted too often"
    dominant = "fp"
    advice = recommendation(
        title="Reduce false positives per label",
        action=(
            "Raise these labels' thresholds (tune them on a validation split, not on the "
            "evaluation set), and check a few false positives for positives missing from the "
            "annotations."
        ),
        priority=4,
        impact=(
            "per-label thresholds tuned on held-out data trade the surplus false positives for "
            "F1; in multi-label data sets many apparent false positives are missing labels."
        ),
        literature_note=(
            "Lipton et al., ECML PKDD 2014; Cole et al., Multi-Label Learning from Single "
            "Positive Labels, CVPR 2021"
        ),
    )

    def _interpretation(self, label: str) -> str:
        return (
            f"The decision threshold of {label} is too permissive for its scores: the model "
            "flags it on many images that do not have it and misses few that do. A higher "
            "threshold trades some of the surplus false positives for better precision."
        )


class FalseNegativeBias(_ThresholdBias):
    """A label rarely predicted: fn >= 3·max(fp, 1) and fn >= 5 (medium)."""

    name = "multilabel_fn_bias"
    title = "Label rarely predicted"
    dominant = "fn"
    advice = recommendation(
        title="Improve recall per label",
        action=(
            "Lower these labels' thresholds (tuned on a validation split), weight their "
            "positives in the binary cross-entropy (pos_weight), or add positives."
        ),
        priority=3,
        impact=(
            "a lower per-label threshold or a positive weight in the loss usually recovers "
            "recall of labels the model under-predicts, at some cost in precision."
        ),
        literature_note=("Lipton et al., ECML PKDD 2014; Ridnik et al., ICCV 2021"),
    )

    def _interpretation(self, label: str) -> str:
        return (
            f"The decision threshold of {label} is too strict for its scores: the model misses "
            "many images that have it and rarely flags one that does not. This is typical of "
            "labels that are rare in training, whose sigmoid outputs stay low."
        )


# -------------------------------------------------------------------------------------------
# Rare labels
# -------------------------------------------------------------------------------------------


class RareLabel(_MultilabelDetector):
    """A rare label whose recall is below the median recall (medium)."""

    name = "multilabel_rare_label"
    title = "Rare label at risk"
    advice = recommendation(
        title="Address rare labels",
        action=(
            "Collect more images with these labels, or re-sample them and use a "
            "distribution-balanced or positive-weighted binary cross-entropy."
        ),
        priority=3,
        impact=(
            "re-sampling rare labels combined with a re-balanced multi-label loss typically "
            "narrows their recall gap to frequent labels."
        ),
        literature_note=(
            "Wu et al., ECCV 2020; Buda et al., A systematic study of the class imbalance "
            "problem in convolutional neural networks, Neural Networks 2018"
        ),
    )

    def _find(self, evaluation: Any) -> list[dict[str, Any]]:
        rows = recall_rows(evaluation)
        if len(rows) < 2:
            return []
        total = sum(support for _, support, _ in rows)
        median_recall = statistics.median(recall for _, _, recall in rows)
        max_support = max(RARE_MIN_SUPPORT, RARE_POSITIVE_FRACTION * total)
        patterns = []
        for label_id, support, recall in rows:
            if support > max_support or recall >= median_recall:
                continue
            label, name = label_text(evaluation, label_id), label_name(evaluation, label_id)
            patterns.append(
                self._pattern(
                    description=(
                        f"{capitalize(label)} has {support} of the {total} positives and recall "
                        f"{percent(recall)} (median {percent(median_recall)})."
                    ),
                    severity="medium",
                    count=support,
                    class_a=label_id,
                    evidence=[
                        f"support[{name}]={support}",
                        f"recall[{name}]={recall:.3f}",
                        f"total_positives={total}",
                        f"median_recall={median_recall:.3f}",
                    ],
                    metadata={
                        "support": support,
                        "recall": recall,
                        "total_positives": total,
                        "median_recall": median_recall,
                        "max_rare_support": max_support,
                        "min_support_floor": RARE_MIN_SUPPORT,
                        "positive_fraction": RARE_POSITIVE_FRACTION,
                    },
                    interpretation=(
                        f"{capitalize(label)} is rare and found less often than a typical "
                        "label: the model has likely seen too few positives of it. With so few "
                        "positives its recall is also an uncertain estimate."
                    ),
                    confidence=("medium" if support >= RARE_MEDIUM_CONFIDENCE_SUPPORT else "low"),
                )
            )
        return patterns


# -------------------------------------------------------------------------------------------
# Co-occurrence shortcuts
# -------------------------------------------------------------------------------------------


class CooccurrenceShortcut(_MultilabelDetector):
    """Label b falsely predicted far more often when label a is present than when it is absent
    (medium): lift >= 3, at least 5 such false positives, Fisher p < 0.01 / pairs."""

    name = "multilabel_cooccurrence_shortcut"
    title = "Co-occurrence shortcut"
    advice = recommendation(
        title="Break label co-occurrence shortcuts",
        action=(
            "Review the listed images: if the second label is really there, complete the "
            "annotations; otherwise add training images where the first label appears without "
            "the second."
        ),
        priority=3,
        impact=(
            "models exploit label co-occurrence as context; training on images that break the "
            "co-occurrence (or feature decorrelation) reduces such context-driven errors."
        ),
        literature_note=(
            "Singh et al., Don't Judge an Object by Its Context: Learning to Overcome "
            "Contextual Bias, CVPR 2020; Geirhos et al., Shortcut Learning in Deep Neural "
            "Networks, Nature Machine Intelligence 2020"
        ),
    )

    def _find(self, evaluation: Any) -> list[dict[str, Any]]:
        errors = section(evaluation, "cooccurrence_errors")
        if not isinstance(errors, Mapping) or not isinstance(errors.get("pairs"), list):
            return []
        num_labels = len(getattr(evaluation, "class_names", ()) or ()) or len(
            _per_label(evaluation)
        )
        pairs_tested = max(1, num_labels * (num_labels - 1))
        max_p = COOCCURRENCE_ALPHA / pairs_tested
        patterns: list[dict[str, Any]] = []
        for pair in errors["pairs"]:
            if not isinstance(pair, Mapping):
                continue
            count, co_present = integer(pair.get("count")), integer(pair.get("co_present"))
            base_count, base_total = (
                integer(pair.get("base_count")),
                integer(pair.get("base_total")),
            )
            conditional = number(pair.get("conditional_rate"))
            base = number(pair.get("base_rate"))
            lift = number(pair.get("lift"))
            if conditional is None or base is None or base_total <= 0:
                continue  # no sample without a: nothing to compare with
            if lift is None and base > 0:
                continue
            # lift None with a base rate of 0: every false positive of b co-occurs with a.
            if count < COOCCURRENCE_MIN_COUNT or (
                lift is not None and lift < COOCCURRENCE_MIN_LIFT
            ):
                continue
            if not (0 <= count <= co_present and 0 <= base_count <= base_total):
                continue
            p_value = fisher_greater(
                (count, co_present - count, base_count, base_total - base_count)
            )
            if p_value >= max_p:
                continue
            a, b = str(pair.get("present_label")), str(pair.get("predicted_label"))
            name_a, name_b = label_name(evaluation, a), label_name(evaluation, b)
            text_a, text_b = label_text(evaluation, a), label_text(evaluation, b)
            if lift is None:
                comparison = f"and never on the {base_total} images without {name_a}"
            else:
                comparison = f"{lift:.1f}x as often as on images without {name_a} ({percent(base)})"
            metadata: dict[str, float | int] = {
                "conditional_rate": conditional,
                "base_rate": base,
                "co_present": co_present,
                "base_count": base_count,
                "base_total": base_total,
                "p_value": p_value,
                "min_lift": COOCCURRENCE_MIN_LIFT,
                "min_count": COOCCURRENCE_MIN_COUNT,
                "alpha": COOCCURRENCE_ALPHA,
                "pairs_tested": pairs_tested,
            }
            if lift is not None:
                metadata["lift"] = lift
            patterns.append(
                self._pattern(
                    description=(
                        f"{capitalize(text_b)} is falsely predicted on {count} of the "
                        f"{co_present} images that have {text_a} but not {name_b} "
                        f"({percent(conditional)}), {comparison}."
                    ),
                    severity="medium",
                    count=count,
                    class_a=a,
                    class_b=b,
                    evidence=[
                        f"cooccurring_false_positives[{name_a}→{name_b}]={count}",
                        f"lift[{name_a}→{name_b}]={'inf' if lift is None else f'{lift:.2f}'}",
                        f"fp_rate_with[{name_a}→{name_b}]={conditional:.3f}",
                        f"fp_rate_without[{name_a}→{name_b}]={base:.3f}",
                        f"fisher_p={p_value:.2e}",
                    ],
                    metadata=metadata,
                    interpretation=(
                        f'The model predicts "{name_b}" whenever it sees "{name_a}", whether or '
                        f'not "{name_b}" is there: it has learned the co-occurrence of the two '
                        "labels as a shortcut instead of recognising the second one. (Or the "
                        f'annotations miss "{name_b}" on these images: look at a few.)'
                    ),
                    confidence=confidence_from_count(
                        count,
                        high=COOCCURRENCE_HIGH_CONFIDENCE_COUNT,
                        medium=COOCCURRENCE_MIN_COUNT,
                    ),
                )
            )
            if len(patterns) == COOCCURRENCE_MAX_PATTERNS:
                break
        return patterns


# -------------------------------------------------------------------------------------------
# Prediction imbalance and calibration
# -------------------------------------------------------------------------------------------


class PredictionImbalance(_MultilabelDetector):
    """One label holds most predicted positives (``distribution_summary.possible_collapse``)."""

    name = "multilabel_prediction_imbalance"
    title = "Possible prediction imbalance"
    advice = recommendation(
        title="Address prediction imbalance",
        action=(
            "Check the label-column order and the preprocessing against training, then inspect "
            "the dominant label's false positives and re-balance training."
        ),
        priority=1,
        impact=(
            "a label that absorbs most positive predictions usually signals a label-order or "
            "preprocessing mismatch, or a dominant training label; re-balanced losses restore "
            "the others."
        ),
        literature_note=(
            "Wu et al., ECCV 2020; Kang et al., Decoupling Representation and Classifier for "
            "Long-Tailed Recognition, ICLR 2020"
        ),
    )

    def _find(self, evaluation: Any) -> list[dict[str, Any]]:
        collapse = collapse_summary(evaluation)
        if collapse is None:
            return []
        summary, share, pred_total, label_id = collapse
        if pred_total < IMBALANCE_MIN_PREDICTIONS:
            return []
        true_share = number(summary.get("collapse_true_share"))
        evidence = [f"collapse_share={share:.3f}", f"predicted_positives={pred_total}"]
        metadata: dict[str, float | int] = {
            "collapse_share": share,
            "pred_total": pred_total,
            "min_predictions": IMBALANCE_MIN_PREDICTIONS,
        }
        add_number(evidence, metadata, "true_share", true_share)
        if summary.get("rule"):
            evidence.append(f"rule={summary['rule']}")
        subject = label_text(evaluation, label_id) if label_id else "a single label"
        truth = f" (it holds {percent(true_share)} of the true positives)" if true_share else ""
        return [
            self._pattern(
                description=(
                    f"{capitalize(subject)} takes {percent(share)} of the {pred_total} predicted "
                    f"positives{truth}."
                ),
                severity="high",
                count=round(share * pred_total),
                class_a=label_id,
                evidence=evidence,
                metadata=metadata,
                interpretation=(
                    "Most positive predictions go to one label whatever the image shows: the "
                    "model has largely stopped telling labels apart. Typical causes are label "
                    "columns in a different order than in training, inputs preprocessed "
                    "differently, or a label that dominates the training set."
                ),
                confidence=(
                    "high" if pred_total >= IMBALANCE_HIGH_CONFIDENCE_PREDICTIONS else "medium"
                ),
            )
        ]


class PoorLabelCalibration(_MultilabelDetector):
    """Mean per-label ECE at least 0.1 (medium) or 0.2 (high)."""

    name = "multilabel_poor_calibration"
    title = "Poor per-label calibration"
    advice = recommendation(
        title="Improve per-label calibration",
        action=(
            "Fit a temperature (or Platt scaling) per label on a held-out split and recompute "
            "the per-label ECE before reading the sigmoid outputs as probabilities."
        ),
        priority=2,
        impact=(
            "post-hoc scaling fitted on held-out data typically reduces calibration error "
            "severalfold without changing the ranking of the scores."
        ),
        literature_note=(
            "Guo et al., On Calibration of Modern Neural Networks, ICML 2017; Kull et al., "
            "Beyond temperature scaling, NeurIPS 2019"
        ),
    )

    def _find(self, evaluation: Any) -> list[dict[str, Any]]:
        summary = section(evaluation, "calibration_summary")
        if not isinstance(summary, Mapping):
            return []
        ece = number(summary.get("ece_mean"))
        samples = integer(summary.get("n_samples"))
        if ece is None or ece < ECE_MEDIUM or samples < CALIBRATION_MIN_SAMPLES:
            return []
        per_label = summary.get("per_label")
        labels: list[tuple[float, str, str]] = []
        if isinstance(per_label, Mapping):
            for label_id, entry in per_label.items():
                value = number(entry.get("ece")) if isinstance(entry, Mapping) else None
                if value is not None:
                    labels.append((-value, str(label_id), str(entry.get("direction") or "")))
        labels.sort(key=lambda item: (item[0], _as_int(item[1])))
        evidence = [f"ece_mean={ece:.3f}", f"n_samples={samples}"]
        directions: dict[str, int] = {}
        for negative, _, direction in labels:
            if -negative >= ECE_MEDIUM:
                directions[direction] = directions.get(direction, 0) + 1
        for negative, label_id, direction in labels[:CALIBRATION_EVIDENCE_LABELS]:
            evidence.append(
                f"ece[{label_name(evaluation, label_id)}]={-negative:.3f}"
                + (f" ({direction})" if direction else "")
            )
        poor = sum(directions.values())
        main = max(directions, key=lambda key: (directions[key], key)) if directions else ""
        tendency = f", mostly {main}" if main and main != "calibrated" else ""
        return [
            self._pattern(
                description=(
                    f"The mean per-label expected calibration error is {ece:.3f} over {samples} "
                    f"samples; {poor} of {len(labels)} labels have an ECE of at least "
                    f"{ECE_MEDIUM}{tendency}."
                ),
                severity="high" if ece >= ECE_HIGH else "medium",
                count=samples,
                evidence=evidence,
                metadata={
                    "ece_mean": ece,
                    "n_samples": samples,
                    "poor_labels": poor,
                    "ece_medium": ECE_MEDIUM,
                    "ece_high": ECE_HIGH,
                    "min_samples": CALIBRATION_MIN_SAMPLES,
                },
                interpretation=(
                    "The sigmoid outputs do not match how often the labels are present: a score "
                    "of 0.8 does not mean the label is there 80 % of the time, so thresholds or "
                    "risk decisions based on the scores are off. Rankings (mAP, AUROC) are not "
                    "affected."
                ),
                confidence=confidence_from_count(
                    samples,
                    high=CALIBRATION_HIGH_CONFIDENCE_SAMPLES,
                    medium=CALIBRATION_MIN_SAMPLES,
                ),
            )
        ]


def _as_int(label_id: str) -> int:
    try:
        return int(label_id)
    except ValueError:
        return -1


#: Every multi-label detector class, by component name, in the order they run.
DETECTORS: dict[str, type[Detector]] = {
    detector.name: detector
    for detector in (
        ZeroRecallLabel,
        NearZeroRecallLabel,
        LowMacroF1,
        PredictionImbalance,
        CooccurrenceShortcut,
        FalsePositiveBias,
        FalseNegativeBias,
        PoorLabelCalibration,
        RareLabel,
    )
}
