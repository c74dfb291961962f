"""The ``outliers`` check: evaluation images far from everything else in embedding space.

The score of an image is its mean cosine distance to its ``neighbours`` nearest neighbours in
the model's penultimate-layer embeddings (cleanlab's Datalab scores outliers by k-NN distance
too). Distances are compared on a log scale with the modified z-score of Iglewicz and Hoaglin,
0.6745 · (x − median) / MAD; an image whose score exceeds ``threshold`` (3.5, their
recommendation) is an outlier. The median and MAD are robust: the outliers themselves do not
move the threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from bnnr_core.analysis.data_quality import CheckSkipped
from bnnr_data_quality.common import examples, make_issue, make_pattern, percent, plural

#: Fewer evaluated images than this give no robust threshold.
MIN_SAMPLES = 20
#: Modified z-score constant (0.6745 is the 75th percentile of the standard normal).
Z_CONSTANT = 0.6745
#: Distances below this are treated as this (log scale).
MIN_DISTANCE = 1e-6


class OutliersCheck:
    """Embedding outliers by k-nearest-neighbour distance with a robust threshold."""

    name = "outliers"
    defaults: ClassVar[Mapping[str, Any]] = {"neighbours": 10, "threshold": 3.5}

    def run(self, view: Any, *, config: Mapping[str, Any]) -> list[dict[str, Any]]:
        k = int(config["neighbours"])
        neighbours, similarity = view.neighbours(k)
        valid = (neighbours >= 0).all(axis=1)
        if int(valid.sum()) < max(MIN_SAMPLES, k + 1):
            raise CheckSkipped(
                f"needs embeddings of at least {max(MIN_SAMPLES, k + 1)} evaluated images"
            )
        distance = np.full(len(valid), np.nan)
        distance[valid] = 1.0 - similarity[valid].mean(axis=1)
        log_distance = np.log(np.maximum(distance[valid], MIN_DISTANCE))
        median = float(np.median(log_distance))
        mad = float(np.median(np.abs(log_distance - median)))
        if mad <= 0:
            return []
        score = np.full(len(valid), -np.inf)
        score[valid] = Z_CONSTANT * (log_distance - median) / mad
        mask = score > config["threshold"]
        count = int(mask.sum())
        if not count:
            return []
        split = view.eval_split
        order = np.flatnonzero(mask)[np.argsort(-score[mask], kind="stable")]
        indices = [int(split.positions[row]) for row in order]
        ids = [split.sample_ids[row] for row in order]
        evaluated = int(valid.sum())
        cutoff = float(np.exp(median + config["threshold"] * mad / Z_CONSTANT))
        message = (
            f"{plural(count, 'evaluation image')} ({percent(count / evaluated)}) lie far from "
            f"every other image in the model's embedding space (mean cosine distance to the "
            f"{k} nearest neighbours above {cutoff:.3f}): unusual content, a different source, "
            "or images of no class."
        )
        pattern = make_pattern(
            pattern_type="embedding_outliers",
            title="Outlying images",
            description=(
                f"{plural(count, 'evaluation image')} are outliers in the model's embedding space."
            ),
            severity="low",
            count=count,
            evidence=[
                f"outliers={count}",
                f"distance_cutoff={cutoff:.4f}",
                f"median_distance={float(np.exp(median)):.4f}",
                f"examples={examples(ids)}",
            ],
            metadata={"neighbours": k, "threshold": config["threshold"], "evaluated": evaluated},
            interpretation=(
                "The model has seen little like these images; its predictions on them are "
                "least reliable, and some may not belong to the data set at all."
            ),
            confidence="low",
            recommended_action=(
                "Look at the listed images: remove those that do not belong, collect more like "
                "those that do."
            ),
            recommendation_title="Inspect outlying images",
            priority=5,
            impact=(
                "k-nearest-neighbour distance in a network's feature space is a strong baseline "
                "for spotting out-of-distribution inputs (Sun et al., 2022)."
            ),
            literature_note=(
                "Sun et al., 'Out-of-Distribution Detection with Deep Nearest Neighbors', ICML "
                "2022; Iglewicz & Hoaglin, 'How to Detect and Handle Outliers', 1993."
            ),
        )
        return [
            make_issue(
                kind="outliers",
                severity="info",
                split=split.name,
                indices=indices,
                message=message,
                thresholds={
                    "neighbours": k,
                    "threshold": config["threshold"],
                    "distance_cutoff": round(cutoff, 6),
                },
                summary="outliers",
                pattern=pattern,
            )
        ]
