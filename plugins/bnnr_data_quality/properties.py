"""The ``image_properties`` check: broken and odd images, per split.

Issue types and default thresholds follow cleanvision (``image_property_issue_manager.py``) so
results are comparable; each score is in ``[0, 1]`` and an image is flagged when its score is
below the threshold:

* ``dark``: 99th percentile of perceived brightness < 0.32;
* ``light``: 1 − 5th percentile of perceived brightness < 0.05;
* ``blurry``: 1 − exp(−0.01 · standard deviation of the Laplacian) < 0.29;
* ``low_information``: grey-histogram entropy / 10 < 0.3 (under 3 bits);
* ``odd_aspect_ratio``: min(width / height, height / width) < 0.35;
* ``odd_size``: sqrt(width · height) outside [Q1 − 3·IQR, Q3 + 3·IQR] of the split, and at
  least ``odd_size_min_factor`` times smaller or larger than the median (so a set of one size
  with one image a pixel off is not flagged);
* ``grayscale``: a grey image (one channel, or colourfulness below ``grayscale``) in a split
  where at least ``grayscale_min_colour_share`` of the images are in colour.

Beyond cleanvision: ``unreadable`` (the file cannot be decoded; truncated files say so) and
``near_constant`` (grey standard deviation below ``near_constant``: blank or solid-colour
images). A near-constant image is reported only as such, not also as dark, light, blurry,
low-information or grey. As in cleanlab's Datalab, an appearance issue that affects more than
``max_prevalence`` of a split is a property of the data set rather than of single images: it is
reported with severity ``info`` and no failure pattern.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from bnnr_data_quality.common import (
    examples,
    make_issue,
    make_pattern,
    percent,
    plural,
    positions,
    split_noun,
)

#: Appearance issues: type -> (what the images are, flat summary key).
APPEARANCE = {
    "dark": ("very dark", "dark_images"),
    "light": ("very bright (washed out)", "light_images"),
    "blurry": ("blurry", "blurry_images"),
    "low_information": ("low in information (few grey levels)", "low_information_images"),
    "odd_size": ("of an unusual size for this split", "odd_size_images"),
    "odd_aspect_ratio": ("of an unusual aspect ratio", "odd_aspect_ratio_images"),
    "grayscale": ("grey in a colour data set", "grayscale_images"),
}
#: Scale of cleanvision's blur score.
BLUR_NORMALISER = 0.01


class ImagePropertiesCheck:
    """Unreadable, near-constant and odd-looking images of every scanned split."""

    name = "image_properties"
    defaults: ClassVar[Mapping[str, Any]] = {
        "dark": 0.32,
        "light": 0.05,
        "blurry": 0.29,
        "low_information": 0.3,
        "odd_aspect_ratio": 0.35,
        "odd_size": 3.0,
        "odd_size_min_factor": 2.0,
        "near_constant": 0.01,
        "grayscale": 1.0,
        "grayscale_min_colour_share": 0.5,
        "max_prevalence": 0.1,
    }

    def run(self, view: Any, *, config: Mapping[str, Any]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for split in view.splits.values():
            found += _unreadable(split)
            found += _near_constant(split, config)
            found += _appearance(split, config)
        return found


def _unreadable(split: Any) -> list[dict[str, Any]]:
    mask = ~split.readable
    count = int(mask.sum())
    if not count:
        return []
    truncated = int((mask & split.truncated).sum())
    where = split_noun(split.name)
    rows = np.flatnonzero(mask)
    ids = [split.sample_ids[row] for row in rows]
    details = [
        {"index": int(split.positions[row]), "reason": split.error[row], "truncated": bool(t)}
        for row, t in zip(rows, split.truncated[rows], strict=True)
    ]
    message = (
        f"{plural(count, 'file')} of the {where} split cannot be decoded"
        + (f" ({truncated} truncated)" if truncated else "")
        + "; they are skipped by every step (details give the decoder's reason)."
    )
    pattern = make_pattern(
        pattern_type="unreadable_files",
        title="Unreadable image files",
        description=f"{plural(count, 'file')} of the {where} split cannot be decoded.",
        severity="medium",
        count=count,
        evidence=[
            f"unreadable_files[{split.name}]={count}",
            f"truncated[{split.name}]={truncated}",
            f"first_reason={split.error[rows[0]]}",
            f"examples={examples(ids)}",
        ],
        metadata={"split": split.name, "truncated": truncated},
        interpretation=(
            "These images are missing from every metric (evaluation) or from training; if they "
            "are not random (one class, one source) the results are biased."
        ),
        confidence="high",
        recommended_action=f"Re-export or remove the unreadable files of the {where} split.",
        recommendation_title="Repair or remove unreadable files",
        priority=3,
        impact=(
            "files lost to decoding errors silently shrink and can skew the data; data "
            "validation before training is standard practice (Breck et al., 2019)."
        ),
        literature_note="Breck et al., 'Data Validation for Machine Learning', MLSys 2019.",
    )
    return [
        make_issue(
            kind="unreadable",
            severity="warning",
            split=split.name,
            indices=[int(p) for p in split.positions[rows]],
            message=message,
            thresholds={},
            summary="unreadable_files",
            details=details,
            pattern=pattern,
        )
    ]


def _near_constant(split: Any, config: Mapping[str, Any]) -> list[dict[str, Any]]:
    threshold = config["near_constant"]
    mask = split.readable & (split.contrast < threshold)
    count = int(mask.sum())
    if not count:
        return []
    where = split_noun(split.name)
    order = np.argsort(split.contrast, kind="stable")
    indices = positions(split, mask, order)
    ids = [split.sample_ids[row] for row in order[mask[order]]]
    message = (
        f"{plural(count, 'image')} of the {where} split are blank or a single solid colour "
        f"(grey standard deviation below {threshold}); they carry no information about their "
        "class."
    )
    pattern = make_pattern(
        pattern_type="near_constant_images",
        title="Blank or solid-colour images",
        description=f"{plural(count, 'image')} of the {where} split are blank or one colour.",
        severity="low",
        count=count,
        evidence=[
            f"near_constant[{split.name}]={count}",
            f"share={count / len(split):.4f}",
            f"examples={examples(ids)}",
        ],
        metadata={"split": split.name, "threshold": threshold},
        interpretation=(
            "A blank image has no content to classify; its label is arbitrary and it usually "
            "comes from a failed capture, crop or export."
        ),
        confidence="high",
        recommended_action=f"Remove the blank images of the {where} split or fix their export.",
        recommendation_title="Remove blank images",
        priority=5,
        impact="blank images add label noise without information (cleanvision flags them).",
        literature_note="cleanvision issue types (cleanlab/cleanvision, image_property.py).",
    )
    return [
        make_issue(
            kind="near_constant",
            severity="warning",
            split=split.name,
            indices=indices,
            message=message,
            thresholds={"near_constant": threshold},
            summary="near_constant_images",
            pattern=pattern,
        )
    ]


def _appearance(split: Any, config: Mapping[str, Any]) -> list[dict[str, Any]]:
    normal = split.readable & (split.contrast >= config["near_constant"])
    total = int(normal.sum())
    if not total:
        return []
    scores, flagged, thresholds = _scores(split, normal, config)
    found = []
    for kind, (what, summary) in APPEARANCE.items():
        mask = flagged[kind]
        count = int(mask.sum())
        if not count:
            continue
        order = np.argsort(scores[kind], kind="stable")
        share = count / total
        widespread = share > config["max_prevalence"]
        message = (
            f"{plural(count, 'image')} ({percent(share)}) of the {split_noun(split.name)} "
            f"split are {what}."
        )
        if widespread:
            message += (
                f" More than {percent(config['max_prevalence'])} of the split: a property of "
                "this data set rather than of single images."
            )
        found.append(
            make_issue(
                kind=kind,
                severity="info" if widespread else "warning",
                split=split.name,
                indices=positions(split, mask, order),
                message=message,
                thresholds={**thresholds[kind], "max_prevalence": config["max_prevalence"]},
                summary=summary,
            )
        )
    return found


def _scores(
    split: Any, normal: np.ndarray, config: Mapping[str, Any]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, dict[str, Any]]]:
    """Per type: a score per row (lower is worse), the flagged rows, the thresholds used."""
    width = split.width.astype(np.float64)
    height = split.height.astype(np.float64)
    safe_w, safe_h = np.maximum(width, 1.0), np.maximum(height, 1.0)
    scores = {
        "dark": split.brightness_p99.astype(np.float64),
        "light": 1.0 - split.brightness_p05.astype(np.float64),
        "blurry": 1.0 - np.exp(-BLUR_NORMALISER * np.sqrt(split.laplacian_var.astype(float))),
        "low_information": split.entropy.astype(np.float64) / 10.0,
        "odd_aspect_ratio": np.minimum(safe_w / safe_h, safe_h / safe_w),
    }
    flagged = {kind: normal & (score < config[kind]) for kind, score in scores.items()}
    # The Laplacian and the entropy shrink with the brightness range: dark and light images are
    # reported as such only.
    exposed = flagged["dark"] | flagged["light"]
    flagged["blurry"] &= (np.minimum(width, height) >= 3) & ~exposed
    flagged["low_information"] &= ~exposed
    thresholds: dict[str, dict[str, Any]] = {kind: {kind: config[kind]} for kind in scores}

    side = np.sqrt(width * height)
    q1, median, q3 = np.percentile(side[normal], [25, 50, 75])
    factor, min_factor = config["odd_size"], config["odd_size_min_factor"]
    low, high = q1 - factor * (q3 - q1), q3 + factor * (q3 - q1)
    ratio = side / max(median, 1.0)
    odd = (side < low) | (side > high)
    odd &= (ratio <= 1.0 / min_factor) | (ratio >= min_factor)
    flagged["odd_size"] = normal & odd
    scores["odd_size"] = -np.abs(np.log(np.maximum(ratio, 1e-9)))
    thresholds["odd_size"] = {
        "odd_size": factor,
        "odd_size_min_factor": min_factor,
        "median_side": float(median),
        "band": [float(low), float(high)],
    }

    grey = (split.channels == 1) | (split.colourfulness < config["grayscale"])
    colour_share = float((normal & ~grey).sum()) / max(int(normal.sum()), 1)
    min_share = config["grayscale_min_colour_share"]
    flagged["grayscale"] = normal & grey & (colour_share >= min_share)
    scores["grayscale"] = split.colourfulness.astype(np.float64)
    thresholds["grayscale"] = {
        "grayscale": config["grayscale"],
        "grayscale_min_colour_share": min_share,
        "colour_share": round(colour_share, 4),
    }
    return scores, flagged, thresholds
