"""Checks on labels: ``class_balance`` (from the labels alone) and ``label_errors`` (from the
model's probabilities, confident-learning style)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from bnnr_core.analysis.data_quality import CheckSkipped
from bnnr_data_quality.common import (
    examples,
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
    rule (rarest class prior below 0.1 / K); the min/max ratio reads more directly.
    """

    name = "class_balance"
    defaults: ClassVar[Mapping[str, Any]] = {"min_max_ratio": 0.1}

    def run(self, view: Any, *, config: Mapping[str, Any]) -> list[dict[str, Any]]:
        names = view.class_names
        found = []
        for split in view.splits.values():
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
    message = (
        f"{plural(len(rare), 'class', 'classes')} of the {where} split have fewer than "
        f"{percent(threshold)} of the images of the largest class {names[top]} ({counts[top]}): "
        f"{listed}{' ...' if len(rare) > 5 else ''}."
    )
    rarest = int(rare[0])
    pattern = make_pattern(
        pattern_type="class_imbalance",
        title="Strong class imbalance",
        description=(
            f"In the {where} split, class {names[rarest]} has {counts[rarest]} images against "
            f"{counts[top]} of class {names[top]} (ratio {ratio:.3f})."
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
        },
        interpretation=(
            "Metrics on rare classes rest on few images and are uncertain."
            if split.name == "eval"
            else "A model trained on this split sees the rare classes seldom and tends to "
            "under-predict them."
        ),
        confidence="high" if total >= 100 else "medium",
        recommended_action=(
            f"Collect more images of the rare classes of the {where} split, or re-weight or "
            "re-sample them in training; read per-class metrics with their intervals."
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
            {"class_id": str(k), "class_name": names[k], "count": int(counts[k])} for k in rare
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
    """

    name = "label_errors"
    defaults: ClassVar[Mapping[str, Any]] = {"min_class_samples": 5, "high_share": 0.05}

    def run(self, view: Any, *, config: Mapping[str, Any]) -> list[dict[str, Any]]:
        model = view.model
        if model is None:
            raise CheckSkipped("needs the model's probabilities; no evaluation was given")
        if model.targets.ndim != 1:
            raise CheckSkipped("needs single-label targets; this evaluation is multi-label")
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
    count = int(order.size)
    evaluated = int(rows.size)
    share = count / evaluated
    indices = [int(split.positions[rows[k]]) for k in order]
    ids = [split.sample_ids[rows[k]] for k in order]
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
    high = share >= config["high_share"]
    message = (
        f"{plural(count, 'evaluation image')} ({percent(share)} of those evaluated) may be "
        f"mislabelled: the model confidently prefers another class (most often "
        f"{names[top_a]} -> {names[top_b]}). Listed from the least likely given label."
    )
    worst = order[0]
    pattern = make_pattern(
        pattern_type="suspected_label_errors",
        title="Suspected label errors",
        description=(
            f"{plural(count, 'evaluation image')} ({percent(share)}) look mislabelled to the "
            f"model, most often {names[top_a]} labelled images that look like {names[top_b]}."
        ),
        severity="high" if high else "medium",
        count=count,
        evidence=[
            f"suspected_label_errors={count}",
            f"share={share:.4f}",
            f"worst={ids[0]}: given {names[given[worst]]} p={own[worst]:.3f}, "
            f"{names[suggested[worst]]} p={best[worst]:.3f}",
            f"examples={examples(ids)}",
        ],
        metadata={
            "evaluated": evaluated,
            "high_share": config["high_share"],
            "min_class_samples": config["min_class_samples"],
        },
        interpretation=(
            "Either these labels are wrong (then metrics penalise correct predictions) or the "
            "model is confidently wrong on them; both deserve a look, starting at the top."
        ),
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
        literature_note=(
            "Northcutt, Jiang & Chuang, 'Confident Learning', JAIR 2021; Northcutt, Athalye & "
            "Mueller, 'Pervasive Label Errors in Test Sets', NeurIPS 2021."
        ),
        class_a=str(top_a),
        class_b=str(top_b),
    )
    thresholds = {
        "min_class_samples": config["min_class_samples"],
        "high_share": config["high_share"],
        "class_thresholds": {
            names[k]: (round(float(t), 4) if np.isfinite(t) else None)
            for k, t in enumerate(threshold)
        },
    }
    return make_issue(
        kind="label_errors",
        severity="warning",
        split=split.name,
        indices=indices,
        message=message,
        thresholds=thresholds,
        summary="suspected_label_errors",
        details=details,
        pattern=pattern,
    )
