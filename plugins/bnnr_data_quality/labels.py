"""Checks on labels: ``class_balance`` (from the labels alone) and ``label_errors`` (from the
model's probabilities, confident-learning style).

Both accept multi-label data (``(n, C)`` multi-hot labels): ``class_balance`` then counts the
positive images of every label, and ``label_errors`` runs confident learning per label, each
label a two-class problem (present / absent).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from bnnr_core.analysis.data_quality import CheckSkipped
from bnnr_data_quality.common import (
    examples,
    label_set_text,
    make_issue,
    make_pattern,
    percent,
    plural,
    split_noun,
)

#: Suspected label errors given details (labels and probabilities).
DETAILS_LISTED = 50


class ClassBalanceCheck:
    """Classes with far fewer images than the largest class, per split.

    A class is under-represented when it has fewer than ``min_max_ratio`` times the images of the
    largest class (a class with no image at all always is). cleanlab's Datalab uses a related
    rule (rarest class prior below 0.1 / K); the min/max ratio reads more directly. With
    multi-label data the same rule applies to the positive images of each label (an image counts
    once for every label it has).
    """

    name = "class_balance"
    defaults: ClassVar[Mapping[str, Any]] = {"min_max_ratio": 0.1}

    def run(self, view: Any, *, config: Mapping[str, Any]) -> list[dict[str, Any]]:
        names = view.class_names
        found = []
        for split in view.splits.values():
            if split.labels.ndim == 2:
                counts = (split.labels[:, : len(names)] > 0).sum(axis=0).astype(np.int64)
            else:
                counts = np.bincount(split.labels, minlength=len(names))[: len(names)]
            largest = int(counts.max(initial=0))
            if not largest:
                continue
            ratio = float(counts.min() / largest)
            rare = np.flatnonzero(counts < config["min_max_ratio"] * largest)
            if not rare.size:
                continue
            rare = rare[np.argsort(counts[rare], kind="stable")]
            top = int(np.argmax(counts))
            found.append(_imbalance(view, split, counts, rare, top, ratio, config))
        return found


def _imbalance(
    view: Any,
    split: Any,
    counts: np.ndarray,
    rare: np.ndarray,
    top: int,
    ratio: float,
    config: Mapping[str, Any],
) -> dict[str, Any]:
    names = view.class_names
    where = split_noun(split.name)
    threshold = config["min_max_ratio"]
    listed = ", ".join(f"{names[k]} ({counts[k]})" for k in rare[:5])
    total = int(counts.sum())
    per_label = bool(split.labels.ndim == 2)
    if per_label:
        message = (
            f"{plural(len(rare), 'label')} of the {where} split are present in fewer than "
            f"{percent(threshold)} as many images as the most frequent label {names[top]} "
            f"({counts[top]}): {listed}{' ...' if len(rare) > 5 else ''}. Counted per label: "
            "an image counts once for every label it has."
        )
    else:
        message = (
            f"{plural(len(rare), 'class', 'classes')} of the {where} split have fewer than "
            f"{percent(threshold)} of the images of the largest class {names[top]} "
            f"({counts[top]}): {listed}{' ...' if len(rare) > 5 else ''}."
        )
    rarest = int(rare[0])
    noun, nouns = ("label", "labels") if per_label else ("class", "classes")
    pattern = make_pattern(
        pattern_type="class_imbalance",
        title="Strong label imbalance" if per_label else "Strong class imbalance",
        description=(
            f"In the {where} split, {noun} {names[rarest]} has {counts[rarest]} "
            f"{'positive ' if per_label else ''}images against {counts[top]} of {noun} "
            f"{names[top]} (ratio {ratio:.3f})."
        ),
        severity="medium",
        count=len(rare),
        evidence=[
            f"imbalance_ratio[{split.name}]={ratio:.4f}",
            *(f"count[{names[k]}]={counts[k]}" for k in rare[:3]),
            f"count[{names[top]}]={counts[top]}",
        ],
        metadata={
            "split": split.name,
            "min_max_ratio": threshold,
            "imbalance_ratio": round(ratio, 6),
            "per_label": per_label,
        },
        interpretation=(
            f"Metrics on rare {nouns} rest on few images and are uncertain."
            if split.name == "eval"
            else f"A model trained on this split sees the rare {nouns} seldom and tends to "
            "under-predict them."
        ),
        confidence="high" if total >= 100 else "medium",
        recommended_action=(
            f"Collect more images of the rare {nouns} of the {where} split, or re-weight or "
            f"re-sample them in training; read per-{noun} metrics with their intervals."
        ),
        recommendation_title="Address class imbalance",
        priority=3,
        impact=(
            "re-sampling or re-weighting rare classes is the standard remedy for imbalanced "
            "training sets (Buda et al., 2018, on CNNs)."
        ),
        literature_note=(
            "Buda, Maki & Mazurowski, 'A systematic study of the class imbalance problem in "
            "convolutional neural networks', Neural Networks 2018."
        ),
        class_a=str(rarest),
        class_b=str(top),
    )
    issue = make_issue(
        kind="class_imbalance",
        severity="warning",
        split=split.name,
        indices=[],
        count=len(rare),
        message=message,
        thresholds={"min_max_ratio": threshold},
        summary="imbalanced_classes",
        details=[
            {"class_id": str(k), "class_name": names[k], "count": int(counts[k])}
            | ({"per_label": True} if per_label else {})
            for k in rare
        ],
        pattern=pattern,
    )
    issue["summary"][f"{'' if split.name == 'eval' else 'train_'}imbalance_ratio"] = ratio
    return issue


class LabelErrorsCheck:
    """Suspected label errors, confident-learning style (Northcutt et al., 2021).

    The model's probabilities on the evaluation split are out-of-sample. The threshold of class
    k is the mean probability of k over the images labelled k (its average self-confidence;
    classes with fewer than ``min_class_samples`` evaluated images get none). An image is
    suspect when some other class reaches its own threshold and is more probable than the given
    label. Suspects are ranked by the probability of their given label, lowest first.

    Multi-label evaluations (``(n, C)`` targets, sigmoid probabilities) apply the same rule to
    every label as a two-class problem, one-vs-rest as cleanlab does for multi-label data: the
    threshold of "present" is the mean probability over the images that have the label, that of
    "absent" the mean of ``1 - p`` over those that do not; a label is checked only when at least
    ``min_class_samples`` evaluated images have it and as many do not. An image is suspect when,
    for some label, the other value reaches its threshold and is more probable than the given
    one; suspects are ranked by the lowest probability of a given value among their flagged
    labels.
    """

    name = "label_errors"
    defaults: ClassVar[Mapping[str, Any]] = {"min_class_samples": 5, "high_share": 0.05}

    def run(self, view: Any, *, config: Mapping[str, Any]) -> list[dict[str, Any]]:
        model = view.model
        if model is None:
            raise CheckSkipped("needs the model's probabilities; no evaluation was given")
        if model.targets.ndim != 1:
            return _multilabel_errors(view, model, config)
        split = view.eval_split
        rows = np.flatnonzero(model.evaluated)
        if not rows.size:
            raise CheckSkipped("no scanned image has finite model outputs")
        probabilities = model.probabilities[rows]
        given = model.targets[rows].astype(np.int64)
        classes = probabilities.shape[1]
        sums = np.bincount(
            given, weights=probabilities[np.arange(rows.size), given], minlength=classes
        )
        support = np.bincount(given, minlength=classes)
        enough = support >= config["min_class_samples"]
        threshold = np.where(enough, sums / np.maximum(support, 1), np.inf)
        own = probabilities[np.arange(rows.size), given]
        other = np.where(probabilities >= threshold, probabilities, -np.inf)
        other[np.arange(rows.size), given] = -np.inf
        suggested = np.argmax(other, axis=1)
        best = other[np.arange(rows.size), suggested]
        suspect = best > own
        if not suspect.any():
            return []
        order = np.flatnonzero(suspect)[np.argsort(own[suspect], kind="stable")]
        return [
            _label_issue(view, split, rows, order, given, suggested, own, best, threshold, config)
        ]


def _label_issue(
    view: Any,
    split: Any,
    rows: np.ndarray,
    order: np.ndarray,
    given: np.ndarray,
    suggested: np.ndarray,
    own: np.ndarray,
    best: np.ndarray,
    threshold: np.ndarray,
    config: Mapping[str, Any],
) -> dict[str, Any]:
    names = view.model.class_names
    count, evaluated = int(order.size), int(rows.size)
    share = count / evaluated
    indices, ids = _suspects(split, rows, order)
    pairs, counts = np.unique(
        np.stack([given[order], suggested[order]], axis=1), axis=0, return_counts=True
    )
    top_a, top_b = (int(v) for v in pairs[int(np.argmax(counts))])
    details = [
        {
            "index": indices[n],
            "given": names[given[k]],
            "suggested": names[suggested[k]],
            "given_probability": round(float(own[k]), 4),
            "suggested_probability": round(float(best[k]), 4),
        }
        for n, k in enumerate(order[:DETAILS_LISTED])
    ]
    worst = order[0]
    return _label_errors_issue(
        split,
        indices,
        ids,
        evaluated,
        config,
        message=(
            f"{plural(count, 'evaluation image')} ({percent(share)} of those evaluated) may be "
            f"mislabelled: the model confidently prefers another class (most often "
            f"{names[top_a]} -> {names[top_b]}). Listed from the least likely given label."
        ),
        description=(
            f"{plural(count, 'evaluation image')} ({percent(share)}) look mislabelled to the "
            f"model, most often {names[top_a]} labelled images that look like {names[top_b]}."
        ),
        evidence=[
            f"worst={ids[0]}: given {names[given[worst]]} p={own[worst]:.3f}, "
            f"{names[suggested[worst]]} p={best[worst]:.3f}",
        ],
        metadata={},
        interpretation=(
            "Either these labels are wrong (then metrics penalise correct predictions) or the "
            "model is confidently wrong on them; both deserve a look, starting at the top."
        ),
        literature_note=(
            "Northcutt, Jiang & Chuang, 'Confident Learning', JAIR 2021; Northcutt, Athalye & "
            "Mueller, 'Pervasive Label Errors in Test Sets', NeurIPS 2021."
        ),
        class_a=str(top_a),
        class_b=str(top_b),
        thresholds={
            "class_thresholds": {
                names[k]: (round(float(t), 4) if np.isfinite(t) else None)
                for k, t in enumerate(threshold)
            },
        },
        details=details,
    )


def _suspects(split: Any, rows: np.ndarray, order: np.ndarray) -> tuple[list[int], list[str]]:
    """Dataset positions and sample ids of the suspect ``rows[order]``, in ``order``."""
    indices = [int(split.positions[rows[k]]) for k in order]
    ids = [split.sample_ids[rows[k]] for k in order]
    return indices, ids


def _label_errors_issue(
    split: Any,
    indices: list[int],
    ids: list[str],
    evaluated: int,
    config: Mapping[str, Any],
    *,
    message: str,
    description: str,
    evidence: list[str],
    metadata: Mapping[str, Any],
    interpretation: str,
    literature_note: str,
    class_a: str,
    class_b: str = "",
    thresholds: Mapping[str, Any],
    details: list[dict[str, Any]],
) -> dict[str, Any]:
    """The ``label_errors`` issue of ``indices`` (sample ids ``ids``, of ``evaluated`` images)
    with its ``suspected_label_errors`` pattern, single-label or multi-label; ``evidence``,
    ``metadata`` and ``thresholds`` add to what both record."""
    count = len(indices)
    share = count / evaluated
    high = share >= config["high_share"]
    pattern = make_pattern(
        pattern_type="suspected_label_errors",
        title="Suspected label errors",
        description=description,
        severity="high" if high else "medium",
        count=count,
        evidence=[
            f"suspected_label_errors={count}",
            f"share={share:.4f}",
            *evidence,
            f"examples={examples(ids)}",
        ],
        metadata={
            "evaluated": evaluated,
            "high_share": config["high_share"],
            "min_class_samples": config["min_class_samples"],
            **metadata,
        },
        interpretation=interpretation,
        confidence="medium",
        recommended_action=(
            "Review the listed images from the top and correct wrong labels; then analyze again."
        ),
        recommendation_title="Review suspected label errors",
        priority=2 if high else 3,
        impact=(
            "Northcutt et al. (2021) estimate an average of 3.3% label errors across 10 "
            "benchmark test sets; correcting them changed which models ranked best."
        ),
        literature_note=literature_note,
        class_a=class_a,
        class_b=class_b,
    )
    return make_issue(
        kind="label_errors",
        severity="warning",
        split=split.name,
        indices=indices,
        message=message,
        thresholds={
            "min_class_samples": config["min_class_samples"],
            "high_share": config["high_share"],
            **thresholds,
        },
        summary="suspected_label_errors",
        details=details,
        pattern=pattern,
    )


def _multilabel_errors(view: Any, model: Any, config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per-label confident learning on multi-hot targets (see :class:`LabelErrorsCheck`)."""
    rows = np.flatnonzero(model.evaluated)
    if not rows.size:
        raise CheckSkipped("no scanned image has finite model outputs")
    present = np.asarray(model.probabilities, dtype=np.float64)[rows]
    given = np.asarray(model.targets)[rows] > 0.5
    minimum = config["min_class_samples"]
    with_label, without = given.sum(axis=0), (~given).sum(axis=0)
    checked = (with_label >= minimum) & (without >= minimum)
    if not checked.any():
        raise CheckSkipped(
            f"multi-label confident learning needs a label that at least {minimum} evaluated "
            "images have and as many do not; no label has"
        )
    absent = 1.0 - present
    threshold_present = np.where(
        checked, (present * given).sum(axis=0) / np.maximum(with_label, 1), np.inf
    )
    threshold_absent = np.where(
        checked, (absent * ~given).sum(axis=0) / np.maximum(without, 1), np.inf
    )
    own = np.where(given, present, absent)  # probability of the given value
    other = 1.0 - own
    other_threshold = np.where(given, threshold_absent, threshold_present)
    flagged = checked & (other >= other_threshold) & (other > own)
    suspect = flagged.any(axis=1)
    if not suspect.any():
        return []
    worst = np.where(flagged, own, np.inf).min(axis=1)
    order = np.flatnonzero(suspect)[np.argsort(worst[suspect], kind="stable")]
    return [
        _multilabel_issue(
            view,
            rows,
            order,
            given,
            flagged,
            own,
            worst,
            threshold_present,
            threshold_absent,
            config,
        )
    ]


def _multilabel_issue(
    view: Any,
    rows: np.ndarray,
    order: np.ndarray,
    given: np.ndarray,
    flagged: np.ndarray,
    own: np.ndarray,
    worst: np.ndarray,
    threshold_present: np.ndarray,
    threshold_absent: np.ndarray,
    config: Mapping[str, Any],
) -> dict[str, Any]:
    split = view.eval_split
    names = view.model.class_names
    count, evaluated = int(order.size), int(rows.size)
    share = count / evaluated
    indices, ids = _suspects(split, rows, order)
    per_label = flagged.sum(axis=0)
    top = int(np.argmax(per_label))
    missed = int((flagged[:, top] & given[:, top]).sum())  # given present, looks absent
    added = int(per_label[top]) - missed
    details = []
    for n, k in enumerate(order[:DETAILS_LISTED]):
        labels = np.flatnonzero(flagged[k])
        suggested = given[k].copy()
        suggested[labels] = ~suggested[labels]
        weakest = labels[np.argmin(own[k, labels])]
        details.append(
            {
                "index": indices[n],
                "given": label_set_text(given[k], names),
                "suggested": label_set_text(suggested, names),
                "labels": [names[j] for j in labels],
                "given_probability": round(float(own[k, weakest]), 4),
                "suggested_probability": round(float(1.0 - own[k, weakest]), 4),
            }
        )
    first = order[0]

    def rounded(value: float) -> float | None:
        return round(float(value), 4) if np.isfinite(value) else None

    return _label_errors_issue(
        split,
        indices,
        ids,
        evaluated,
        config,
        message=(
            f"{plural(count, 'evaluation image')} ({percent(share)} of those evaluated) may have "
            "wrong labels: for at least one label the model confidently disagrees with the given "
            f"value (most often {names[top]}: {missed} given present, {added} given absent). "
            "Listed from the least likely given value."
        ),
        description=(
            f"{plural(count, 'evaluation image')} ({percent(share)}) have a label the model "
            f"confidently disagrees with, most often {names[top]}."
        ),
        evidence=[
            f"flagged_labels={int(per_label.sum())}",
            f"worst={ids[0]}: given {label_set_text(given[first], names)}, "
            f"p(given value)={worst[first]:.3f}",
        ],
        metadata={"per_label": True},
        interpretation=(
            "Either these labels are wrong (a label missing from an image, or one it does not "
            "show; then metrics penalise correct predictions) or the model is confidently wrong "
            "on them; both deserve a look, starting at the top."
        ),
        literature_note=(
            "Northcutt, Jiang & Chuang, 'Confident Learning', JAIR 2021; Thyagarajan et al., "
            "'Identifying Incorrect Annotations in Multi-Label Classification Data', 2022."
        ),
        class_a=str(top),
        thresholds={
            "label_thresholds": {
                names[k]: {"present": rounded(threshold_present[k]), "absent": rounded(absent)}
                for k, absent in enumerate(threshold_absent)
            },
        },
        details=details,
    )
