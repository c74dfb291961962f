"""Data quality of an analysis: one decode pass, the check plugins, the report sections.

The core knows no issue type. It

1. builds a :class:`DataQualityView`: ONE decode pass per split (the evaluated split and, when
   the data has one, the training split), batched and parallel, that computes once per image what
   every check needs (size, mode, file size, an exact hash of the decoded pixels, a perceptual
   hash, a small grey thumbnail, brightness, contrast, Laplacian variance, entropy,
   colourfulness, and why a file could not be read), plus the model's outputs mapped to dataset
   positions;
2. runs every ``data_quality_check`` component over the view, with its thresholds from
   ``config`` (validated against the check's ``defaults``); a check that raises is recorded and
   the others still run, a check that cannot run raises :class:`CheckSkipped` with the reason;
3. assembles ``data_quality`` (warnings, duplicate groups, a one-sentence summary),
   ``data_quality_summary`` (flat numbers for tools), the failure patterns the checks attach to
   their issues, and PNG thumbnails of flagged images under ``artifacts/data_quality/``.

What a check returns, what the view holds and every default threshold of the built-in checks are
in ``docs/data-quality.md``.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from numbers import Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from bnnr_core.analysis.progress import Progress
from bnnr_core.errors import BnnrError

if TYPE_CHECKING:
    from bnnr_core.analysis.data import EvalData, SplitSource
    from bnnr_core.analysis.evaluation import Evaluation
    from bnnr_core.plugins import PluginHost

#: Component kind of the checks.
CHECK_KIND = "data_quality_check"
#: Severities of a data-quality issue, most severe first.
ISSUE_SEVERITIES: tuple[str, ...] = ("critical", "warning", "info")
#: Indices, sample ids and details listed per issue (``count`` is always the true total).
INDEX_CAP = 50
#: Duplicate groups listed, and members listed per group (``size`` is always the true size).
GROUP_CAP = 50
GROUP_MEMBER_CAP = 50
#: Thumbnails written per issue, and for the first groups, per group.
THUMBNAILS_PER_ISSUE = 8
THUMBNAIL_GROUPS = 10
THUMBNAILS_PER_GROUP = 6
#: A thumbnail's longer side is brought into this range (small images are enlarged, pixelated).
THUMBNAIL_MIN_SIDE = 64
THUMBNAIL_MAX_SIDE = 128
#: Statistics are computed on images box-resampled to at most this many pixels per side.
STATS_SIDE = 64
#: Side of the grey image the perceptual hash is computed from, and of the stored thumbnail.
HASH_SIDE = 32
THUMB_SIDE = 16
#: Decoding threads at most, and files each thread must have (fewer stay in this thread).
MAX_WORKERS = 8
MIN_FILES_PER_WORKER = 256
#: Files per decoding task, and array images per statistics task.
FILE_CHUNK = 128
ARRAY_CHUNK = 1024
#: Embedding k-nearest-neighbour searches are exact up to this many samples; above, the
#: neighbours are searched among a seeded random subset of this size.
MAX_EXACT_NEIGHBOUR_SAMPLES = 20_000
#: How the perceptual hash is computed (recorded in ``analysis_scope``).
PHASH_IMPLEMENTATION = (
    "pHash: grey (ITU-R 601 luma), area-resampled to 32x32, orthonormal 2-D DCT-II, the 8x8 "
    "lowest frequencies compared with their median, 64 bits, row-major, most significant first"
)
#: Issue keys a check must give, and those the core accepts besides.
REQUIRED_ISSUE_KEYS = ("type", "severity", "count", "message")
OPTIONAL_ISSUE_KEYS = ("split", "indices", "thresholds", "details", "groups", "summary", "pattern")

_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


class CheckSkipped(Exception):
    """Raised by a check that cannot run on this view (e.g. it needs a model); the message,
    one sentence, says why and is recorded in ``analysis_scope``."""


@attrs.frozen(kw_only=True)
class DataQualityOptions:
    """How to run the data-quality step.

    :param config: thresholds per check, ``{"<check>": {"<threshold>": value}}``; an unknown
        check or threshold raises :class:`BnnrError`.
    :param workers: decoding threads (``0``: chosen from ``os.cpu_count()``, at most
        :data:`MAX_WORKERS`).
    :param max_samples: images scanned per split at most (a seeded random subset); ``None``: all.
    :param seed: seed of that subset and of anything random in the checks.
    """

    config: Mapping[str, Any] = attrs.field(factory=dict)
    workers: int = 0
    max_samples: int | None = None
    seed: int = 0


@attrs.frozen(kw_only=True)
class DataQualityResult:
    """What :func:`run_data_quality` returns.

    ``sections`` holds exactly ``data_quality`` and ``data_quality_summary``; ``patterns`` the
    failure patterns (section ``data_quality``, each passing
    :func:`bnnr_core.analysis.findings.check_pattern`, stamped with ``detector``/``plugin``);
    ``scope`` the ``analysis_scope`` entry; ``files`` the thumbnails written.
    """

    sections: dict[str, Any]
    patterns: list[dict[str, Any]]
    scope: dict[str, Any]
    files: list[Path]


# -------------------------------------------------------------------------------------------
# The view
# -------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True, eq=False)
class SplitScan:
    """Per-image facts of one split, one row per scanned image (arrays of length ``n``).

    Unreadable rows have ``readable`` false, ``error`` set and zeros elsewhere. Pixel statistics
    are on a ``[0, 1]`` scale unless noted, computed on the image box-resampled to at most
    :data:`STATS_SIDE` pixels per side.
    """

    #: ``"eval"`` (the evaluated split) or ``"train"``.
    name: str
    #: The split's own name in the data (``val``, ``test``, ``eval``, ``train``, ...).
    source_name: str
    #: Dataset position of each row (sorted; all positions unless ``max_samples`` applied).
    positions: np.ndarray
    #: Labels of each row, in the data's class order: ``(n,)`` class indices, or ``(n, C)``
    #: int64 multi-hot label sets for multi-label data (a row of zeros: no label present).
    labels: np.ndarray
    sample_ids: tuple[str, ...]
    #: File of each row, or ``None`` for array data sets.
    files: tuple[Path, ...] | None
    readable: np.ndarray
    #: ``""`` or why the file could not be read (``"<Exception>: <message>"``).
    error: tuple[str, ...]
    #: The file ends early (a truncated download or copy).
    truncated: np.ndarray
    #: Original width, height and channels (1 grey, 3 colour; alpha dropped).
    width: np.ndarray
    height: np.ndarray
    channels: np.ndarray
    #: PIL mode as stored (``"RGB"``, ``"L"``, ``"P"``, ...) or ``"array"``.
    mode: tuple[str, ...]
    #: File size in bytes; ``-1`` for array data sets.
    file_bytes: np.ndarray
    #: 16-byte BLAKE2b digest of the decoded pixels and their shape (``S16``).
    pixel_hash: np.ndarray
    #: 64-bit perceptual hash (:data:`PHASH_IMPLEMENTATION`), ``uint64``.
    phash: np.ndarray
    #: ``(n, 16, 16)`` uint8 grey thumbnail (area-resampled), for verifying near duplicates.
    thumb: np.ndarray
    #: Mean, 5th and 99th percentile of perceived brightness
    #: ``sqrt(0.241 R² + 0.691 G² + 0.068 B²)`` (cleanvision's definition).
    brightness: np.ndarray
    brightness_p05: np.ndarray
    brightness_p99: np.ndarray
    #: Standard deviation of the grey image (RMS contrast).
    contrast: np.ndarray
    #: Variance of the 3x3 Laplacian ``8·centre − 8 neighbours`` of the grey image, on the
    #: 0..255 scale (0 for images under 3 pixels a side).
    laplacian_var: np.ndarray
    #: Shannon entropy of the 256-bin grey histogram, bits (PIL ``Image.entropy()``).
    entropy: np.ndarray
    #: Hasler–Süsstrunk colourfulness on the 0..255 scale (0 for grey images).
    colourfulness: np.ndarray

    def __len__(self) -> int:
        return int(self.positions.shape[0])


@attrs.frozen(kw_only=True, eq=False)
class ModelOutputs:
    """The model's outputs on the scanned rows of the evaluated split (aligned with them).

    Rows whose image was not evaluated (it could not be decoded, or the model gave non-finite
    outputs) have ``evaluated`` false, NaN probabilities and prediction ``-1``. Classes follow the
    model's order (``class_names``), which can differ from the data's.
    """

    task: str
    class_names: tuple[str, ...]
    evaluated: np.ndarray
    #: ``(n, C)`` probabilities.
    probabilities: np.ndarray
    #: ``(n,)`` class indices (``-1`` when not evaluated), or ``(n, C)`` multi-hot targets.
    targets: np.ndarray
    predictions: np.ndarray
    #: ``(n, D)`` penultimate-layer features (NaN rows when not evaluated), or ``None``.
    embeddings: np.ndarray | None


@attrs.frozen(kw_only=True, eq=False)
class DataQualityView:
    """Everything a check reads: the scanned splits and the model's outputs.

    ``splits`` maps ``"eval"`` (always) and ``"train"`` (when the data has a training split) to
    their :class:`SplitScan`. Issue ``indices`` are dataset positions in the issue's split
    (``SplitScan.positions``), never row numbers.
    """

    splits: Mapping[str, SplitScan]
    #: The data's class names (``SplitScan.labels`` index them, or are their columns).
    class_names: tuple[str, ...]
    #: ``None`` without an evaluation.
    model: ModelOutputs | None
    seed: int = 0
    _cache: dict[int, tuple[np.ndarray, np.ndarray]] = attrs.field(factory=dict, alias="cache")

    @property
    def multilabel(self) -> bool:
        """Whether the labels are ``(n, C)`` multi-hot label sets."""
        return bool(self.eval_split.labels.ndim == 2)

    @property
    def eval_split(self) -> SplitScan:
        return self.splits["eval"]

    @property
    def train_split(self) -> SplitScan | None:
        return self.splits.get("train")

    def neighbours(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest neighbours of every evaluated row in embedding space (cosine).

        :returns: ``(rows, similarity)``, both ``(n, k)``: row numbers of the neighbours (``-1``
            where there are fewer) and their cosine similarity (NaN there). Rows without
            embeddings get ``-1``/NaN throughout. Exact up to :data:`MAX_EXACT_NEIGHBOUR_SAMPLES`
            evaluated rows; above, neighbours are searched among a seeded random subset of that
            size. Computed once per ``k`` and cached.
        :raises CheckSkipped: the model gave no embeddings.
        """
        if self.model is None or self.model.embeddings is None:
            raise CheckSkipped("the evaluation has no embeddings (penultimate-layer features)")
        if k not in self._cache:
            self._cache[k] = _neighbours(self.model.embeddings, self.model.evaluated, k, self.seed)
        return self._cache[k]


def build_view(
    eval_source: SplitSource,
    *,
    class_names: Sequence[str],
    train_source: SplitSource | None = None,
    evaluation: Evaluation | None = None,
    max_samples: int | None = None,
    seed: int = 0,
    workers: int = 0,
    progress: Progress | None = None,
) -> DataQualityView:
    """Scan the splits once and map the model's outputs onto the scanned rows.

    :param eval_source: the evaluated split's raw images (``EvalData.raw``); its ``labels`` are
        ``(N,)`` class indices or, for multi-label data, ``(N, C)`` multi-hot label sets with
        ``C == len(class_names)``.
    :param train_source: the training split's (labels of the same kind), or ``None``.
    :param evaluation: the cached evaluation (its ``dataset_indices`` map rows to positions).
    :raises ValueError: labels of another shape, or of different kinds in the two splits.
    """
    progress = progress or Progress()
    splits = {"eval": eval_source}
    if train_source is not None:
        splits["train"] = train_source
    for source in splits.values():
        _check_labels(source, eval_source, len(class_names))
    plans = {
        role: _plan(source, max_samples, seed + index, workers)
        for index, (role, source) in enumerate(splits.items())
    }
    advance = progress.batches(
        sum(len(plan.tasks) for plan in plans.values()), "checking data quality"
    )
    try:
        scans = {role: _scan(role, splits[role], plan, advance) for role, plan in plans.items()}
    finally:
        progress.done()
    model = None
    if evaluation is not None:
        model = _model_outputs(evaluation, scans["eval"].positions, len(eval_source))
    return DataQualityView(splits=scans, class_names=tuple(class_names), model=model, seed=seed)


def _check_labels(source: SplitSource, eval_source: SplitSource, classes: int) -> None:
    labels = np.asarray(source.labels)
    shape = labels.shape
    if labels.ndim not in (1, 2) or (labels.ndim == 2 and shape[1] != classes):
        raise ValueError(
            f"labels of split {source.name} have shape {shape}; expected (N,) class indices or "
            f"(N, {classes}) multi-hot label sets"
        )
    if labels.ndim != np.asarray(eval_source.labels).ndim:
        raise ValueError(f"split {source.name} and the evaluated split have different label kinds")


# -------------------------------------------------------------------------------------------
# Running the checks
# -------------------------------------------------------------------------------------------


def run_data_quality(
    *,
    host: PluginHost,
    data: EvalData,
    evaluation: Evaluation | None,
    options: DataQualityOptions,
    artifacts_dir: Path | None,
    progress: Progress | None = None,
) -> DataQualityResult:
    """Run every installed data-quality check over ``data`` and assemble the report sections.

    Thumbnails go to ``artifacts_dir/data_quality/``; the report names them relative to the
    output folder (``artifacts/data_quality/...``). Without ``artifacts_dir`` nothing is written.

    :raises BnnrError: ``options.config`` names a check that is not installed or a threshold the
        check does not have, or gives a value of the wrong type.
    """
    if options.max_samples is not None and options.max_samples < 1:
        raise BnnrError(f"max_samples must be at least 1, not {options.max_samples}")
    checks, thresholds, errors = _build_checks(host, options.config)
    empty: dict[str, Any] = {"data_quality": {}, "data_quality_summary": {}}
    if not host.available(CHECK_KIND):
        scope = _scope("skipped", "no data-quality check plugin is installed", [], {}, {}, [])
        return DataQualityResult(sections=empty, patterns=[], scope=scope, files=[])
    if not checks:
        scope = _scope("partial", "no data-quality check could be built", [], {}, {}, errors)
        return DataQualityResult(sections=empty, patterns=[], scope=scope, files=[])

    sources = {"eval": data.raw, "train": data.train_source()}
    view = build_view(
        data.raw,
        class_names=data.class_names,
        train_source=sources["train"],
        evaluation=evaluation,
        max_samples=options.max_samples,
        seed=options.seed,
        workers=options.workers,
        progress=progress,
    )
    issues: list[dict[str, Any]] = []
    ran: list[str] = []
    skipped: dict[str, str] = {}
    for name, (check, plugin) in checks.items():
        try:
            found = list(check.run(view, config=thresholds[name]))
        except CheckSkipped as exc:
            skipped[name] = str(exc)
            continue
        except Exception as exc:  # a plugin bug must not cost the user the analysis
            errors.append(f"check {name!r} ({plugin}) failed: {_reason(exc)}")
            continue
        ran.append(name)
        for raw in found:
            try:
                issues.append(_check_issue(raw, name, plugin, view))
            except ValueError as exc:
                errors.append(f"check {name!r} ({plugin}) returned a bad issue: {exc}")

    patterns = _patterns(issues, errors)
    sections, files = _sections(view, sources, issues, thresholds, ran, artifacts_dir)
    counts = {role: len(scan) for role, scan in view.splits.items()}
    reason = f"{len(ran)} checks over " + " and ".join(
        f"{count} {'evaluation' if role == 'eval' else 'training'} images"
        for role, count in counts.items()
    )
    scope = _scope("partial" if errors else "ok", reason, ran, skipped, thresholds, errors)
    scope["scanned"] = counts
    scope["perceptual_hash"] = PHASH_IMPLEMENTATION
    return DataQualityResult(sections=sections, patterns=patterns, scope=scope, files=files)


def validate_config(host: PluginHost, config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The thresholds every installed check would run with under ``config``, without reading
    any image: lets a command reject a bad configuration before the model runs.

    :raises BnnrError: as :func:`run_data_quality` for a bad ``config``.
    """
    return _build_checks(host, config)[1]


def _build_checks(
    host: PluginHost, config: Mapping[str, Any]
) -> tuple[dict[str, tuple[Any, str]], dict[str, dict[str, Any]], list[str]]:
    """Every installed check built (with its plugin), its thresholds, and the build errors."""
    names = host.available(CHECK_KIND)
    unknown = sorted(set(config) - set(names))
    if unknown:
        raise BnnrError(
            f"data-quality configuration names unknown check(s) {', '.join(unknown)}; "
            f"installed checks: {', '.join(names) or 'none'}"
        )
    errors: list[str] = []
    checks: dict[str, tuple[Any, str]] = {}
    for name in names:
        component = host.component(CHECK_KIND, name)
        try:
            checks[name] = (component.create(), component.plugin)
        except Exception as exc:  # a plugin bug must not cost the user the analysis
            errors.append(f"check {name!r} ({component.plugin}) failed to build: {_reason(exc)}")
    thresholds = {
        name: resolve_config(name, getattr(check, "defaults", {}), config.get(name, {}))
        for name, (check, _) in checks.items()
    }
    return checks, thresholds, errors


def resolve_config(name: str, defaults: Mapping[str, Any], given: Any) -> dict[str, Any]:
    """``defaults`` updated with ``given``, the thresholds a user set for check ``name``.

    :raises BnnrError: ``given`` is not a mapping, names a threshold the check does not have, or
        gives a value of another type than the default (a number for a number, a boolean for a
        boolean); numbers must be finite.
    """
    if not isinstance(given, Mapping):
        raise BnnrError(
            f"data-quality configuration of check {name!r} must be a mapping of thresholds, "
            f"not {type(given).__name__}"
        )
    resolved = dict(defaults)
    for key, value in given.items():
        if key not in defaults:
            known = ", ".join(sorted(defaults)) or "none"
            raise BnnrError(
                f"data-quality check {name!r} has no threshold {key!r}; its thresholds: {known}"
            )
        default = defaults[key]
        if isinstance(default, bool) or isinstance(value, bool):
            valid = isinstance(default, bool) and isinstance(value, bool)
        elif isinstance(default, Real):
            valid = isinstance(value, Real) and bool(np.isfinite(float(value)))
            valid = valid and (not isinstance(default, int) or float(value).is_integer())
            value = (int(value) if isinstance(default, int) else float(value)) if valid else value
        else:
            valid = isinstance(value, type(default))
        if not valid:
            raise BnnrError(
                f"data-quality threshold {name}.{key} must be like its default {default!r}, "
                f"not {value!r}"
            )
        resolved[key] = value
    return resolved


def _scope(
    status: str,
    reason: str,
    checks: list[str],
    skipped: Mapping[str, str],
    thresholds: Mapping[str, Any],
    errors: list[str],
) -> dict[str, Any]:
    return {
        "status": status,
        "reason": reason,
        "checks": list(checks),
        "skipped": dict(skipped),
        "errors": list(errors),
        "thresholds": {name: dict(values) for name, values in thresholds.items()},
    }


def _check_issue(raw: Any, check: str, plugin: str, view: DataQualityView) -> dict[str, Any]:
    """Validate one issue from a check; a clean copy with ``check`` and ``plugin`` added."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"expected a dict, got {type(raw).__name__}")
    missing = [key for key in REQUIRED_ISSUE_KEYS if key not in raw]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(missing)}")
    kind, severity, count = raw["type"], raw["severity"], raw["count"]
    if not isinstance(kind, str) or not kind:
        raise ValueError("'type' must be a non-empty string")
    if severity not in ISSUE_SEVERITIES:
        raise ValueError(f"{kind}: 'severity' is {severity!r}, not one of critical, warning, info")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"{kind}: 'count' must be an integer >= 0")
    split = raw.get("split", "eval")
    if split not in view.splits:
        raise ValueError(f"{kind}: 'split' is {split!r}; the view has {', '.join(view.splits)}")
    indices = [int(index) for index in raw.get("indices", ())]
    for group in raw.get("groups", ()):
        _check_group(kind, group, view)
    summary = _plain(raw.get("summary", {kind: int(count)}))
    if not isinstance(summary, dict) or not all(
        isinstance(value, (int, float)) and not isinstance(value, bool)
        for value in summary.values()
    ):
        raise ValueError(f"{kind}: 'summary' must map names to finite numbers")
    issue = {key: _plain(raw[key]) for key in OPTIONAL_ISSUE_KEYS if key in raw}
    issue.update(
        type=kind,
        check=check,
        plugin=plugin,
        split=split,
        severity=severity,
        count=int(count),
        indices=indices,
        message=str(raw["message"]),
        thresholds=_plain(dict(raw.get("thresholds", {}))),
        summary=summary,
    )
    return issue


def _plain(value: Any) -> Any:
    """``value`` for strict JSON: numpy scalars and arrays as Python numbers and lists, tuples as
    lists, non-finite floats as ``None``."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _check_group(kind: str, group: Any, view: DataQualityView) -> None:
    """A duplicate group has a kind, a size and one split, index and label per member."""
    if not isinstance(group, Mapping) or group.get("kind") not in ("exact", "near"):
        raise ValueError(f"{kind}: a group must be a dict with kind 'exact' or 'near'")
    members = [group.get(key) for key in ("splits", "indices", "labels")]
    if (
        not all(isinstance(values, Sequence) for values in members)
        or len({len(values) for values in members if isinstance(values, Sequence)}) != 1
    ):
        raise ValueError(f"{kind}: a group needs splits, indices and labels of equal length")
    if not set(group["splits"]) <= set(view.splits):
        raise ValueError(f"{kind}: a group names a split the view does not have")
    if not isinstance(group.get("size"), (int, np.integer)) or "label_conflict" not in group:
        raise ValueError(f"{kind}: a group needs an integer size and label_conflict")


def _patterns(issues: list[dict[str, Any]], errors: list[str]) -> list[dict[str, Any]]:
    from bnnr_core.analysis.findings import check_pattern

    patterns = []
    for issue in issues:
        if issue.get("pattern") is None:
            continue
        try:
            pattern = check_pattern(issue["pattern"])
        except ValueError as exc:
            errors.append(f"check {issue['check']!r} ({issue['plugin']}) gave a bad pattern: {exc}")
            continue
        if pattern["section"] != "data_quality":
            errors.append(
                f"check {issue['check']!r} ({issue['plugin']}) gave a pattern of section "
                f"{pattern['section']!r}; data-quality patterns belong to 'data_quality'"
            )
            continue
        pattern["detector"] = issue["check"]
        pattern["plugin"] = issue["plugin"]
        patterns.append(pattern)
    return patterns


# -------------------------------------------------------------------------------------------
# Report sections and thumbnails
# -------------------------------------------------------------------------------------------


def _sections(
    view: DataQualityView,
    sources: Mapping[str, SplitSource | None],
    issues: list[dict[str, Any]],
    thresholds: Mapping[str, Mapping[str, Any]],
    ran: list[str],
    artifacts_dir: Path | None,
) -> tuple[dict[str, Any], list[Path]]:
    writer = _ThumbnailWriter(artifacts_dir, sources)
    ids = _SampleIds(sources)
    issues = sorted(
        issues, key=lambda issue: (ISSUE_SEVERITIES.index(issue["severity"]), -issue["count"])
    )
    groups = [group for issue in issues for group in issue.get("groups", ())]
    warnings_out = []
    for issue in issues:
        split = issue["split"]
        listed = issue["indices"][:INDEX_CAP]
        entry = {
            "type": issue["type"],
            "check": issue["check"],
            "split": split,
            "severity": issue["severity"],
            "count": issue["count"],
            "indices": listed,
            "sample_ids": [ids(split, index) for index in listed],
            "index_cap": INDEX_CAP,
            "message": issue["message"],
            "thresholds": issue["thresholds"],
            "thumbnail_paths": writer.many(split, listed[:THUMBNAILS_PER_ISSUE]),
        }
        if "details" in issue:
            entry["details"] = list(issue["details"])[:INDEX_CAP]
        warnings_out.append(entry)
    listed_groups = []
    for number, group in enumerate(groups[:GROUP_CAP]):
        members = list(zip(group["splits"], group["indices"], strict=True))[:GROUP_MEMBER_CAP]
        entry = {
            "kind": group["kind"],
            "size": int(group["size"]),
            "indices": [index for _, index in members],
            "splits": [split for split, _ in members],
            "sample_ids": [ids(split, index) for split, index in members],
            "labels": list(group["labels"])[:GROUP_MEMBER_CAP],
            "label_conflict": bool(group["label_conflict"]),
            "thumbnail_paths": [],
        }
        if number < THUMBNAIL_GROUPS:
            entry["thumbnail_paths"] = [
                path
                for split, index in members[:THUMBNAILS_PER_GROUP]
                if (path := writer.one(split, index)) is not None
            ]
        listed_groups.append(entry)

    scanned = len(view.eval_split)
    scanned_train = len(view.train_split) if view.train_split is not None else 0
    data_quality = {
        "scanned_samples": scanned,
        "scanned_train_samples": scanned_train,
        "checks": list(ran),
        "warnings": warnings_out,
        "duplicate_groups": listed_groups,
        "duplicate_group_count": len(groups),
        "group_cap": GROUP_CAP,
        "thresholds": {name: dict(values) for name, values in thresholds.items()},
        "summary": _sentence(issues, scanned, scanned_train, len(ran)),
    }
    flat: dict[str, Any] = {
        "scanned_samples": scanned,
        "scanned_train_samples": scanned_train,
        "checks_run": len(ran),
        "issue_types": len(issues),
        **{
            f"{severity}_issues": sum(issue["severity"] == severity for issue in issues)
            for severity in ISSUE_SEVERITIES
        },
        "duplicate_groups": len(groups),
        "exact_duplicate_groups": sum(group["kind"] == "exact" for group in groups),
        "near_duplicate_groups": sum(group["kind"] == "near" for group in groups),
    }
    for issue in issues:
        for key, value in issue["summary"].items():
            flat[str(key)] = flat.get(str(key), 0) + value
    return {"data_quality": data_quality, "data_quality_summary": flat}, writer.files


def _sentence(issues: list[dict[str, Any]], scanned: int, scanned_train: int, checks: int) -> str:
    images = f"{scanned} evaluation" + (f" and {scanned_train} training" if scanned_train else "")
    if not issues:
        return f"All {images} images passed {checks} data-quality checks."
    parts = [
        f"{issue['count']} {issue['type'].replace('_', ' ')}"
        + (" (train)" if issue["split"] == "train" else "")
        + f" [{issue['severity']}]"
        for issue in issues
    ]
    shown = "; ".join(parts[:5]) + (f"; and {len(parts) - 5} more" if len(parts) > 5 else "")
    return f"{len(issues)} issue type(s) in {images} images: {shown}."


class _SampleIds:
    """Sample id of ``(split, dataset position)``."""

    def __init__(self, sources: Mapping[str, SplitSource | None]) -> None:
        self.ids = {
            role: source.sample_ids for role, source in sources.items() if source is not None
        }

    def __call__(self, split: str, index: int) -> str:
        ids = self.ids.get(split, ())
        return ids[index] if 0 <= index < len(ids) else f"{split}:{index}"


class _ThumbnailWriter:
    """Writes each flagged image once as a PNG under ``<artifacts>/data_quality/``."""

    def __init__(self, root: Path | None, sources: Mapping[str, SplitSource | None]) -> None:
        self.root = root
        self.sources = sources
        self.files: list[Path] = []
        self.done: dict[tuple[str, int], str | None] = {}

    def many(self, split: str, indices: Sequence[int]) -> list[str]:
        paths = (self.one(split, index) for index in indices)
        return [path for path in paths if path is not None]

    def one(self, split: str, index: int) -> str | None:
        """The report path (relative to the output folder) of the thumbnail, written now if
        needed; ``None`` without an artifacts folder or when the image cannot be read."""
        if self.root is None:
            return None
        key = (split, int(index))
        if key not in self.done:
            self.done[key] = self._write(split, int(index))
        return self.done[key]

    def _write(self, split: str, index: int) -> str | None:
        from PIL import Image

        source = self.sources.get(split)
        if source is None or self.root is None:
            return None
        try:
            if source.arrays is not None:
                array = np.ascontiguousarray(np.moveaxis(source.arrays[index], 0, -1))
                image = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
            else:
                _, image = _open_image(str((source.files or ())[index]))
        except Exception:  # unreadable images are reported by a check, not drawn
            return None
        side = max(image.size)
        if side > THUMBNAIL_MAX_SIDE:
            image.thumbnail((THUMBNAIL_MAX_SIDE, THUMBNAIL_MAX_SIDE), Image.Resampling.BILINEAR)
        elif side < THUMBNAIL_MIN_SIDE:
            factor = -(-THUMBNAIL_MIN_SIDE // side)
            image = image.resize(
                (image.width * factor, image.height * factor), Image.Resampling.NEAREST
            )
        relative = Path("data_quality") / f"{split}_{index}.png"
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, format="PNG")
        self.files.append(target)
        return (Path(self.root.name) / relative).as_posix()


# -------------------------------------------------------------------------------------------
# Scanning
# -------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Plan:
    positions: np.ndarray
    tasks: list[np.ndarray]
    workers: int


def _plan(source: SplitSource, max_samples: int | None, seed: int, workers: int) -> _Plan:
    total = len(source)
    positions = np.arange(total, dtype=np.int64)
    if max_samples is not None and max_samples < total:
        chosen = np.random.default_rng(seed).choice(total, size=max_samples, replace=False)
        positions = np.sort(chosen).astype(np.int64)
    chunk = ARRAY_CHUNK if source.arrays is not None else FILE_CHUNK
    tasks = [positions[start : start + chunk] for start in range(0, positions.size, chunk)]
    if workers <= 0:
        workers = min(os.cpu_count() or 1, MAX_WORKERS)
    if source.arrays is not None:
        workers = 1  # vectorised numpy, no decoding to overlap: threads measured no faster
    workers = max(1, min(workers, positions.size // MIN_FILES_PER_WORKER))
    return _Plan(positions=positions, tasks=tasks, workers=workers)


def _scan(role: str, source: SplitSource, plan: _Plan, advance: Callable[[int], None]) -> SplitScan:
    def task(positions: np.ndarray) -> dict[str, Any]:
        if source.arrays is not None:
            return _scan_arrays(source.arrays[positions])
        files = source.files or ()
        return _scan_files([str(files[int(p)]) for p in positions])

    parts: list[dict[str, Any]] = []
    with warnings.catch_warnings():  # set here, once: the filters are global, not per thread
        warnings.filterwarnings("ignore", module=r"PIL\.")  # decompression-bomb, palette notes
        if plan.workers == 1:
            for positions in plan.tasks:
                parts.append(task(positions))
                advance(1)
        else:
            with ThreadPoolExecutor(max_workers=plan.workers) as pool:
                for part in pool.map(task, plan.tasks):
                    parts.append(part)
                    advance(1)
    merged = _merge(parts, len(plan.positions))
    positions = plan.positions
    files = None if source.files is None else tuple(source.files[int(p)] for p in positions)
    return SplitScan(
        name=role,
        source_name=source.name,
        positions=positions,
        labels=np.asarray(source.labels, dtype=np.int64)[positions],
        sample_ids=tuple(source.sample_ids[int(p)] for p in positions),
        files=files,
        **merged,
    )


_ARRAY_FIELDS: dict[str, Any] = {
    "readable": np.bool_,
    "truncated": np.bool_,
    "width": np.int32,
    "height": np.int32,
    "channels": np.int8,
    "file_bytes": np.int64,
    "pixel_hash": "S16",
    "phash": np.uint64,
    "brightness": np.float32,
    "brightness_p05": np.float32,
    "brightness_p99": np.float32,
    "contrast": np.float32,
    "laplacian_var": np.float32,
    "entropy": np.float32,
    "colourfulness": np.float32,
}


def _empty(n: int) -> dict[str, Any]:
    part: dict[str, Any] = {name: np.zeros(n, dtype=dtype) for name, dtype in _ARRAY_FIELDS.items()}
    part["thumb"] = np.zeros((n, THUMB_SIDE, THUMB_SIDE), dtype=np.uint8)
    part["error"] = [""] * n
    part["mode"] = [""] * n
    return part


def _merge(parts: list[dict[str, Any]], n: int) -> dict[str, Any]:
    if not parts:
        part = _empty(n)
        return {**part, "error": tuple(part["error"]), "mode": tuple(part["mode"])}
    merged: dict[str, Any] = {
        name: np.concatenate([part[name] for part in parts]) for name in (*_ARRAY_FIELDS, "thumb")
    }
    merged["error"] = tuple(text for part in parts for text in part["error"])
    merged["mode"] = tuple(text for part in parts for text in part["mode"])
    return merged


def _digest(pixels: np.ndarray) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr(pixels.shape).encode())
    digest.update(np.ascontiguousarray(pixels).data)
    return digest.digest()


def _scan_arrays(images: np.ndarray) -> dict[str, Any]:
    """Facts of array images ``(B, C, H, W)`` uint8 (no file I/O)."""
    batch = np.ascontiguousarray(np.moveaxis(np.asarray(images, dtype=np.uint8), 1, -1))
    count, height, width, channels = batch.shape
    part = _empty(count)
    part["readable"][:] = True
    part["width"][:], part["height"][:], part["channels"][:] = width, height, channels
    part["file_bytes"][:] = -1
    part["mode"] = ["array"] * count
    part["pixel_hash"][:] = [_digest(image) for image in batch]
    if max(height, width) > STATS_SIDE:
        scale = STATS_SIDE / max(height, width)
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        batch = np.stack(
            [_area_resize(batch[..., c].astype(np.float32), size) for c in range(channels)], axis=-1
        )
    for name, values in _batch_stats(batch).items():
        part[name][:] = values
    return part


def _open_image(path: str) -> tuple[str, Any]:
    """Decode ``path`` with PIL (EXIF orientation applied): its stored mode, and the image as
    ``L`` (grey modes) or ``RGB`` (everything else; transparency dropped)."""
    from PIL import Image, ImageOps

    with Image.open(path) as opened:
        opened.load()
        mode = opened.mode
        image = ImageOps.exif_transpose(opened) or opened
        return mode, image.convert("L" if mode in _GREY_MODES else "RGB")


def _scan_files(paths: Sequence[str]) -> dict[str, Any]:
    """Facts of image files; a file that cannot be decoded gets ``error`` instead."""
    from PIL import Image

    part = _empty(len(paths))
    by_shape: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = {}
    for row, path in enumerate(paths):
        try:
            part["file_bytes"][row] = os.stat(path).st_size
        except OSError:
            part["file_bytes"][row] = -1
        try:
            part["mode"][row], image = _open_image(path)
        except Exception as exc:  # any decoder failure is a property of the file
            part["error"][row] = _reason(exc)
            part["truncated"][row] = isinstance(exc, EOFError) or "truncat" in str(exc).lower()
            continue
        pixels = np.asarray(image)
        pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
        height, width, channels = pixels.shape
        part["readable"][row] = True
        part["width"][row], part["height"][row], part["channels"][row] = width, height, channels
        part["pixel_hash"][row] = _digest(pixels)
        if max(width, height) > STATS_SIDE:
            scale = STATS_SIDE / max(width, height)
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            pixels = np.asarray(image.resize(size, Image.Resampling.BOX))
            pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
        by_shape.setdefault(pixels.shape, []).append((row, pixels))
    for members in by_shape.values():
        rows = [row for row, _ in members]
        stats = _batch_stats(np.stack([pixels for _, pixels in members]))
        for name, values in stats.items():
            part[name][rows] = values
    return part


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _batch_stats(batch: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics of same-shaped images ``(B, H, W, C)`` (C 1 or 3, values 0..255)."""
    pixels = batch.astype(np.float32)
    count, height, width, channels = pixels.shape
    if channels == 3:
        red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
        grey = 0.299 * red + 0.587 * green + 0.114 * blue
        perceived = np.sqrt(0.241 * red**2 + 0.691 * green**2 + 0.068 * blue**2)
        rg, yb = red - green, 0.5 * (red + green) - blue
        rg, yb = rg.reshape(count, -1), yb.reshape(count, -1)
        colourfulness = np.sqrt(rg.var(axis=1) + yb.var(axis=1)) + 0.3 * np.sqrt(
            rg.mean(axis=1) ** 2 + yb.mean(axis=1) ** 2
        )
    else:
        grey = perceived = pixels[..., 0]
        colourfulness = np.zeros(count, dtype=np.float32)
    flat = perceived.reshape(count, -1) / 255.0
    p05, p99 = np.percentile(flat, [5.0, 99.0], axis=1)
    levels = np.clip(np.rint(grey), 0, 255).astype(np.int64).reshape(count, -1)
    offsets = (np.arange(count, dtype=np.int64) * 256)[:, None]
    histogram = np.bincount((levels + offsets).ravel(), minlength=256 * count).reshape(count, 256)
    share = histogram / levels.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(share > 0, share * np.log2(share), 0.0).sum(axis=1)
    if height >= 3 and width >= 3:
        centre = grey[:, 1:-1, 1:-1]
        neighbours = sum(
            grey[:, 1 + dy : height - 1 + dy, 1 + dx : width - 1 + dx]
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
            if dy or dx
        )
        laplacian = (8.0 * centre - neighbours).reshape(count, -1).var(axis=1)
    else:
        laplacian = np.zeros(count, dtype=np.float32)
    small = _area_resize(grey, (HASH_SIDE, HASH_SIDE))
    thumb = small.reshape(count, THUMB_SIDE, 2, THUMB_SIDE, 2).mean(axis=(2, 4))
    return {
        "brightness": flat.mean(axis=1),
        "brightness_p05": p05,
        "brightness_p99": p99,
        "contrast": grey.reshape(count, -1).std(axis=1) / 255.0,
        "laplacian_var": laplacian,
        "entropy": entropy,
        "colourfulness": colourfulness,
        "phash": _phash(small),
        "thumb": np.clip(np.rint(thumb), 0, 255).astype(np.uint8),
    }


@lru_cache(maxsize=64)
def _area_matrix(size_in: int, size_out: int) -> np.ndarray:
    """``(size_out, size_in)`` weights of area (box) resampling: each output pixel averages the
    input it covers, in proportion to the overlap (enlarging repeats pixels)."""
    edges = np.arange(size_out + 1, dtype=np.float64) * size_in / size_out
    low, high = edges[:-1, None], edges[1:, None]
    pixel = np.arange(size_in, dtype=np.float64)[None, :]
    overlap = np.clip(np.minimum(high, pixel + 1) - np.maximum(low, pixel), 0.0, None)
    return (overlap / (high - low)).astype(np.float32)


def _area_resize(batch: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-resample float grey images ``(B, H, W)`` to ``size`` (height, width)."""
    if batch.shape[1:] == size:
        return batch
    rows = _area_matrix(batch.shape[1], size[0])
    cols = _area_matrix(batch.shape[2], size[1])
    return rows @ batch @ cols.T


@lru_cache(maxsize=1)
def _dct_matrix() -> np.ndarray:
    n = HASH_SIDE
    k, i = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    matrix = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    matrix[0] /= np.sqrt(2.0)
    return matrix.astype(np.float32)


def _phash(grey: np.ndarray) -> np.ndarray:
    """64-bit pHash of grey images ``(B, 32, 32)`` (:data:`PHASH_IMPLEMENTATION`)."""
    dct = _dct_matrix()
    low = (dct[:8] @ grey @ dct[:8].T).reshape(grey.shape[0], 64)
    bits = low > np.median(low, axis=1, keepdims=True)
    return np.packbits(bits, axis=1).view(">u8").reshape(-1).astype(np.uint64)


# -------------------------------------------------------------------------------------------
# Model outputs
# -------------------------------------------------------------------------------------------


def _model_outputs(evaluation: Evaluation, positions: np.ndarray, total: int) -> ModelOutputs:
    rows = evaluation.num_samples
    indices = evaluation.dataset_indices
    index_of = np.full(total, -1, dtype=np.int64)
    index_of[np.arange(rows) if indices is None else np.asarray(indices, dtype=np.int64)] = (
        np.arange(rows)
    )
    row = index_of[positions]
    probabilities = np.asarray(evaluation.probabilities, dtype=np.float64)
    evaluated = (row >= 0) & np.isfinite(probabilities[np.maximum(row, 0)]).all(axis=1)
    taken = np.where(evaluated, row, 0)

    def pick(values: np.ndarray, fill: float) -> np.ndarray:
        picked = np.asarray(values)[taken].astype(np.result_type(values, type(fill)))
        picked[~evaluated] = fill
        return picked

    embeddings = evaluation.embeddings
    return ModelOutputs(
        task=evaluation.task,
        class_names=tuple(evaluation.class_names),
        evaluated=evaluated,
        probabilities=pick(probabilities, np.nan),
        targets=pick(evaluation.targets, -1),
        predictions=pick(evaluation.predictions, -1),
        embeddings=None if embeddings is None else pick(np.asarray(embeddings), np.nan),
    )


def _neighbours(
    embeddings: np.ndarray, evaluated: np.ndarray, k: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    count = embeddings.shape[0]
    rows_out = np.full((count, k), -1, dtype=np.int64)
    sims_out = np.full((count, k), np.nan, dtype=np.float32)
    usable = np.flatnonzero(evaluated & np.isfinite(embeddings).all(axis=1))
    if usable.size < 2:
        return rows_out, sims_out
    vectors = embeddings[usable].astype(np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    reference = np.arange(usable.size)
    if usable.size > MAX_EXACT_NEIGHBOUR_SAMPLES:
        rng = np.random.default_rng(seed)
        reference = np.sort(rng.choice(usable.size, MAX_EXACT_NEIGHBOUR_SAMPLES, replace=False))
    kept = min(k, reference.size - 1)
    for start in range(0, usable.size, 1024):
        block = vectors[start : start + 1024] @ vectors[reference].T
        own = start + np.arange(block.shape[0])
        position = np.searchsorted(reference, own)
        is_self = (position < reference.size) & (
            reference[np.minimum(position, reference.size - 1)] == own
        )
        block[np.flatnonzero(is_self), position[is_self]] = -np.inf
        top = np.argpartition(-block, kept - 1, axis=1)[:, :kept]
        values = np.take_along_axis(block, top, axis=1)
        order = np.argsort(-values, axis=1, kind="stable")
        top, values = np.take_along_axis(top, order, axis=1), np.take_along_axis(values, order, 1)
        rows_out[usable[start : start + 1024], :kept] = usable[reference[top]]
        sims_out[usable[start : start + 1024], :kept] = values
    return rows_out, sims_out
