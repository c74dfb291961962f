"""Saliency maps, measured: per-map statistics, faithfulness curves, a quality score, plain-language
diagnoses and overlay images.

Everything here is method-agnostic: it takes maps ``(N, H, W)`` in ``[0, 1]`` from any
``xai_method`` component and never imports a plugin. Statistics and faithfulness curves are
computed for a whole batch of maps at once, on the maps' device; overlays are numpy + Pillow.
The formulas and thresholds are documented in ``docs/xai.md``; every constant below is quoted
there and recorded in the report.

Faithfulness follows the deletion/insertion test (Petsiuk et al., RISE, BMVC 2018): pixels are
removed (replaced by the image's per-channel mean) or inserted (into that mean image) in the
order the map ranks them, and the probability of the explained class is measured after each
step. The same curves for a random ranking of the same pixels are the baseline: a map that does
not beat random is not evidence of where the model looks, however plausible it looks.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn

#: Width of the border strip, as a fraction of each side (at least one pixel per side).
BORDER_FRACTION = 0.10
#: A pixel counts towards ``coverage`` when its value is at least this fraction of the peak.
COVERAGE_LEVEL = 0.5
#: ``n_peaks`` counts the 8-connected regions at or above this fraction of the peak.
PEAK_LEVEL = 0.7
#: Connected regions (``n_peaks``, ``spatial_coherence``) are found on the map average-pooled to
#: at most this many pixels per side, so their cost does not grow with the input size.
REGION_MAX_SIDE = 32
#: A map whose range (max - min) is at most this is flat: it says nothing, and its statistics
#: are those of a uniform map.
FLAT_RANGE = 1e-6
#: A map is *faithful* when deleting pixels in its order lowers the explained class's
#: probability-AUC by at least this much more than deleting them in random order.
FAITHFUL_MARGIN = 0.05
#: Deletion plus insertion margin over random at which the faithfulness component reaches 1.
FAITHFULNESS_SCALE = 0.2
#: A class whose faithful maps score below this quality is reported as ``low_xai_quality``.
LOW_QUALITY = 0.3
#: The border strip holding at least this multiple of its area share of the saliency mass is
#: disproportionate (``background_focus_suspected``); a uniform map has ratio 1.
BORDER_RATIO_THRESHOLD = 1.5
#: Floats in one faithfulness forward chunk (images x channels x pixels), ~32 MiB.
FAITHFULNESS_MAX_ELEMENTS = 1 << 23
#: Perturbed images in one faithfulness forward pass at most (bounds the activations).
FAITHFULNESS_MAX_IMAGES = 1024
#: Smallest side of a written overlay; smaller images are enlarged by an integer factor with
#: nearest-neighbour sampling, so 8x8 digits stay crisp.
MIN_OVERLAY_SIDE = 96
#: Heat-map weight in an overlay (the image gets the rest).
OVERLAY_ALPHA = 0.5

#: How the faithfulness test scores the explained class: ``softmax`` for single-label
#: classifiers (classes compete), ``sigmoid`` for multi-label ones (each label on its own).
SCORES: tuple[str, ...] = ("softmax", "sigmoid")

#: Keys of a statistics dictionary, in report order.
STAT_KEYS: tuple[str, ...] = (
    "entropy",
    "peak_value",
    "coverage",
    "center_x",
    "center_y",
    "quadrant_tl",
    "quadrant_tr",
    "quadrant_bl",
    "quadrant_br",
    "gini",
    "n_peaks",
    "spatial_coherence",
    "edge_ratio",
    "border_ratio",
    "peak_to_mean",
    "flat",
)
#: Keys of the faithfulness numbers of one map.
FAITHFULNESS_KEYS: tuple[str, ...] = (
    "deletion_auc",
    "insertion_auc",
    "random_deletion_auc",
    "random_insertion_auc",
)


# -------------------------------------------------------------------------------------------
# Per-map statistics
# -------------------------------------------------------------------------------------------


def border_width(side: int) -> int:
    """Pixels of the border strip on one side of an image side of ``side`` pixels."""
    return max(1, round(BORDER_FRACTION * side))


def border_mask(height: int, width: int) -> np.ndarray:
    """Boolean ``(height, width)`` mask of the border strip."""
    mask = np.zeros((height, width), dtype=bool)
    rows, cols = border_width(height), border_width(width)
    mask[:rows] = mask[-rows:] = True
    mask[:, :cols] = mask[:, -cols:] = True
    return mask


def border_area_share(height: int, width: int) -> float:
    """Fraction of the image area the border strip covers (a uniform map's ``edge_ratio``)."""
    return float(border_mask(height, width).mean())


def _half_weights(size: int) -> np.ndarray:
    """Weight of each index in the first half of ``size`` (the middle index of an odd size
    counts half), so a uniform map has exactly 0.25 in each quadrant."""
    positions = np.arange(size, dtype=np.float64)
    middle = (size - 1) / 2
    return np.where(positions < middle, 1.0, np.where(positions == middle, 0.5, 0.0))


def map_statistics(maps: torch.Tensor) -> dict[str, torch.Tensor]:
    """Statistics of each map of a batch ``(N, H, W)``; every value is an ``(N,)`` float tensor.

    ``entropy`` is the Shannon entropy of the map as a distribution divided by ``log2(H*W)``
    (0: one pixel, 1: uniform); ``coverage`` the share of pixels at or above half the peak;
    ``center_x``/``center_y`` the mass-weighted centre in ``[0, 1]``; ``quadrant_*`` the mass
    shares of the four quadrants; ``gini`` the Gini coefficient of the values (0 uniform, near
    1 for one pixel); ``n_peaks`` the number of 8-connected regions at or above
    :data:`PEAK_LEVEL` of the peak and ``spatial_coherence`` the share of the above-half-peak
    pixels in the largest such region (both on the map pooled to at most
    :data:`REGION_MAX_SIDE` per side); ``edge_ratio`` the mass share in the border strip
    (:func:`border_width`) and ``border_ratio`` that share divided by the strip's area share;
    ``peak_to_mean`` the peak over the mean; ``flat`` 1 for a flat map (statistics of a uniform
    map) and 0 otherwise. ``peak_value`` is the map's maximum as given.
    """
    import torch

    count, height, width = maps.shape
    pixels = height * width
    values = torch.nan_to_num(maps.detach().float(), nan=0.0).clamp(0.0, 1.0)
    flat_values = values.reshape(count, pixels)
    peak_value = flat_values.amax(dim=1)
    flat = (peak_value - flat_values.amin(dim=1)) <= FLAT_RANGE
    effective = torch.where(flat[:, None], torch.ones_like(flat_values), flat_values)
    peak = effective.amax(dim=1)
    total = effective.sum(dim=1)
    share = effective / total[:, None]
    grid = share.view(count, height, width)

    if pixels > 1:
        entropy = -torch.special.xlogy(share, share).sum(dim=1) / math.log(pixels)
    else:
        entropy = torch.zeros(count, device=maps.device)
    coverage = (effective >= COVERAGE_LEVEL * peak[:, None]).float().mean(dim=1)

    def axis(size: int) -> torch.Tensor:
        if size == 1:
            return torch.full((1,), 0.5, device=maps.device)
        return torch.linspace(0.0, 1.0, size, device=maps.device)

    center_x = (grid.sum(dim=1) * axis(width)).sum(dim=1)
    center_y = (grid.sum(dim=2) * axis(height)).sum(dim=1)
    top = torch.as_tensor(_half_weights(height), dtype=torch.float32, device=maps.device)
    left = torch.as_tensor(_half_weights(width), dtype=torch.float32, device=maps.device)
    quadrants = {
        "quadrant_tl": torch.einsum("nhw,h,w->n", grid, top, left),
        "quadrant_tr": torch.einsum("nhw,h,w->n", grid, top, 1 - left),
        "quadrant_bl": torch.einsum("nhw,h,w->n", grid, 1 - top, left),
        "quadrant_br": torch.einsum("nhw,h,w->n", grid, 1 - top, 1 - left),
    }

    ordered = torch.sort(effective, dim=1).values
    ranks = torch.arange(1, pixels + 1, device=maps.device, dtype=torch.float32)
    gini = ((2 * ranks - pixels - 1) * ordered).sum(dim=1) / (pixels * total)
    gini = gini.clamp(0.0, 1.0)

    strip = torch.as_tensor(border_mask(height, width), device=maps.device)
    edge_ratio = (grid * strip).sum(dim=(1, 2))
    border_ratio = edge_ratio / border_area_share(height, width)
    peak_to_mean = peak / (total / pixels)
    n_peaks, coherence = _regions(effective.view(count, height, width))
    return {
        "entropy": entropy.clamp(0.0, 1.0),
        "peak_value": peak_value,
        "coverage": coverage,
        "center_x": center_x,
        "center_y": center_y,
        **quadrants,
        "gini": gini,
        "n_peaks": n_peaks,
        "spatial_coherence": coherence,
        "edge_ratio": edge_ratio,
        "border_ratio": border_ratio,
        "peak_to_mean": peak_to_mean,
        "flat": flat.float(),
    }


def _regions(maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n_peaks, spatial_coherence)`` of non-flat-or-uniform maps ``(N, H, W)``.

    Connected components by label propagation: every pixel of a mask starts with its own label
    and takes the largest label among its 8 neighbours inside the mask until nothing changes;
    each component ends with the label of its last pixel. All maps and both masks at once.
    """
    import torch
    import torch.nn.functional as F

    count, height, width = maps.shape
    size = (min(height, REGION_MAX_SIDE), min(width, REGION_MAX_SIDE))
    pooled = maps[:, None]
    if size != (height, width):
        pooled = F.adaptive_avg_pool2d(pooled, size)
    pooled = pooled / pooled.amax(dim=(2, 3), keepdim=True).clamp_min(1e-12)
    masks = torch.cat([pooled >= PEAK_LEVEL, pooled >= COVERAGE_LEVEL]).float()
    pixels = size[0] * size[1]
    identity = torch.arange(1, pixels + 1, device=maps.device, dtype=torch.float32)
    identity = identity.view(1, 1, *size)
    labels = identity * masks
    for _ in range(pixels):
        spread = F.max_pool2d(labels, kernel_size=3, stride=1, padding=1) * masks
        if torch.equal(spread, labels):
            break
        labels = spread
    roots = ((labels == identity) & (masks > 0)).flatten(1).sum(dim=1).float()
    sizes = torch.zeros((2 * count, pixels + 1), device=maps.device)
    sizes.scatter_add_(1, labels.flatten(1).long(), torch.ones_like(sizes[:, 1:]))
    largest = sizes[:, 1:].amax(dim=1)
    area = masks.flatten(1).sum(dim=1).clamp_min(1.0)
    return roots[:count], (largest / area)[count:]


# -------------------------------------------------------------------------------------------
# Faithfulness
# -------------------------------------------------------------------------------------------


def tie_keys(seed: int, rows: np.ndarray, pixels: int) -> np.ndarray:
    """Seeded pseudo-random int64 keys ``(len(rows), pixels)``: the random ranking of each
    sample's pixels, a pure function of ``(seed, row, pixel)`` (so it does not depend on the
    batch a sample lands in). SplitMix64 over the three numbers, vectorised."""
    rows = np.asarray(rows, dtype=np.uint64).reshape(-1, 1)
    pixel = np.arange(pixels, dtype=np.uint64).reshape(1, -1)
    with np.errstate(over="ignore"):
        state = np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
        state = (
            state ^ (rows * np.uint64(0xBF58476D1CE4E5B9)) ^ (pixel * np.uint64(0xD6E8FEB86659FD93))
        )
        state = state + np.uint64(0x9E3779B97F4A7C15)
        state = (state ^ (state >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        state = (state ^ (state >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        state = state ^ (state >> np.uint64(31))
    return state.view(np.int64)


def _ranks(order: torch.Tensor) -> torch.Tensor:
    """Rank of every pixel (0 = first) from an ordering ``(N, P)`` of pixel indices."""
    import torch

    ranks = torch.empty_like(order)
    positions = torch.arange(order.shape[1], device=order.device).expand_as(order)
    return ranks.scatter_(1, order, positions)


def faithfulness_curves(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    keys: torch.Tensor,
    *,
    steps: int,
    max_elements: int = FAITHFULNESS_MAX_ELEMENTS,
    score: str = "softmax",
) -> torch.Tensor:
    """Deletion and insertion curves of each map and of a random map, ``(N, 4, steps + 1)``:
    ``[deletion, insertion, random deletion, random insertion]``, each the probability of the
    sample's target class after removing (deletion) or keeping (insertion) the first
    ``k / steps`` of its pixels, ``k = 0 .. steps``.

    ``score`` (:data:`SCORES`) turns the logits into that probability: ``"softmax"`` over the
    classes (single-label), or ``"sigmoid"`` of the target's own logit (multi-label, where each
    label is a separate yes/no decision and another label's logit must not change the score).

    Removed pixels take the image's per-channel mean (for normalised inputs, a flat grey).
    Pixels are ranked by map value, ties broken by ``keys`` (``(N, P)`` int64, see
    :func:`tie_keys`), which alone rank the random map; so a flat map *is* the random map.
    The perturbed images of a chunk of samples go through the model in one forward pass
    (at most ``max_elements`` floats and :data:`FAITHFULNESS_MAX_IMAGES` images, but always
    all of one sample's); the caller holds the model in eval mode.
    """
    import torch

    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}, not {score!r}")
    count, channels, height, width = images.shape
    pixels = height * width
    random_order = torch.argsort(keys, dim=1)
    ranked = maps.reshape(count, pixels).float().gather(1, random_order)
    method_order = random_order.gather(
        1, torch.argsort(ranked, dim=1, descending=True, stable=True)
    )
    ranks = torch.stack([_ranks(method_order), _ranks(random_order)], dim=1)  # (N, 2, P)
    # Pixels removed (deletion) or kept (insertion) at the inner steps k = 1 .. steps - 1.
    counts = torch.tensor(
        [math.floor(k * pixels / steps + 0.5) for k in range(1, steps)],
        dtype=torch.long,
        device=images.device,
    )
    inner = counts.numel()
    variants = 2 + 4 * inner
    per_sample = variants * channels * pixels
    chunk = max(1, min(max_elements // per_sample, FAITHFULNESS_MAX_IMAGES // variants))
    flat_images = images.reshape(count, channels, pixels)
    baseline = flat_images.mean(dim=2, keepdim=True).expand_as(flat_images)
    parts = []
    with torch.inference_mode():
        for start in range(0, count, chunk):
            stop = min(count, start + chunk)
            x = flat_images[start:stop, None, None]  # (g, 1, 1, C, P)
            base = baseline[start:stop, None, None]
            # removed[g, order, step, 1, P]: pixel is among the first counts[step] of the order.
            removed = (ranks[start:stop, :, None, :] < counts[None, None, :, None])[:, :, :, None]
            deleted = torch.where(removed, base, x)  # (g, 2, S, C, P)
            inserted = torch.where(removed, x, base)
            batch = torch.cat(
                [
                    flat_images[start:stop, None],
                    baseline[start:stop, None],
                    deleted.flatten(1, 2),
                    inserted.flatten(1, 2),
                ],
                dim=1,
            ).reshape(-1, channels, height, width)
            logits = model(batch).float().view(stop - start, variants, -1)
            index = targets[start:stop].view(-1, 1, 1).expand(-1, variants, 1)
            if score == "sigmoid":
                parts.append(torch.sigmoid(logits.gather(2, index)[..., 0]))
            else:
                parts.append(torch.softmax(logits, dim=2).gather(2, index)[..., 0])
    scores = torch.cat(parts)  # (N, variants)
    original, blank = scores[:, :1], scores[:, 1:2]
    deleted_scores = scores[:, 2 : 2 + 2 * inner].view(count, 2, inner)
    inserted_scores = scores[:, 2 + 2 * inner :].view(count, 2, inner)
    curves = []
    for order in (0, 1):
        curves.append(torch.cat([original, deleted_scores[:, order], blank], dim=1))
        curves.append(torch.cat([blank, inserted_scores[:, order], original], dim=1))
    return torch.stack(curves, dim=1)


def curve_auc(curves: np.ndarray) -> np.ndarray:
    """Area under curves sampled at ``k / steps``, ``k = 0 .. steps`` (trapezoid rule)."""
    steps = curves.shape[-1] - 1
    return (curves.sum(axis=-1) - 0.5 * (curves[..., 0] + curves[..., -1])) / steps


# -------------------------------------------------------------------------------------------
# Quality and diagnosis
# -------------------------------------------------------------------------------------------


def quality_score(deletion_margin: float, insertion_margin: float, focus: float) -> float:
    """The quality of a set of maps in ``[0, 1]``:
    ``faithfulness * (0.5 + 0.5 * focus)`` with
    ``faithfulness = clip((deletion_margin + insertion_margin) / (2 * FAITHFULNESS_SCALE), 0, 1)``.

    ``deletion_margin`` is the mean of ``random_deletion_auc - deletion_auc``,
    ``insertion_margin`` the mean of ``insertion_auc - random_insertion_auc`` and ``focus`` the
    mean Gini coefficient. Maps no better than random score 0 however focused they look, and a
    uniform map is the random map; accuracy plays no part.
    """
    return faithfulness_component(deletion_margin, insertion_margin) * (0.5 + 0.5 * _clip(focus))


def faithfulness_component(deletion_margin: float, insertion_margin: float) -> float:
    """``clip((deletion_margin + insertion_margin) / (2 * FAITHFULNESS_SCALE), 0, 1)``."""
    return _clip((deletion_margin + insertion_margin) / (2 * FAITHFULNESS_SCALE))


def _clip(value: float) -> float:
    if not math.isfinite(value):
        return 0.0
    return min(1.0, max(0.0, value))


def describe_attention(stats: Mapping[str, float | None]) -> str:
    """Where a map (or a mean of maps) puts its mass, in words: location, then spread."""
    coverage = float(stats.get("coverage") or 0.0)
    border = float(stats.get("border_ratio") or 0.0)
    edge = float(stats.get("edge_ratio") or 0.0)
    if stats.get("flat") is not None and float(stats["flat"] or 0.0) >= 0.5:
        return "flat (the map marks no pixel as more important than another)"
    if border >= BORDER_RATIO_THRESHOLD:
        where = f"on the image border ({edge:.0%} of the saliency in the border strip)"
    else:
        x = float(stats.get("center_x") or 0.5)
        y = float(stats.get("center_y") or 0.5)
        if abs(x - 0.5) < 0.15 and abs(y - 0.5) < 0.15:
            where = "on the centre"
        else:
            vertical = "upper" if y < 0.35 else "lower" if y > 0.65 else ""
            horizontal = "left" if x < 0.35 else "right" if x > 0.65 else ""
            part = "-".join(word for word in (vertical, horizontal) if word) or "off-centre"
            where = f"on the {part} part"
    if coverage < 0.05:
        spread = f"tightly focused ({coverage:.0%} of the image above half the peak)"
    elif coverage > 0.4:
        spread = f"diffuse ({coverage:.0%} of the image above half the peak)"
    else:
        spread = f"moderately spread ({coverage:.0%} of the image above half the peak)"
    return f"{where}, {spread}"


def describe_shift(correct: Mapping[str, float], confused: Mapping[str, float]) -> str:
    """One clause on what differs between two mean statistics dictionaries."""
    changes = []
    coverage_change = confused["coverage"] - correct["coverage"]
    if abs(coverage_change) >= 0.05:
        changes.append(
            f"{'more spread' if coverage_change > 0 else 'more concentrated'} "
            f"(coverage {correct['coverage']:.0%} -> {confused['coverage']:.0%})"
        )
    dx = confused["center_x"] - correct["center_x"]
    dy = confused["center_y"] - correct["center_y"]
    if max(abs(dx), abs(dy)) >= 0.08:
        vertical = "up" if dy < -0.04 else "down" if dy > 0.04 else ""
        horizontal = "left" if dx < -0.04 else "right" if dx > 0.04 else ""
        direction = "-".join(word for word in (vertical, horizontal) if word)
        changes.append(f"shifted {direction} by {math.hypot(dx, dy):.0%} of the image")
    edge_change = confused["edge_ratio"] - correct["edge_ratio"]
    if abs(edge_change) >= 0.05:
        changes.append(
            f"{'more' if edge_change > 0 else 'less'} saliency on the border "
            f"({correct['edge_ratio']:.0%} -> {confused['edge_ratio']:.0%})"
        )
    if not changes:
        return (
            "in about the same place as on correctly classified images "
            "(no change above the thresholds)"
        )
    return ", ".join(changes)


def faithfulness_sentence(summary: Mapping[str, Any], *, multilabel: bool = False) -> str:
    """The faithfulness verdict of a class summary (see :func:`class_insight`); with
    ``multilabel`` the score is the explained label's sigmoid probability."""
    deletion = summary["deletion_auc"]
    random_deletion = summary["random_deletion_auc"]
    faithful_maps = summary["faithful_maps"]
    count = summary["sample_count"]
    explained = "label's sigmoid probability" if multilabel else "class's probability"
    if summary["faithful"]:
        return (
            "They are faithful: removing the most salient pixels first lowers the explained "
            f"{explained} faster than removing random pixels (deletion AUC "
            f"{deletion:.3f} vs {random_deletion:.3f} for random maps; {faithful_maps} of "
            f"{count} maps beat random by at least {FAITHFUL_MARGIN})."
        )
    return (
        "They are NOT faithful: removing the most salient pixels first lowers the explained "
        f"{explained} no faster than removing random pixels (deletion AUC "
        f"{deletion:.3f} vs {random_deletion:.3f} for random maps; {faithful_maps} of {count} "
        "maps beat random by the margin), so they do not show where the model looks."
    )


def class_insight(
    name: str, method: str, summary: Mapping[str, Any], *, multilabel: bool = False
) -> str:
    """Plain-language paragraph on the maps of one class (the ``xai_insights`` value); with
    ``multilabel``, on the maps of one label over images where it is predicted present."""
    stats = summary["stats"]
    if multilabel:
        subject = (
            f"For images where label {name} is predicted present, {summary['sample_count']} "
            f"{method} maps explain that label's logit."
        )
    else:
        subject = (
            f"For images of class {name}, {summary['sample_count']} {method} maps explain the "
            "predicted class."
        )
    text = f"{subject} {faithfulness_sentence(summary, multilabel=multilabel)}"
    if summary["faithful"]:
        text += (
            f" Attention is {describe_attention(stats)}; the border strip holds "
            f"{stats['edge_ratio']:.0%} of the saliency ({stats['border_ratio']:.1f}x its "
            f"{summary['border_area_share']:.0%} area share). Quality {summary['quality']:.2f} "
            "of 1."
        )
    return text


def class_severity(summary: Mapping[str, Any]) -> str:
    """``critical``: the maps are not faithful; ``warning``: faithful but low quality or
    border-focused; ``ok`` otherwise."""
    if not summary["faithful"]:
        return "critical"
    if summary["quality"] < LOW_QUALITY or summary["background_focus"]:
        return "warning"
    return "ok"


def class_suggestion(summary: Mapping[str, Any]) -> str:
    """What to do about a class's maps, one or two sentences ("" when nothing)."""
    if not summary["faithful"]:
        return (
            "Do not read these maps as evidence; try another method (--xai-method) or target "
            "layer (--xai-layer), and trust a map only where its deletion curve beats random."
        )
    if summary["background_focus"]:
        return (
            "The model may rely on border or background cues: check the overlays for a "
            "shortcut (frames, watermarks, backgrounds that differ by class) and remove it "
            "from the data or add random-crop/padding augmentation."
        )
    if summary["quality"] < LOW_QUALITY:
        return (
            "The maps beat random only slightly or are diffuse: the evidence for this class is "
            "weak; compare with another method before drawing conclusions."
        )
    return ""


# -------------------------------------------------------------------------------------------
# Overlays
# -------------------------------------------------------------------------------------------


def _jet_lut() -> np.ndarray:
    """256 x 3 uint8 colours of the jet colormap (blue - cyan - yellow - red)."""
    x = np.linspace(0.0, 1.0, 256)
    red = np.clip(1.5 - np.abs(4 * x - 3), 0, 1)
    green = np.clip(1.5 - np.abs(4 * x - 2), 0, 1)
    blue = np.clip(1.5 - np.abs(4 * x - 1), 0, 1)
    return np.round(np.stack([red, green, blue], axis=1) * 255).astype(np.uint8)


JET = _jet_lut()


def display_images(
    images: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None
) -> np.ndarray:
    """Model-ready images ``(N, C, H, W)`` back to uint8 RGB ``(N, H, W, 3)``: the input
    normalisation undone, grey (or two-channel) images shown as grey, values clipped to [0, 1]."""
    import torch

    values = images.detach().float().cpu()
    channels = values.shape[1]
    if mean is not None and std is not None:
        values = values * torch.tensor(std).view(1, -1, 1, 1) + torch.tensor(mean).view(1, -1, 1, 1)
    values = values[:, :1].expand(-1, 3, -1, -1) if channels != 3 else values
    pixels = torch.round(values.clamp(0.0, 1.0) * 255).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous().numpy()


def map_to_uint8(maps: torch.Tensor) -> np.ndarray:
    """Maps ``(N, H, W)`` in ``[0, 1]`` to uint8 ``(N, H, W)`` on the CPU."""
    import torch

    values = torch.nan_to_num(maps.detach().float(), nan=0.0).clamp(0.0, 1.0)
    return torch.round(values * 255).to(torch.uint8).cpu().numpy()


def enlarge(image: np.ndarray) -> np.ndarray:
    """``image`` ``(H, W, ...)`` enlarged by the smallest integer factor that makes its shorter
    side at least :data:`MIN_OVERLAY_SIDE` (nearest neighbour); unchanged if already large."""
    side = min(image.shape[0], image.shape[1])
    factor = -(-MIN_OVERLAY_SIDE // max(side, 1))
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def overlay(image: np.ndarray, saliency: np.ndarray) -> np.ndarray:
    """The jet heat map of ``saliency`` (uint8 ``(H, W)``) blended over ``image`` (uint8
    ``(H, W, 3)``), :data:`OVERLAY_ALPHA` of heat, as uint8 ``(H, W, 3)``."""
    heat = JET[saliency].astype(np.float32)
    blended = (1 - OVERLAY_ALPHA) * image.astype(np.float32) + OVERLAY_ALPHA * heat
    return np.round(blended).astype(np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 RGB image, enlarged for display; the same array always gives the
    same bytes (no metadata, fixed compression)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(enlarge(image))).save(
        buffer, format="PNG", compress_level=6
    )
    return buffer.getvalue()


def mean_overlay(images: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """The overlay of a set: the mean image under the mean map stretched to ``[0, 1]``.

    :param images: uint8 ``(N, H, W, 3)``; :param maps: uint8 ``(N, H, W)``.
    """
    image = np.round(images.astype(np.float64).mean(axis=0)).astype(np.uint8)
    saliency = maps.astype(np.float64).mean(axis=0)
    peak = saliency.max()
    scaled = saliency / peak if peak > 0 else saliency
    return overlay(image, np.round(scaled * 255).astype(np.uint8))
