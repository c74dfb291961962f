"""The built-in failure detectors of single-label classification.

Each detector reads the report sections of an :class:`~bnnr_core.analysis.evaluation.Evaluation`
(and, for confidently wrong predictions, its arrays) and returns pattern dictionaries. A detector
returns ``[]`` for any other task and when a section it needs is missing. Detectors are
independent: one class may appear in several patterns (a symptom such as zero recall and a likely
cause such as being a minority class). Every threshold is a module constant, recorded in the
pattern's ``metadata`` and documented in ``docs/findings.md``.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from bnnr_core.analysis.findings import recommendation
from bnnr_failures.patterns import (
    CLASSIFICATION,
    Detector,
    Metadata,
    RecallDetector,
    Row,
    add_number,
    capitalize,
    class_label,
    class_name,
    collapse_summary,
    confidence_from_count,
    integer,
    number,
    percent,
    recall_rows,
    section,
)

#: A class needs at least this many samples before zero or near-zero recall is reported
#: (smaller classes are covered by ``minority_class_suppression``).
RECALL_MIN_SUPPORT = 5
#: Recall below this (and above 0) is "near zero".
NEAR_ZERO_RECALL = 0.2
#: Support from which a recall finding has high confidence (medium below).
RECALL_HIGH_CONFIDENCE_SUPPORT = 20

#: A confusion cell is noise below this many samples ...
CONFUSION_MIN_COUNT = 2
#: ... or below this share of its true class's support.
CONFUSION_MIN_SHARE = 0.05
#: A confused pair is severity high from this count and this share of the true class on.
CONFUSION_HIGH_COUNT = 10
CONFUSION_HIGH_SHARE = 0.2
#: Count from which a confused pair has medium confidence (low below; high from the high count).
CONFUSION_MEDIUM_CONFIDENCE_COUNT = 5
#: At most this many confused-pair patterns.
CONFUSION_MAX_PATTERNS = 8
#: The legacy ``failure_patterns`` list holds this many of the largest off-diagonal cells.
CONFUSION_LEGACY_CELLS = 10

#: Balanced accuracy below this is critically low.
LOW_BALANCED_ACCURACY = 0.5
#: Balanced accuracy at most this multiple of chance level (1 / C) is "near chance".
NEAR_CHANCE_FACTOR = 1.5
#: Number of samples from which accuracy findings have high (medium) confidence.
SAMPLES_HIGH_CONFIDENCE = 100
SAMPLES_MEDIUM_CONFIDENCE = 30

#: Predictions from which a collapse or an over-predicted class has high confidence.
PREDICTIONS_HIGH_CONFIDENCE = 100
#: A class is over-predicted when predicted at least this often ...
OVER_PREDICTED_MIN_COUNT = 10
#: ... and at least this many times as often as it occurs.
OVER_PREDICTED_MIN_RATIO = 2.0
OVER_PREDICTED_HIGH_CONFIDENCE_COUNT = 30

#: An error is "confident" from this predicted-class probability on.
OVERCONFIDENT_THRESHOLD = 0.9
#: Reported when at least this many errors are confident ...
OVERCONFIDENT_MIN_ERRORS = 5
#: ... and they make at least this share of all errors.
OVERCONFIDENT_MIN_SHARE = 0.25
#: Confident errors from which the finding has high confidence.
OVERCONFIDENT_HIGH_CONFIDENCE_ERRORS = 20
#: Worst samples listed in the evidence.
OVERCONFIDENT_EVIDENCE_SAMPLES = 3

#: Expected calibration error from which calibration is poor (medium) and bad (high).
ECE_MEDIUM = 0.1
ECE_HIGH = 0.2
#: ECE is biased upwards on few samples: no calibration finding below this many.
CALIBRATION_MIN_SAMPLES = 50
CALIBRATION_HIGH_CONFIDENCE_SAMPLES = 500
CALIBRATION_MEDIUM_CONFIDENCE_SAMPLES = 100

#: A class is a minority when its support is at most max(MINORITY_MIN_SUPPORT,
#: MINORITY_MEDIAN_FRACTION x median support) ...
MINORITY_MIN_SUPPORT = 5
MINORITY_MEDIAN_FRACTION = 0.2
#: Support from which a minority finding has medium confidence (low below).
MINORITY_MEDIUM_CONFIDENCE_SUPPORT = 10


def _confusion(evaluation: Any) -> np.ndarray | None:
    """The confusion matrix (rows true, columns predicted) as ints, or ``None``."""
    confusion = section(evaluation, "confusion")
    if not isinstance(confusion, Mapping) or confusion.get("matrix") is None:
        return None
    matrix = np.asarray(confusion["matrix"], dtype=np.int64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        return None
    return matrix


def _most_predicted_as(evaluation: Any, class_id: str) -> tuple[str, int] | None:
    """The wrong class samples of ``class_id`` are most often predicted as, and how often."""
    matrix = _confusion(evaluation)
    try:
        row_index = int(class_id)
    except ValueError:
        return None
    if matrix is None or not 0 <= row_index < matrix.shape[0]:
        return None
    row = matrix[row_index].copy()
    row[row_index] = 0
    if row.max() <= 0:
        return None
    column = int(row.argmax())
    return str(column), int(row[column])


class _Detector(Detector):
    """A single-label detector: ``[]`` for any task other than classification."""

    task = CLASSIFICATION


class _RecallDetector(RecallDetector):
    """Classes with at least :data:`RECALL_MIN_SUPPORT` samples whose recall is in a range
    (shared by zero and near-zero recall); the evidence names the class they are most often
    predicted as."""

    task = CLASSIFICATION
    min_support = RECALL_MIN_SUPPORT
    high_confidence_support = RECALL_HIGH_CONFIDENCE_SUPPORT
    noun = "class"
    recalled = "samples are predicted correctly"

    def _details(self, evaluation: Any, row: Row, class_id: str) -> tuple[list[str], Metadata]:
        evidence = []
        target = _most_predicted_as(evaluation, class_id)
        if target is not None:
            evidence.append(
                f"most_predicted_as[{class_name(evaluation, class_id)}]="
                f"{class_name(evaluation, target[0])} (id {target[0]}, {target[1]} samples)"
            )
        return evidence, dict(self.thresholds)


class ZeroRecallClass(_RecallDetector):
    """A class with enough samples none of which is predicted correctly (critical)."""

    name = "zero_recall_class"
    title = "Zero recall"
    severity = "critical"
    thresholds: ClassVar[dict[str, float]] = {"max_recall": 0.0}
    advice = recommendation(
        title="Fix zero-recall classes",
        action=(
            "Check the labels and the class-index mapping of these classes, then re-train with "
            "class-balanced sampling or focal loss."
        ),
        priority=1,
        impact=(
            "class-balanced sampling and focal loss usually recover recall of ignored classes "
            "when their training labels are correct."
        ),
        literature_note=(
            "Lin et al., Focal Loss for Dense Object Detection, ICCV 2017; Cui et al., "
            "Class-Balanced Loss Based on Effective Number of Samples, CVPR 2019"
        ),
    )

    def _in_range(self, recall: float) -> bool:
        return recall <= 0.0

    def _interpretation(self, evaluation: Any, row: Row, class_id: str, recall: float) -> str:
        return (
            f"The model never recognises {class_label(evaluation, class_id)}: for a user of the "
            "model this class does not exist. Typical causes are a class-index mapping that "
            "differs between training and evaluation, too few or mislabeled training images, "
            "or a look-alike class that absorbs it."
        )


class NearZeroRecall(_RecallDetector):
    """A class with enough samples of which fewer than 20 % are predicted correctly (high)."""

    name = "near_zero_recall"
    title = "Near-zero recall"
    severity = "high"
    thresholds: ClassVar[dict[str, float]] = {"near_zero_recall": NEAR_ZERO_RECALL}
    advice = recommendation(
        title="Recover near-zero recall classes",
        action=(
            "Add or oversample training images of these classes and weight the loss by inverse "
            "class frequency."
        ),
        priority=3,
        impact=(
            "oversampling and inverse-frequency loss weights typically raise the recall of rare "
            "or hard classes at a small cost in precision."
        ),
        literature_note=(
            "Buda et al., A systematic study of the class imbalance problem in convolutional "
            "neural networks, Neural Networks 2018"
        ),
    )

    def _in_range(self, recall: float) -> bool:
        return 0.0 < recall < NEAR_ZERO_RECALL

    def _interpretation(self, evaluation: Any, row: Row, class_id: str, recall: float) -> str:
        return (
            f"The model misses most samples of {class_label(evaluation, class_id)} (recall "
            f"{percent(recall)}, below {percent(NEAR_ZERO_RECALL)}): predictions of this class "
            "cannot be relied on. It is usually under-represented in training or confused with "
            "a similar class."
        )


class ConfusedPair(_Detector):
    """Off-diagonal confusion cells large in absolute terms and relative to the true class."""

    name = "confused_pair"
    title = "Frequent confusion pair"
    advice = recommendation(
        title="Reduce top class confusions",
        action=(
            "Inspect the misclassified samples of each pair for label errors and look-alike "
            "images, then add pair-specific training data or augmentation."
        ),
        priority=4,
        impact=(
            "cleaning mislabeled samples and adding discriminative examples of confused pairs "
            "usually reduces their confusion; margin-based losses help fine-grained pairs."
        ),
        literature_note=(
            "Northcutt et al., Confident Learning, JAIR 2021; Deng et al., ArcFace, CVPR 2019"
        ),
    )

    def _find(self, evaluation: Any) -> list[dict[str, Any]]:
        matrix = _confusion(evaluation)
        if matrix is None:
            return []
        support = matrix.sum(axis=1)
        cells = []
        for true_index, predicted_index in zip(*np.nonzero(matrix), strict=True):
            if true_index != predicted_index:
                count = int(matrix[true_index, predicted_index])
                share = count / int(support[true_index])
                cells.append((-count, -share, int(true_index), int(predicted_index)))
        cells.sort()
        legacy = [
            {"type": "confused_pair", "true_class": str(i), "pred_class": str(j), "count": -c}
            for c, _, i, j in cells[:CONFUSION_LEGACY_CELLS]
        ]
        patterns: list[dict[str, Any]] = []
        for negative_count, negative_share, i, j in cells:
            count, share = -negative_count, -negative_share
            if count < CONFUSION_MIN_COUNT or share < CONFUSION_MIN_SHARE:
                continue
            patterns.append(self._cell(evaluation, matrix, i, j, count, share, len(patterns) + 1))
            if len(patterns) == CONFUSION_MAX_PATTERNS:
                break
        if patterns:
            # The first pattern carries the legacy list of the largest cells, noise included.
            patterns[0]["legacy"] = legacy
        return patterns

    def _cell(
        self,
        evaluation: Any,
        matrix: np.ndarray,
        i: int,
        j: int,
        count: int,
        share: float,
        rank: int,
    ) -> dict[str, Any]:
        support = int(matrix[i].sum())
        reverse = int(matrix[j, i])
        reverse_support = int(matrix[j].sum())
        reverse_share = reverse / reverse_support if reverse_support else 0.0
        high = count >= CONFUSION_HIGH_COUNT and share >= CONFUSION_HIGH_SHARE
        true_label, predicted_label = class_label(evaluation, i), class_label(evaluation, j)
        true_name, predicted_name = class_name(evaluation, i), class_name(evaluation, j)
        pair = f"{true_name}→{predicted_name}"
        if reverse >= CONFUSION_MIN_COUNT and reverse_share >= CONFUSION_MIN_SHARE:
            interpretation = (
                f'The model mixes up "{true_name}" and "{predicted_name}" in both directions: '
                "it has not learned what separates them (look-alike images or inconsistent "
                "labels between the two are the usual causes)."
            )
        else:
            interpretation = (
                f'"{predicted_name}" absorbs samples of "{true_name}", rarely the reverse: check '
                "those samples for wrong labels and for features both classes share."
            )
        return self._pattern(
            description=(
                f"{capitalize(true_label)} is predicted as {predicted_label} for "
                f"{count} of its {support} samples ({percent(share)}; pair #{rank})."
            ),
            severity="high" if high else "medium",
            count=count,
            class_a=str(i),
            class_b=str(j),
            evidence=[
                f"confusions[{pair}]={count}",
                f"share_of_true_class[{pair}]={share:.3f}",
                f"support[{true_name}]={support}",
                f"reverse_confusions[{predicted_name}→{true_name}]={reverse}",
            ],
            metadata={
                "share": share,
                "support": support,
                "reverse_count": reverse,
                "min_count": CONFUSION_MIN_COUNT,
                "min_share": CONFUSION_MIN_SHARE,
                "high_count": CONFUSION_HIGH_COUNT,
                "high_share": CONFUSION_HIGH_SHARE,
            },
            interpretation=interpretation,
            confidence=confidence_from_count(
                count, high=CONFUSION_HIGH_COUNT, medium=CONFUSION_MEDIUM_CONFIDENCE_COUNT
            ),
        )


class LowOverallAccuracy(_Detector):
    """Balanced accuracy below 0.5 (critical); says when it is near chance level."""

    name = "low_overall_accuracy"
    title = "Low overall accuracy"
    advice = recommendation(
        title="Improve overall accuracy",
        action=(
            "Verify the evaluation pipeline (class order, preprocessing) and the label quality "
            "first, then train longer or with stronger augmentation or a larger backbone."
        ),
        priority=2,
        impact=(
            "label errors in evaluation sets are common and distort accuracy; after they are "
            "ruled out, longer training, augmentation and pretrained backbones are the usual "
            "levers."
        ),
        literature_note=(
            "Northcutt et al., Pervasive Label Errors in Test Sets Destabilize Machine Learning "
            "Benchmarks, NeurIPS 2021"
        ),
    )

    def _find(self, evaluation: Any) -> list[dict[str, Any]]:
        metrics = section(evaluation, "metrics")
        if not isinstance(metrics, Mapping):
            return []
        balanced = number(metrics.get("balanced_accuracy"))
        accuracy = number(metrics.get("accuracy"))
        if balanced is None or balanced >= LOW_BALANCED_ACCURACY:
            return []
        num_classes = len(getattr(evaluation, "class_names", ()) or ())
        chance = 1.0 / num_classes if num_classes >= 2 else 0.5
        num_samples = int(getattr(evaluation, "num_samples", 0))
        matrix = _confusion(evaluation)
        errors = int(matrix.sum() - np.trace(matrix)) if matrix is not None else 0
        if balanced < chance:
            interpretation = (
                f"Balanced accuracy is below chance level ({percent(chance)}): the predictions "
                "are worse than guessing, which usually means a wrong class-index mapping or "
                "preprocessing that differs from training."
            )
        elif balanced <= NEAR_CHANCE_FACTOR * chance:
            interpretation = (
                f"Balanced accuracy is near chance level ({percent(chance)}): the predictions "
                "carry little information about the class. Check the class-index mapping and "
                "preprocessing before anything else."
            )
        else:
            interpretation = (
                "An average class is recognised less than half of the time: the model is not "
                "usable for this task as it is, although it is clearly above chance level "
                f"({percent(chance)})."
            )
        evidence = [f"balanced_accuracy={balanced:.3f}"]
        if accuracy is not None:
            evidence.append(f"accuracy={accuracy:.3f}")
        evidence += [f"chance_level={chance:.3f}", f"samples={num_samples}"]
        return [
            self._pattern(
                description=(
                    f"Balanced accuracy is {percent(balanced)} over {num_classes} classes "
                    f"(chance level {percent(chance)})."
                ),
                severity="critical",
                count=errors,
                evidence=evidence,
                metadata={
                    "balanced_accuracy": balanced,
                    "chance_level": chance,
                    "threshold": LOW_BALANCED_ACCURACY,
                    "near_chance_factor": NEAR_CHANCE_FACTOR,
                },
                interpretation=interpretation,
                confidence=confidence_from_count(
                    num_samples, high=SAMPLES_HIGH_CONFIDENCE, medium=SAMPLES_MEDIUM_CONFIDENCE
                ),
            )
        ]


class ClassCollapse(_Detector):
    """One class takes most predictions (``distribution_summary.possible_collapse``; high)."""

    name = "class_collapse"
    title = "Possible class collapse"
    advice = recommendation(
        title="Address class collapse",
        action=(
            "Check the preprocessing and the label mapping against training, then re-train with "
            "class-balanced sampling or deferred re-weighting."
        ),
        priority=1,
        impact=(
            "re-balancing the classifier (class-balanced sampling, deferred re-weighting) "
            "usually restores predictions of the suppressed classes."
        ),
        literature_note=(
            "Kang et al., Decoupling Representation and Classifier for Long-Tailed Recognition, "
            "ICLR 2020; Cao et al., LDAM-DRW, NeurIPS 2019"
        ),
    )

    def _find(self, evaluation: Any) -> list[dict[str, Any]]:
        collapse = collapse_summary(evaluation)
        if collapse is None:
            return []
        summary, share, pred_total, class_id = collapse
        true_total = integer(summary.get("true_total"))
        evidence = [f"collapse_share={share:.3f}", f"pred_total={pred_total}"]
        metadata: dict[str, float | int] = {"collapse_share": share, "pred_total": pred_total}
        for entry in summary.get("over_predicted") or ():
            if isinstance(entry, Mapping) and str(entry.get("class")) == class_id and true_total:
                true_share = integer(entry.get("true")) / true_total
                add_number(evidence, metadata, "true_share", true_share)
        if summary.get("rule"):
            evidence.append(f"rule={summary['rule']}")
        subject = class_label(evaluation, class_id) if class_id else "a single class"
        return [
            self._pattern(
                description=(
                    f"The model predicts {subject} for {percent(share)} of the "
                    f"{pred_total} samples."
                ),
                severity="high",
                count=round(share * pred_total),
                class_a=class_id,
                evidence=evidence,
                metadata=metadata,
                interpretation=(
                    "The model predicts one class for most inputs whatever they show: it has "
                    "largely stopped telling classes apart. Typical causes are inputs "
                    "preprocessed differently from training (e.g. missing normalisation), a "
                    "training run that diverged, or a heavily imbalanced training set."
                ),
                confidence="high" if pred_total >= PREDICTIONS_HIGH_CONFIDENCE else "medium",
            )
        ]


class OverPredictedClass(_Detector):
    """A class predicted at least 10 times and at least twice as often as it occurs (medium)."""

    name = "over_predicted_class"
    title = "Over-predicted class"
    advice = recommendation(
        title="Reduce prediction bias",
        action=(
            "Check the over-predicted classes for label noise and spurious cues (inspect their "
            "saliency maps), and re-balance training so they stop absorbing other classes."
        ),
        priority=2,
        impact=(
            "a class that absorbs others often relies on a shortcut feature or dominates the "
            "training set; removing the shortcut or re-balancing usually restores precision."
        ),
        literature_note=(
            "Geirhos et al., Shortcut Learning in Deep Neural Networks, Nature Machine "
            "Intelligence 2020; Kang et al., ICLR 2020"
        ),
    )

    def _find(self, evaluation: Any) -> list[dict[str, Any]]:
        summary = section(evaluation, "distribution_summary")
        if not isinstance(summary, Mapping):
            return []
        patterns = []
        for entry in summary.get("over_predicted") or ():
            if not isinstance(entry, Mapping):
                continue
            true, predicted = integer(entry.get("true")), integer(entry.get("pred"))
            ratio = number(entry.get("ratio"))  # None when the class never occurs
            if predicted < OVER_PREDICTED_MIN_COUNT:
                continue
            if ratio is not None and ratio < OVER_PREDICTED_MIN_RATIO:
                continue
            class_id = str(entry.get("class"))
            label, name = class_label(evaluation, class_id), class_name(evaluation, class_id)
            metadata: dict[str, float | int] = {
                "true": true,
                "pred": predicted,
                "min_count": OVER_PREDICTED_MIN_COUNT,
                "min_ratio": OVER_PREDICTED_MIN_RATIO,
            }
            if ratio is None:
                description = (
                    f"{capitalize(label)} is predicted {predicted} times but never "
                    "occurs in the evaluation set."
                )
            else:
                metadata["ratio"] = ratio
                description = (
                    f"{capitalize(label)} is predicted {predicted} times but occurs "
                    f"{true} times ({ratio:.1f}x)."
                )
            patterns.append(
                self._pattern(
                    description=description,
                    severity="medium",
                    count=predicted - true,
                    class_a=class_id,
                    evidence=[
                        f"pred[{name}]={predicted}",
                        f"true[{name}]={true}",
                        f"ratio[{name}]={'n/a' if ratio is None else f'{ratio:.2f}'}",
                    ],
                    metadata=metadata,
                    interpretation=(
                        f"At least {predicted - true} samples of other classes are predicted as "
                        f"{label}: its predictions have low precision, and its decision region "
                        "is too wide, typical of a class that dominates the training set or "
                        "carries a spurious cue (background, watermark, image size)."
                    ),
                    confidence=(
                        "high" if predicted >= OVER_PREDICTED_HIGH_CONFIDENCE_COUNT else "medium"
                    ),
                )
            )
        return patterns


class OverconfidentErrors(_Detector):
    """Many errors made with probability at least 0.9 (medium); lists the worst samples."""

    name = "overconfident_errors"
    title = "Confidently wrong predictions"
    advice = recommendation(
        title="Review confidently wrong samples",
        action=(
            "Review the listed samples for label errors first (relabel or drop them), then "
            "consider label smoothing to temper overconfidence."
        ),
        priority=3,
        impact=(
            "confidently wrong predictions are the best candidates for label errors; "
            "label smoothing reduces overconfidence on the remaining ones."
        ),
        literature_note=(
            "Northcutt et al., Confident Learning, JAIR 2021; Müller et al., When Does Label "
            "Smoothing Help?, NeurIPS 2019"
        ),
    )

    def _find(self, evaluation: Any) -> list[dict[str, Any]]:
        worst = section(evaluation, "confident_errors")
        if not isinstance(worst, list):
            return []
        probabilities = np.asarray(evaluation.probabilities, dtype=np.float64)
        targets = np.asarray(evaluation.targets)
        predictions = np.asarray(evaluation.predictions)
        if (
            probabilities.ndim != 2
            or targets.ndim != 1
            or predictions.shape != targets.shape
            or probabilities.shape[0] != targets.shape[0]
        ):
            return []
        rows = np.flatnonzero((predictions >= 0) & (predictions != targets))
        confidence = probabilities[rows, predictions[rows]]
        errors = int(rows.size)
        confident = int(np.count_nonzero(confidence >= OVERCONFIDENT_THRESHOLD))
        share = confident / errors if errors else 0.0
        if confident < OVERCONFIDENT_MIN_ERRORS or share < OVERCONFIDENT_MIN_SHARE:
            return []
        evidence = [
            f"confident_errors={confident}",
            f"errors={errors}",
            f"confident_share={share:.3f}",
        ]
        for sample in worst[:OVERCONFIDENT_EVIDENCE_SAMPLES]:
            if isinstance(sample, Mapping):
                sample_id = sample.get("sample_id") or sample.get("index")
                evidence.append(
                    f"worst_sample={sample_id} (true {sample.get('true_name')}, predicted "
                    f"{sample.get('pred_name')}, p={number(sample.get('confidence')) or 0.0:.3f})"
                )
        return [
            self._pattern(
                description=(
                    f"{confident} of {errors} errors ({percent(share)}) are made with a "
                    f"probability of at least {OVERCONFIDENT_THRESHOLD:.2f}."
                ),
                severity="medium",
                count=confident,
                evidence=evidence,
                metadata={
                    "share": share,
                    "errors": errors,
                    "confidence_threshold": OVERCONFIDENT_THRESHOLD,
                    "min_errors": OVERCONFIDENT_MIN_ERRORS,
                    "min_share": OVERCONFIDENT_MIN_SHARE,
                },
                interpretation=(
                    "When this model is wrong it is often sure of itself, so its confidence "
                    "cannot be used to catch its errors. Confidently wrong samples are often "
                    "mislabeled, or share a spurious cue with the predicted class."
                ),
                confidence=(
                    "high" if confident >= OVERCONFIDENT_HIGH_CONFIDENCE_ERRORS else "medium"
                ),
            )
        ]


class PoorCalibration(_Detector):
    """Expected calibration error at least 0.1 (medium) or 0.2 (high), with its direction."""

    name = "poor_calibration"
    title = "Poor probability calibration"
    advice = recommendation(
        title="Improve probability calibration",
        action=(
            "Fit temperature scaling on a held-out split and recompute the ECE before using the "
            "model's scores as probabilities."
        ),
        priority=2,
        impact=("temperature scaling typically reduces ECE severalfold without changing accuracy."),
        literature_note="Guo et al., On Calibration of Modern Neural Networks, ICML 2017",
    )

    def _find(self, evaluation: Any) -> list[dict[str, Any]]:
        summary = section(evaluation, "calibration_summary")
        if not isinstance(summary, Mapping):
            return []
        ece = number(summary.get("ece"))
        samples = integer(summary.get("n_samples")) or int(getattr(evaluation, "num_samples", 0))
        if ece is None or ece < ECE_MEDIUM or samples < CALIBRATION_MIN_SAMPLES:
            return []
        mean_confidence = number(summary.get("mean_confidence"))
        accuracy = number(summary.get("accuracy"))
        direction = str(summary.get("direction") or "")
        scores = ""
        if mean_confidence is not None and accuracy is not None:
            scores = f" (mean confidence {percent(mean_confidence)}, accuracy {percent(accuracy)})"
        if direction == "overconfident":
            interpretation = (
                f"The model is overconfident{scores}: its scores overstate how often it is "
                "right, so thresholds or risk decisions based on them will be too permissive."
            )
        elif direction == "underconfident":
            interpretation = (
                f"The model is underconfident{scores}: its scores understate how often it is "
                "right, so confidence thresholds will reject many correct predictions."
            )
        else:
            interpretation = (
                f"Confidence and accuracy agree on average{scores} but not per confidence "
                "level: the model's scores cannot be read as probabilities."
            )
        evidence = [f"ece={ece:.3f}"]
        for key in ("mce", "brier", "mean_confidence", "accuracy"):
            value = number(summary.get(key))
            if value is not None:
                evidence.append(f"{key}={value:.3f}")
        if direction:
            evidence.append(f"direction={direction}")
        return [
            self._pattern(
                description=(
                    f"Expected calibration error is {ece:.3f} over {samples} samples"
                    f"{f' ({direction})' if direction else ''}."
                ),
                severity="high" if ece >= ECE_HIGH else "medium",
                count=samples,
                evidence=evidence,
                metadata={
                    "ece": ece,
                    "n_samples": samples,
                    "ece_medium": ECE_MEDIUM,
                    "ece_high": ECE_HIGH,
                    "min_samples": CALIBRATION_MIN_SAMPLES,
                },
                interpretation=interpretation,
                confidence=confidence_from_count(
                    samples,
                    high=CALIBRATION_HIGH_CONFIDENCE_SAMPLES,
                    medium=CALIBRATION_MEDIUM_CONFIDENCE_SAMPLES,
                ),
            )
        ]


class MinorityClassSuppression(_Detector):
    """A rare class whose recall is below the median recall (medium)."""

    name = "minority_class_suppression"
    title = "Minority class at risk"
    advice = recommendation(
        title="Address minority class suppression",
        action=(
            "Collect more samples of these classes, or oversample them with class-balanced "
            "batches and stronger augmentation."
        ),
        priority=3,
        impact=(
            "oversampling rare classes and augmenting them typically narrows the recall gap to "
            "frequent classes."
        ),
        literature_note=(
            "Buda et al., Neural Networks 2018; Cubuk et al., RandAugment, CVPR Workshops 2020"
        ),
    )

    def _find(self, evaluation: Any) -> list[dict[str, Any]]:
        rows = recall_rows(evaluation)
        if len(rows) < 2:
            return []
        median_support = statistics.median(support for _, support, _ in rows)
        median_recall = statistics.median(recall for _, _, recall in rows)
        max_support = max(MINORITY_MIN_SUPPORT, MINORITY_MEDIAN_FRACTION * median_support)
        patterns = []
        for class_id, support, recall in rows:
            if support > max_support or recall >= median_recall:
                continue
            label, name = class_label(evaluation, class_id), class_name(evaluation, class_id)
            patterns.append(
                self._pattern(
                    description=(
                        f"{capitalize(label)} has {support} samples (median "
                        f"{median_support:g}) and recall {percent(recall)} (median "
                        f"{percent(median_recall)})."
                    ),
                    severity="medium",
                    count=support,
                    class_a=class_id,
                    evidence=[
                        f"support[{name}]={support}",
                        f"recall[{name}]={recall:.3f}",
                        f"median_support={median_support:g}",
                        f"median_recall={median_recall:.3f}",
                    ],
                    metadata={
                        "support": support,
                        "recall": recall,
                        "median_support": median_support,
                        "median_recall": median_recall,
                        "max_minority_support": max_support,
                        "min_support_floor": MINORITY_MIN_SUPPORT,
                        "median_fraction": MINORITY_MEDIAN_FRACTION,
                    },
                    interpretation=(
                        f"{capitalize(label)} is rare and recognised worse than a "
                        "typical class: the model has likely seen too few examples of it. With "
                        "so few evaluation samples its recall is also an uncertain estimate."
                    ),
                    confidence=(
                        "medium" if support >= MINORITY_MEDIUM_CONFIDENCE_SUPPORT else "low"
                    ),
                )
            )
        return patterns


#: Every built-in detector class, by component name, in the order they run.
DETECTORS: dict[str, type[Detector]] = {
    detector.name: detector
    for detector in (
        ZeroRecallClass,
        NearZeroRecall,
        LowOverallAccuracy,
        ClassCollapse,
        ConfusedPair,
        OverPredictedClass,
        OverconfidentErrors,
        PoorCalibration,
        MinorityClassSuppression,
    )
}
