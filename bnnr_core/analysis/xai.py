"""The XAI step of ``bnnr analyze``: where the model looks when it is right and when it is wrong,
and whether those maps can be trusted.

:func:`run_xai` works on the cached :class:`~bnnr_core.analysis.evaluation.Evaluation` of a
single-label classifier (for a multi-label one see "Multi-label" below):

1. **Probe set**, chosen on purpose and seeded (:func:`select_probe`): a class-stratified sample
   within the ``samples`` budget (the quality probe), plus the most confident errors, members of
   the most confused pairs and the best/worst galleries. Each image's *predicted* class is
   explained; an error's *true* class too. Every ``(row, class)`` map is computed once and shared
   by every section.
2. **Method**: the named ``xai_method`` component, or with ``"auto"`` the cheapest installed
   method whose maps beat random maps on a small calibration subset (see ``docs/xai.md``).
3. **Maps in batches**: one ``explain`` call per batch, then the statistics and the
   deletion/insertion curves of every map of the batch at once
   (:mod:`bnnr_core.analysis.saliency`).
4. **Sections** in BNNR 0.7's shapes, **patterns** (section ``xai``) and **overlays** under
   ``artifacts_dir``, encoded once per map and written in parallel.

**Multi-label** (targets and predictions ``(N, C)`` multi-hot, sigmoid probabilities): the
probe is the ``max_worst`` highest-loss images with at least one wrong label, every wrong label
of each explained (false positives and false negatives alike, up to :data:`MAX_WRONG_LABELS` per
image), plus a label-stratified quality probe of images where the label is predicted present
(:func:`select_multilabel_probe`). A map explains one label's logit; faithfulness scores that
label's *sigmoid* probability. Confused pairs and best/worst galleries are not defined for
multi-label and stay empty.

The core imports no plugin: methods come from ``host.component("xai_method", name)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
import numpy as np

from bnnr_core.analysis import saliency as sal
from bnnr_core.errors import BnnrError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from bnnr_core.analysis.data import InputSpec
    from bnnr_core.analysis.evaluation import Evaluation
    from bnnr_core.analysis.progress import Progress
    from bnnr_core.plugins import PluginHost

#: Report keys this step fills.
SECTION_KEYS: tuple[str, ...] = (
    "xai_insights",
    "xai_diagnoses",
    "xai_quality_summary",
    "xai_quality_per_class",
    "xai_examples_per_class",
    "confusion_pair_xai",
    "best_worst_examples",
)
#: ``"auto"`` tries installed methods in this order (cheapest first), then any other installed
#: method by name.
AUTO_ORDER: tuple[str, ...] = (
    "gradcam",
    "saliency",
    "smoothgrad",
    "integrated_gradients",
    "opticam",
)
#: Method used when the requested one fails on the first batch (e.g. Grad-CAM on a model without
#: convolutional layers).
FALLBACK_METHOD = "saliency"
#: Images of the quality probe ``"auto"`` evaluates each candidate on.
CALIBRATION_IMAGES = 32
#: Confused and correctly classified samples explained per confused pair.
PAIR_SAMPLES = 8
#: Maps a class needs before a pattern is reported for it.
MIN_PATTERN_MAPS = 5
#: Pattern confidence: ``high`` from this many maps, ``medium`` from the second, else ``low``.
CONFIDENCE_MAPS = (30, 10)
#: Threads encoding and writing overlay PNGs.
RENDER_WORKERS = 4
#: Multi-label: wrong labels explained per high-loss image at most, the most wrong first (largest
#: ``|probability - target|``); the rest are counted in the probe's ``wrong_labels_left_out``.
MAX_WRONG_LABELS = 32
#: Multi-label overlays go to this folder under ``artifacts_dir``.
MULTILABEL_FOLDER = "xai_multilabel"
#: ``xai_quality_summary.multilabel_xai_note``: what the multi-label maps explain.
MULTILABEL_NOTE = (
    "Each map explains one label's logit. For the highest-loss images with at least one wrong "
    "label, EVERY wrong label is explained (not only the first mismatch): a false positive "
    "(predicted present, absent) shows the evidence the model used for the wrong label, a false "
    "negative (present, not predicted) shows what evidence for the label the model sees. The "
    "per-label quality comes from a separate label-stratified probe of images where the label is "
    "predicted present, explaining that label. Faithfulness measures the explained label's "
    "sigmoid probability."
)

_LITERATURE = "Literature context (not verified on this run): "


def _at_least(minimum: int) -> Callable[[Any, Any, int], None]:
    def check(_instance: Any, attribute: Any, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"XaiOptions.{attribute.name} must be an integer >= {minimum}")

    return check


@attrs.frozen(kw_only=True)
class XaiOptions:
    """What the XAI step explains and how (the CLI's ``--xai-*`` flags and ``--max-worst``)."""

    #: ``xai_method`` component name, or ``"auto"``.
    method: str = "auto"
    #: Passed as ``layer=`` to methods that accept it (CAM methods).
    layer: str | None = None
    #: Budget of the class-stratified quality probe.
    samples: int = attrs.field(default=500, validator=_at_least(0))
    #: High-confidence errors explained and listed.
    max_worst: int = attrs.field(default=20, validator=_at_least(0))
    seed: int = 0
    batch_size: int = attrs.field(default=32, validator=_at_least(1))
    #: Most confused class pairs explained.
    pairs: int = attrs.field(default=3, validator=_at_least(0))
    #: Best and worst examples per class.
    per_class_examples: int = attrs.field(default=4, validator=_at_least(0))
    #: Best/worst galleries only for this many classes, those with the most errors.
    max_gallery_classes: int = attrs.field(default=20, validator=_at_least(0))
    #: Steps of the deletion and insertion curves.
    faithfulness_steps: int = attrs.field(default=10, validator=_at_least(2))


@attrs.frozen(kw_only=True)
class XaiResult:
    """What the XAI step adds to the report."""

    #: Exactly the keys of :data:`SECTION_KEYS`.
    sections: dict[str, Any]
    #: Failure patterns, section ``xai``; each passes
    #: :func:`~bnnr_core.analysis.findings.check_pattern`.
    patterns: list[dict[str, Any]]
    #: ``analysis_scope.sections.xai``.
    scope: dict[str, Any]
    #: Files written under ``artifacts_dir``.
    files: list[Path]


def empty_sections() -> dict[str, Any]:
    """The XAI report keys with their not-run values."""
    return {key: [] if key == "confusion_pair_xai" else {} for key in SECTION_KEYS}


# -------------------------------------------------------------------------------------------
# Probe selection
# -------------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True, eq=False)
class PairSelection:
    """One confused pair: ``count`` images of class ``a`` predicted as ``b``."""

    a: int
    b: int
    count: int
    #: Rows of ``a`` predicted as ``b``, most confident first.
    confused: np.ndarray
    #: Rows of ``a`` predicted as ``a``: quality-probe members first, then most confident.
    correct: np.ndarray


@attrs.frozen(kw_only=True, eq=False)
class Probe:
    """The rows to explain and why; every array holds evaluation rows."""

    #: Class-stratified quality probe (within the ``samples`` budget), sorted.
    stratified: np.ndarray
    #: Most confident errors, most confident first (at most ``max_worst``).
    worst: np.ndarray
    pairs: tuple[PairSelection, ...]
    #: ``{class: (best rows, worst rows)}`` for the gallery classes.
    gallery: Mapping[int, tuple[np.ndarray, np.ndarray]]
    #: Every row above, sorted, once.
    rows: np.ndarray
    #: ``(K, 2)`` ``(row, class)`` maps to compute, sorted: each row's predicted class, and an
    #: error's true class.
    keys: np.ndarray

    def counts(self) -> dict[str, int]:
        pair_rows = {int(r) for p in self.pairs for r in (*p.confused, *p.correct)}
        gallery_rows = {int(r) for best, worst in self.gallery.values() for r in (*best, *worst)}
        return {
            "stratified": int(self.stratified.size),
            "worst_errors": int(self.worst.size),
            "pair_members": len(pair_rows),
            "gallery_members": len(gallery_rows),
            "images": int(self.rows.size),
            "maps": len(self.keys),
        }


def _by_confidence(rows: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """``rows`` most confident first, ties by row."""
    return rows[np.lexsort((rows, -confidence[rows]))]


def _allocate(sizes: np.ndarray, budget: int) -> np.ndarray:
    """Split ``budget`` as evenly as possible over classes of ``sizes`` available rows: a class
    with fewer rows than its share gives the rest to the others (water filling)."""
    quota = np.zeros_like(sizes)
    remaining = max(0, int(budget))
    order = np.argsort(sizes, kind="stable")
    for position, cls in enumerate(order):
        share = remaining // (len(order) - position)
        quota[cls] = min(int(sizes[cls]), share)
        remaining -= int(quota[cls])
    return quota


def confusion_counts(evaluation: Evaluation) -> np.ndarray:
    """The ``(C, C)`` confusion matrix (rows true) of the finite rows: the task's
    ``confusion.matrix`` section when present, else counted from the arrays."""
    classes = evaluation.num_classes
    section = evaluation.sections.get("confusion") if evaluation.sections else None
    matrix = section.get("matrix") if isinstance(section, Mapping) else None
    if matrix is not None:
        array = np.asarray(matrix, dtype=np.int64)
        if array.shape == (classes, classes):
            return array
    predictions = np.asarray(evaluation.predictions)
    targets = np.asarray(evaluation.targets)
    finite = predictions >= 0
    flat = targets[finite].astype(np.int64) * classes + predictions[finite].astype(np.int64)
    return np.bincount(flat, minlength=classes * classes).reshape(classes, classes)


def select_probe(evaluation: Evaluation, options: XaiOptions) -> Probe:
    """The probe set of an evaluation (see the module docstring); a pure function of the
    evaluation and ``options`` (seeded)."""
    targets = np.asarray(evaluation.targets, dtype=np.int64)
    predictions = np.asarray(evaluation.predictions, dtype=np.int64)
    classes = evaluation.num_classes
    finite = (predictions >= 0) & np.isfinite(evaluation.probabilities).all(axis=1)
    rows_all = np.arange(targets.size)
    confidence = np.zeros(targets.size)
    confidence[finite] = evaluation.probabilities[rows_all[finite], predictions[finite]]
    errors = finite & (predictions != targets)

    per_class = [rows_all[finite & (targets == cls)] for cls in range(classes)]
    quota = _allocate(np.array([rows.size for rows in per_class]), options.samples)
    stratified = np.sort(
        np.concatenate(
            [
                np.random.default_rng([options.seed % (1 << 63), cls]).permutation(rows)[
                    : quota[cls]
                ]
                for cls, rows in enumerate(per_class)
            ]
            or [np.zeros(0, dtype=np.int64)]
        )
    ).astype(np.int64)
    in_probe = np.zeros(targets.size, dtype=bool)
    in_probe[stratified] = True

    worst = _by_confidence(rows_all[errors], confidence)[: max(0, options.max_worst)]

    matrix = confusion_counts(evaluation)
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    cells = np.argwhere(off > 0)
    cells = cells[np.lexsort((cells[:, 1], cells[:, 0], -off[cells[:, 0], cells[:, 1]]))]
    pairs = []
    for a, b in cells[: max(0, options.pairs)]:
        confused = rows_all[finite & (targets == a) & (predictions == b)]
        correct = rows_all[finite & (targets == a) & (predictions == a)]
        correct = correct[np.lexsort((correct, -confidence[correct], ~in_probe[correct]))]
        pairs.append(
            PairSelection(
                a=int(a),
                b=int(b),
                count=int(off[a, b]),
                confused=_by_confidence(confused, confidence)[:PAIR_SAMPLES],
                correct=correct[:PAIR_SAMPLES],
            )
        )

    support = np.bincount(targets[finite], minlength=classes)
    error_counts = np.bincount(targets[errors], minlength=classes)
    candidates = [cls for cls in range(classes) if support[cls] > 0]
    candidates.sort(key=lambda cls: (-error_counts[cls], cls))
    gallery = {}
    correct_rows = finite & ~errors
    for cls in sorted(candidates[: max(0, options.max_gallery_classes)]):
        best = _by_confidence(rows_all[correct_rows & (targets == cls)], confidence)
        wrong = _by_confidence(rows_all[errors & (targets == cls)], confidence)
        gallery[cls] = (best[: options.per_class_examples], wrong[: options.per_class_examples])

    parts = [stratified, worst]
    parts += [rows for pair in pairs for rows in (pair.confused, pair.correct)]
    parts += [rows for best, wrong in gallery.values() for rows in (best, wrong)]
    rows = np.unique(np.concatenate(parts)).astype(np.int64)
    keys = np.stack([rows, predictions[rows]], axis=1)
    wrong_rows = rows[errors[rows]]
    keys = np.concatenate([keys, np.stack([wrong_rows, targets[wrong_rows]], axis=1)])
    keys = keys[np.lexsort((keys[:, 1], keys[:, 0]))]
    return Probe(
        stratified=stratified,
        worst=worst,
        pairs=tuple(pairs),
        gallery=gallery,
        rows=rows,
        keys=keys.astype(np.int64),
    )


def _calibration_keys(evaluation: Evaluation, probe: Probe, seed: int) -> np.ndarray:
    """Up to :data:`CALIBRATION_IMAGES` quality-probe rows (any probe rows when the quality
    probe is empty), balanced over classes (seeded), as ``(row, predicted class)`` keys."""
    rows = probe.stratified if probe.stratified.size else probe.rows
    if rows.size <= CALIBRATION_IMAGES:
        chosen = rows
    else:
        shuffled = np.random.default_rng([seed % (1 << 63), 1 << 20]).permutation(rows)
        labels = np.asarray(evaluation.targets)[shuffled]
        # Round-robin over classes: the k-th image of every class before any (k+1)-th.
        turn = np.zeros(shuffled.size, dtype=np.int64)
        for cls in np.unique(labels):
            members = labels == cls
            turn[members] = np.arange(int(members.sum()))
        chosen = np.sort(
            shuffled[np.lexsort((np.arange(shuffled.size), turn))][:CALIBRATION_IMAGES]
        )
    predictions = np.asarray(evaluation.predictions, dtype=np.int64)
    return np.stack([chosen, predictions[chosen]], axis=1).astype(np.int64)


# -------------------------------------------------------------------------------------------
# Multi-label probe selection
# -------------------------------------------------------------------------------------------


def is_multilabel(evaluation: Evaluation) -> bool:
    """Whether ``evaluation`` holds multi-hot ``(N, C)`` targets (a multi-label task)."""
    return np.asarray(evaluation.targets).ndim == 2


@attrs.frozen(kw_only=True, eq=False)
class MultilabelProbe:
    """The ``(row, label)`` maps to compute for a multi-label evaluation, and why."""

    #: ``(S, 2)`` label-stratified quality probe: ``(row, label)`` with the label predicted
    #: present on the row, sorted by row then label.
    stratified: np.ndarray
    #: Highest-loss rows with at least one wrong label, highest loss first (at most
    #: ``max_worst``).
    worst: np.ndarray
    #: Per row of ``worst``: its wrong labels to explain, most wrong first (at most
    #: :data:`MAX_WRONG_LABELS`).
    wrong: tuple[np.ndarray, ...]
    #: Per row of ``worst``: for each label of ``wrong``, ``True`` for a false positive
    #: (predicted present, absent) and ``False`` for a false negative.
    false_positive: tuple[np.ndarray, ...]
    #: Wrong labels of ``worst`` rows beyond :data:`MAX_WRONG_LABELS` (not explained).
    left_out: int
    #: Every row above, sorted, once.
    rows: np.ndarray
    #: ``(K, 2)`` ``(row, label)`` maps to compute, sorted, once.
    keys: np.ndarray

    def error_keys(self) -> np.ndarray:
        """``(E, 2)`` ``(row, label)`` of the explained wrong labels, in report order."""
        pairs = [
            (int(row), int(label))
            for row, labels in zip(self.worst, self.wrong, strict=True)
            for label in labels
        ]
        return np.array(pairs, dtype=np.int64).reshape(-1, 2)

    def counts(self) -> dict[str, int]:
        positives = int(sum(int(flags.sum()) for flags in self.false_positive))
        errors = int(sum(flags.size for flags in self.false_positive))
        return {
            "stratified": len(self.stratified),
            "stratified_images": int(np.unique(self.stratified[:, 0]).size),
            "worst_errors": int(self.worst.size),
            "error_maps": errors,
            "false_positive_maps": positives,
            "false_negative_maps": errors - positives,
            "wrong_labels_left_out": int(self.left_out),
            "images": int(self.rows.size),
            "maps": len(self.keys),
        }


def _multi_hot(values: Any) -> np.ndarray:
    """0/1 (or soft) multi-hot values as booleans: present when ``>= 0.5``."""
    return np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0) >= 0.5


def select_multilabel_probe(evaluation: Evaluation, options: XaiOptions) -> MultilabelProbe:
    """The multi-label probe (a pure function of the evaluation and ``options``, seeded).

    * **High-loss errors**: rows with finite outputs and at least one wrong label, by
      ``per_sample_loss`` descending (ties by row; a non-finite loss last), the first
      ``max_worst``. Every wrong label of such a row is explained, the most wrong first
      (``|probability - target|`` descending, ties by label), up to :data:`MAX_WRONG_LABELS`.
    * **Quality probe**: per label, a seeded sample of the rows where the label is predicted
      present; the ``samples`` budget (maps) is split evenly over labels, a label with fewer
      such rows giving the rest to the others.
    """
    probabilities = np.asarray(evaluation.probabilities, dtype=np.float64)
    targets = _multi_hot(evaluation.targets)
    predictions = _multi_hot(evaluation.predictions)
    count, labels = probabilities.shape
    finite = np.asarray(np.isfinite(probabilities).all(axis=1), dtype=bool)
    rows_all = np.arange(count)
    wrong = (predictions != targets) & finite[:, None]
    loss = np.asarray(evaluation.per_sample_loss, dtype=np.float64).reshape(-1)
    if loss.size != count:  # no usable loss: rank errors by row
        loss = np.full(count, np.nan)
    loss_key = np.where(np.isfinite(loss), loss, -np.inf)
    error_rows = rows_all[wrong.any(axis=1)]
    worst = error_rows[np.lexsort((error_rows, -loss_key[error_rows]))][: max(0, options.max_worst)]
    gap = np.abs(np.nan_to_num(probabilities) - targets)
    wrong_labels, false_positive = [], []
    left_out = 0
    for row in worst:
        candidates = np.flatnonzero(wrong[row])
        ordered = candidates[np.lexsort((candidates, -gap[row, candidates]))]
        left_out += max(0, ordered.size - MAX_WRONG_LABELS)
        chosen = ordered[:MAX_WRONG_LABELS].astype(np.int64)
        wrong_labels.append(chosen)
        false_positive.append(predictions[row, chosen].astype(bool))

    per_label = [rows_all[finite & predictions[:, label]] for label in range(labels)]
    quota = _allocate(np.array([rows.size for rows in per_label], dtype=np.int64), options.samples)
    stratified_parts = [
        np.stack(
            [
                np.sort(
                    np.random.default_rng([options.seed % (1 << 63), label]).permutation(rows)[
                        : quota[label]
                    ]
                ),
                np.full(int(min(quota[label], rows.size)), label),
            ],
            axis=1,
        )
        for label, rows in enumerate(per_label)
    ]
    stratified = np.concatenate([np.zeros((0, 2), dtype=np.int64), *stratified_parts]).astype(
        np.int64
    )
    stratified = stratified[np.lexsort((stratified[:, 1], stratified[:, 0]))]
    error_keys = np.array(
        [
            (int(row), int(label))
            for row, chosen in zip(worst, wrong_labels, strict=True)
            for label in chosen
        ],
        dtype=np.int64,
    ).reshape(-1, 2)
    keys = np.unique(np.concatenate([stratified, error_keys]), axis=0).astype(np.int64)
    return MultilabelProbe(
        stratified=stratified,
        worst=worst.astype(np.int64),
        wrong=tuple(wrong_labels),
        false_positive=tuple(false_positive),
        left_out=int(left_out),
        rows=np.unique(keys[:, 0]).astype(np.int64),
        keys=keys.reshape(-1, 2),
    )


def _multilabel_calibration_keys(probe: MultilabelProbe, seed: int) -> np.ndarray:
    """Up to :data:`CALIBRATION_IMAGES` quality-probe maps (the explained wrong labels when the
    quality probe is empty), balanced over labels (seeded), sorted."""
    keys = probe.stratified if len(probe.stratified) else probe.error_keys()
    if len(keys) > CALIBRATION_IMAGES:
        shuffled = keys[np.random.default_rng([seed % (1 << 63), 1 << 20]).permutation(len(keys))]
        # Round-robin over labels: the k-th map of every label before any (k+1)-th.
        turn = np.zeros(len(shuffled), dtype=np.int64)
        for label in np.unique(shuffled[:, 1]):
            members = shuffled[:, 1] == label
            turn[members] = np.arange(int(members.sum()))
        keys = shuffled[np.lexsort((np.arange(len(shuffled)), turn))][:CALIBRATION_IMAGES]
    keys = np.unique(np.asarray(keys, dtype=np.int64).reshape(-1, 2), axis=0)
    return keys.reshape(-1, 2)


# -------------------------------------------------------------------------------------------
# Computing maps
# -------------------------------------------------------------------------------------------


class _MapStore:
    """Statistics and faithfulness curves of every ``(row, class)`` key, plus the uint8 maps and
    display images of the keys that get an overlay."""

    def __init__(self, keys: np.ndarray, render: set[tuple[int, int]], steps: int) -> None:
        self.keys = keys
        self.index = {(int(row), int(cls)): i for i, (row, cls) in enumerate(keys)}
        self.render = render
        self.stats = {key: np.full(len(keys), np.nan) for key in sal.STAT_KEYS}
        self.curves = np.full((len(keys), 4, steps + 1), np.nan)
        self.done = np.zeros(len(keys), dtype=bool)
        self.maps: dict[tuple[int, int], np.ndarray] = {}
        self.images: dict[int, np.ndarray] = {}

    def pending(self) -> np.ndarray:
        return self.keys[~self.done]

    def record(
        self,
        keys: np.ndarray,
        stats: Mapping[str, np.ndarray],
        curves: np.ndarray,
        maps: Callable[[], np.ndarray],
        images: Callable[[], np.ndarray],
    ) -> None:
        positions = np.array([self.index[(int(r), int(c))] for r, c in keys], dtype=np.int64)
        for name, values in stats.items():
            self.stats[name][positions] = values
        self.curves[positions] = curves
        self.done[positions] = True
        wanted = [i for i, (r, c) in enumerate(keys) if (int(r), int(c)) in self.render]
        if wanted:
            map_array, image_array = maps(), images()
            for i in wanted:
                row, cls = int(keys[i][0]), int(keys[i][1])
                self.maps[(row, cls)] = map_array[i]
                self.images.setdefault(row, image_array[i])

    def merge(self, other: _MapStore) -> None:
        """Take over ``other``'s finished keys (a calibration run of the chosen method)."""
        for i in np.flatnonzero(other.done):
            key = (int(other.keys[i][0]), int(other.keys[i][1]))
            position = self.index.get(key)
            if position is None:
                continue
            for name in sal.STAT_KEYS:
                self.stats[name][position] = other.stats[name][i]
            self.curves[position] = other.curves[i]
            self.done[position] = True
        self.maps.update({k: v for k, v in other.maps.items() if k in self.render})
        for row, image in other.images.items():
            self.images.setdefault(row, image)

    def position(self, row: int, cls: int) -> int | None:
        position = self.index.get((int(row), int(cls)))
        if position is None or not self.done[position]:
            return None
        return position


class _MethodFailed(Exception):
    """The method failed on the first batch of a run (nothing was computed with it)."""


@attrs.define
class _Runner:
    """Explains keys in batches and measures every map."""

    model: nn.Module
    evaluation: Evaluation
    fetch_images: Callable[[np.ndarray], torch.Tensor]
    spec: InputSpec
    options: XaiOptions
    #: How faithfulness scores the explained class (:data:`~bnnr_core.analysis.saliency.SCORES`).
    score: str = "softmax"
    calls: int = 0

    def positions(self, rows: np.ndarray) -> np.ndarray:
        indices = self.evaluation.dataset_indices
        return rows if indices is None else np.asarray(indices)[rows]

    def run(
        self, method: Any, keys: np.ndarray, store: _MapStore, *, strict_first: bool
    ) -> list[str]:
        """Explain ``keys`` into ``store``; return one message per failed batch.

        :raises _MethodFailed: ``strict_first`` and the method fails on the first batch.
        """
        import torch

        from bnnr_core.inference import model_device

        device = model_device(self.model)
        size = max(1, int(self.options.batch_size))
        errors: list[str] = []
        name = getattr(method, "name", "method")
        for start in range(0, len(keys), size):
            batch = keys[start : start + size]
            rows, inverse = np.unique(batch[:, 0], return_inverse=True)
            try:
                images = self.fetch_images(self.positions(rows))
            except Exception as exc:
                errors.append(f"images of rows {rows[0]}..{rows[-1]} could not be read: {exc}")
                continue
            images = images[torch.as_tensor(inverse.reshape(-1))].to(device)
            targets = torch.as_tensor(batch[:, 1], device=device)
            try:
                self.calls += 1
                maps = _checked_maps(method.explain(self.model, images, targets), images)
            except Exception as exc:
                message = f"{name} failed on {len(batch)} maps: {type(exc).__name__}: {exc}"
                if strict_first and start == 0:
                    raise _MethodFailed(message) from exc
                errors.append(message)
                continue
            try:
                stats = {
                    key: value.cpu().numpy() for key, value in sal.map_statistics(maps).items()
                }
                tie = torch.as_tensor(
                    sal.tie_keys(self.options.seed, batch[:, 0], maps.shape[1] * maps.shape[2]),
                    device=device,
                )
                curves = (
                    sal.faithfulness_curves(
                        self.model,
                        images,
                        maps,
                        targets,
                        tie,
                        steps=self.options.faithfulness_steps,
                        score=self.score,
                    )
                    .cpu()
                    .numpy()
                )
            except Exception as exc:
                errors.append(
                    f"measuring {len(batch)} {name} maps failed: {type(exc).__name__}: {exc}"
                )
                continue
            store.record(
                batch,
                stats,
                curves,
                maps=functools.partial(sal.map_to_uint8, maps),
                images=functools.partial(sal.display_images, images, self.spec.mean, self.spec.std),
            )
        return errors


def _checked_maps(maps: Any, images: torch.Tensor) -> torch.Tensor:
    """A method's output as ``(N, H, W)`` float maps in ``[0, 1]`` at the input resolution."""
    import torch
    import torch.nn.functional as F

    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"explain returned {type(maps).__name__}, not a tensor")
    if maps.ndim == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    count, _, height, width = images.shape
    if maps.ndim != 3 or maps.shape[0] != count:
        raise ValueError(f"explain returned maps of shape {tuple(maps.shape)} for {count} images")
    maps = torch.nan_to_num(maps.detach().float().to(images.device), nan=0.0)
    if tuple(maps.shape[1:]) != (height, width):
        maps = F.interpolate(
            maps[:, None], size=(height, width), mode="bilinear", align_corners=False
        )[:, 0]
    return maps.clamp(0.0, 1.0)


@contextmanager
def _model_guard(model: nn.Module) -> Iterator[None]:
    """Eval mode for the block; afterwards every module's mode, every parameter's
    ``requires_grad`` and ``.grad`` are what they were."""
    from bnnr_core.inference import evaluation_mode

    parameters = list(model.parameters())
    flags = [parameter.requires_grad for parameter in parameters]
    grads = [parameter.grad for parameter in parameters]
    try:
        with evaluation_mode(model):
            yield
    finally:
        for parameter, flag, grad in zip(parameters, flags, grads, strict=True):
            parameter.requires_grad_(flag)
            parameter.grad = grad


def _create(host: PluginHost, name: str, layer: str | None) -> tuple[Any, str | None]:
    """Build method ``name``; ``layer`` is passed to methods that accept it."""
    component = host.component("xai_method", name)
    if layer is None:
        return component.create(), None
    try:
        return component.create(layer=layer), None
    except TypeError:
        return component.create(), f"{name} takes no layer option; --xai-layer was not used for it"


def _describe(method: Any, name: str) -> dict[str, Any]:
    describe = getattr(method, "describe", None)
    details: dict[str, Any] = {}
    if callable(describe):
        try:
            details = dict(describe())
        except Exception as exc:  # a report detail must not cost the analysis
            details = {"describe_error": f"{type(exc).__name__}: {exc}"}
    details.setdefault("name", name)
    details.setdefault("batched_backward", bool(getattr(method, "batched_backward", False)))
    return _jsonable(details)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return str(value)


def _margins(store: _MapStore, positions: np.ndarray) -> tuple[float, float]:
    """Mean deletion and insertion margins over random of the maps at ``positions``."""
    auc = sal.curve_auc(store.curves[positions])
    deletion = np.nanmean(auc[:, 2] - auc[:, 0]) if positions.size else np.nan
    insertion = np.nanmean(auc[:, 1] - auc[:, 3]) if positions.size else np.nan
    return float(deletion), float(insertion)


# -------------------------------------------------------------------------------------------
# The step
# -------------------------------------------------------------------------------------------


def run_xai(
    *,
    host: PluginHost,
    model: nn.Module,
    evaluation: Evaluation,
    fetch_images: Callable[[np.ndarray], torch.Tensor],
    spec: InputSpec,
    options: XaiOptions,
    artifacts_dir: Path | None,
    progress: Progress | None = None,
) -> XaiResult:
    """Explain the model's decisions on a probe of the evaluation set and measure the maps.

    Single-label evaluations (targets ``(N,)``) explain classes; multi-label ones (targets,
    predictions and probabilities ``(N, C)``) explain labels, scored with the sigmoid (see the
    module docstring).

    :param fetch_images: dataset positions to model-ready images ``(N, C, H, W)`` on the CPU.
    :param artifacts_dir: ``<output>/artifacts``; overlays go below it and report paths are
        relative to its parent. ``None``: compute everything, write nothing (paths ``""``).
    :raises BnnrError: ``options.method`` names no installed ``xai_method`` (the message lists
        them), or the requested method fails with the ``layer`` the user gave.
    """
    del progress  # the step is short; the engine announces its stage
    available = host.available("xai_method")
    if options.method != "auto" and available:
        host.component("xai_method", options.method)  # UnknownComponentError lists the names
    base_scope: dict[str, Any] = {
        "method": None,
        "method_details": {},
        "method_choice": {},
        "fallback": None,
        "probe": {},
        "errors": [],
        "notes": [],
    }
    if not available:
        return _skipped(base_scope, "no XAI method plugin is installed")
    targets = np.asarray(evaluation.targets)
    multilabel = is_multilabel(evaluation)
    if targets.ndim not in (1, 2):
        return _skipped(
            base_scope,
            "saliency analysis covers single-label and multi-label classification only",
        )
    shape = np.shape(evaluation.probabilities)
    if multilabel and not (targets.shape == shape == np.shape(evaluation.predictions)):
        return _skipped(
            base_scope,
            f"multi-label targets {targets.shape}, predictions "
            f"{np.shape(evaluation.predictions)} and probabilities {shape} differ in shape",
        )

    probe: Probe | None = None
    multilabel_probe: MultilabelProbe | None = None
    if multilabel:
        multilabel_probe = select_multilabel_probe(evaluation, options)
        probe_keys, images = multilabel_probe.keys, int(multilabel_probe.rows.size)
        base_scope["probe"] = {
            **multilabel_probe.counts(),
            "budget": options.samples,
            "seed": options.seed,
            "max_worst": options.max_worst,
            "max_wrong_labels": MAX_WRONG_LABELS,
        }
        calibration = _multilabel_calibration_keys(multilabel_probe, options.seed)
        render = (
            {(int(r), int(c)) for r, c in multilabel_probe.error_keys()}
            if artifacts_dir is not None
            else set()
        )
    else:
        probe = select_probe(evaluation, options)
        probe_keys, images = probe.keys, int(probe.rows.size)
        base_scope["probe"] = {
            **probe.counts(),
            "budget": options.samples,
            "seed": options.seed,
            "max_worst": options.max_worst,
            "pairs": options.pairs,
            "per_class_examples": options.per_class_examples,
            "max_gallery_classes": options.max_gallery_classes,
        }
        calibration = _calibration_keys(evaluation, probe, options.seed)
        render = _render_keys(evaluation, probe) if artifacts_dir is not None else set()
    if not len(probe_keys):
        reason = (
            "no image with finite model outputs has a wrong label or a label predicted present"
            if multilabel
            else "no image with finite model outputs to explain"
        )
        return _skipped(base_scope, reason)

    store = _MapStore(probe_keys, render, options.faithfulness_steps)
    runner = _Runner(
        model=model,
        evaluation=evaluation,
        fetch_images=fetch_images,
        spec=spec,
        options=options,
        score="sigmoid" if multilabel else "softmax",
    )
    errors: list[str] = []
    notes: list[str] = []
    with _model_guard(model):
        if options.method == "auto":
            chosen = _choose(host, runner, calibration, available, options, store)
            base_scope["method_choice"] = chosen.choice
            if chosen.method is None:
                return _skipped(
                    base_scope, "every installed XAI method failed: " + "; ".join(chosen.failures)
                )
            name, method = chosen.name, chosen.method
            if chosen.failures:
                base_scope["fallback"] = f"{'; '.join(chosen.failures)}; {name} was used instead"
            errors += chosen.errors
            notes += chosen.notes
            strict = False
        else:
            name = options.method
            base_scope["method_choice"] = {"mode": "requested", "requested": name}
            try:
                method, note = _create(host, name, options.layer)
            except Exception as exc:
                return _skipped(
                    base_scope, f"{name} could not be created: {type(exc).__name__}: {exc}"
                )
            notes += [note] if note else []
            strict = True
        try:
            errors += runner.run(method, store.pending(), store, strict_first=strict)
        except _MethodFailed as failure:
            if options.layer is not None:
                raise BnnrError(
                    f"XAI method {name!r} failed with --xai-layer {options.layer}: {failure}"
                ) from failure
            errors.append(str(failure))
            if FALLBACK_METHOD not in available or name == FALLBACK_METHOD:
                return _skipped({**base_scope, "errors": errors}, f"{name} failed: {failure}")
            base_scope["fallback"] = (
                f"{name} failed on the first batch ({failure}); {FALLBACK_METHOD} was used instead"
            )
            name = FALLBACK_METHOD
            try:
                method, _ = _create(host, name, None)
                errors += runner.run(method, store.pending(), store, strict_first=True)
            except Exception as second:
                errors.append(str(second))
                return _skipped({**base_scope, "errors": errors}, f"{name} failed too: {second}")
    if not store.done.any():
        return _skipped({**base_scope, "errors": errors}, f"{name} produced no map")

    context: _Sections
    if multilabel_probe is not None:
        context = _MultilabelContext(
            evaluation=evaluation,
            probe=multilabel_probe,
            store=store,
            method=name,
            spec=spec,
            options=options,
            artifacts_dir=artifacts_dir,
        )
        explained = (
            "multi-label: the logit of every wrong label (false positives and false negatives) "
            "of the highest-loss images, and of the predicted-present label on the "
            "label-stratified quality probe"
        )
        notes.append(
            "confusion_pair_xai and best_worst_examples are not defined for multi-label "
            "classification (there is no single predicted class to confuse) and are left empty; "
            "the wrong labels of the highest-loss images are in "
            "xai_examples_per_class.multilabel_high_loss"
        )
    else:
        assert probe is not None
        context = _Context(
            evaluation=evaluation,
            probe=probe,
            store=store,
            method=name,
            spec=spec,
            options=options,
            artifacts_dir=artifacts_dir,
        )
        explained = "the predicted class of every image, and the true class of errors"
    sections, patterns = context.build()
    files = context.write()
    missing = int((~store.done).sum())
    scope = {
        **base_scope,
        "status": "partial" if missing else "ok",
        "reason": (
            f"{name} explained {int(store.done.sum())} of {len(store.keys)} maps of "
            f"{images} images" + (f"; {missing} maps failed (see errors)" if missing else "")
        ),
        "method": name,
        "method_details": _describe(method, name),
        "errors": errors,
        "notes": notes,
        "explain_calls": runner.calls,
        "settings": {
            "explained": explained,
            "faithfulness_score": runner.score,
            "faithfulness_steps": options.faithfulness_steps,
            "faithfulness_replacement": "per-channel mean of the image",
            "faithful_margin": sal.FAITHFUL_MARGIN,
            "faithfulness_scale": sal.FAITHFULNESS_SCALE,
            "low_quality": sal.LOW_QUALITY,
            "border_fraction": sal.BORDER_FRACTION,
            "border_ratio_threshold": sal.BORDER_RATIO_THRESHOLD,
            "min_pattern_maps": MIN_PATTERN_MAPS,
        },
    }
    return XaiResult(sections=sections, patterns=patterns, scope=scope, files=files)


def _skipped(scope: Mapping[str, Any], reason: str) -> XaiResult:
    return XaiResult(
        sections=empty_sections(),
        patterns=[],
        scope={**scope, "status": "skipped", "reason": reason},
        files=[],
    )


@attrs.define
class _Choice:
    name: str = ""
    method: Any = None
    choice: dict[str, Any] = attrs.field(factory=dict)
    errors: list[str] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)
    failures: list[str] = attrs.field(factory=list)


def _choose(
    host: PluginHost,
    runner: _Runner,
    keys: np.ndarray,
    available: Sequence[str],
    options: XaiOptions,
    store: _MapStore,
) -> _Choice:
    """``"auto"``: the cheapest candidate whose maps of the calibration ``keys`` beat random maps
    by :data:`~bnnr_core.analysis.saliency.FAITHFUL_MARGIN` on deletion (scored as the runner
    scores), else the candidate with the largest margin. The chosen candidate's calibration maps
    are kept in ``store``."""
    candidates = [n for n in AUTO_ORDER if n in available]
    candidates += [n for n in sorted(available) if n not in AUTO_ORDER]
    result = _Choice()
    records: list[dict[str, Any]] = []
    best: tuple[float, str, Any, _MapStore, list[str], list[str]] | None = None
    for name in candidates:
        record: dict[str, Any] = {"name": name}
        records.append(record)
        trial = _MapStore(keys, store.render, options.faithfulness_steps)
        try:
            method, note = _create(host, name, options.layer)
            errors = runner.run(method, keys, trial, strict_first=True)
        except Exception as exc:
            message = (
                str(exc)
                if isinstance(exc, _MethodFailed)
                else f"{name} could not be created: {type(exc).__name__}: {exc}"
            )
            record.update(status="failed", error=message)
            result.failures.append(message)
            continue
        positions = np.flatnonzero(trial.done)
        auc = sal.curve_auc(trial.curves[positions])
        deletion_margin, insertion_margin = _margins(trial, positions)
        record.update(
            status="evaluated",
            maps=int(positions.size),
            deletion_auc=_num(np.nanmean(auc[:, 0])) if positions.size else None,
            random_deletion_auc=_num(np.nanmean(auc[:, 2])) if positions.size else None,
            deletion_margin=_num(deletion_margin),
            insertion_margin=_num(insertion_margin),
            faithful=bool(deletion_margin >= sal.FAITHFUL_MARGIN),
        )
        score = deletion_margin if math.isfinite(deletion_margin) else -math.inf
        if best is None or score > best[0]:
            best = (score, name, method, trial, errors, [note] if note else [])
        if score >= sal.FAITHFUL_MARGIN:
            break
    for name in candidates[len(records) :]:
        records.append({"name": name, "status": "not evaluated (a cheaper method was faithful)"})
    result.choice = {
        "mode": "auto",
        "rule": (
            "candidates in order of cost; the first whose maps beat random maps on deletion by "
            f"at least {sal.FAITHFUL_MARGIN} (mean over the calibration images) is chosen, "
            "else the one with the largest margin"
        ),
        "calibration_images": len(keys),
        "margin": sal.FAITHFUL_MARGIN,
        "candidates": records,
    }
    if best is None:
        return result
    _, result.name, result.method, trial, result.errors, result.notes = best
    for record in records:
        if record["name"] == result.name:
            record["status"] = "chosen"
    store.merge(trial)
    return result


def _render_keys(evaluation: Evaluation, probe: Probe) -> set[tuple[int, int]]:
    """The maps that get an overlay (or enter a mean overlay)."""
    targets = np.asarray(evaluation.targets, dtype=np.int64)
    predictions = np.asarray(evaluation.predictions, dtype=np.int64)
    rows = [probe.worst]
    rows += [r for pair in probe.pairs for r in (pair.confused, pair.correct)]
    rows += [r for best, wrong in probe.gallery.values() for r in (best, wrong)]
    keys: set[tuple[int, int]] = set()
    for row in np.unique(np.concatenate(rows)) if rows else []:
        keys.add((int(row), int(predictions[row])))
        if predictions[row] != targets[row]:
            keys.add((int(row), int(targets[row])))
    return keys


def _num(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


# -------------------------------------------------------------------------------------------
# Sections, patterns and overlays
# -------------------------------------------------------------------------------------------


@attrs.define(kw_only=True)
class _Sections:
    """What the single-label and multi-label sections share: the per-class (per-label) quality
    of the quality probe, the patterns and the overlay files. A subclass says which maps form
    each class's quality probe (:meth:`quality_groups`) and builds the sections."""

    #: The thing a quality group is about, in prose ("class" or "label"), and its plural.
    noun: ClassVar[str] = "class"
    nouns: ClassVar[str] = "classes"
    #: What the faithfulness test scores (``xai_quality_summary.faithfulness.score``).
    score_text: ClassVar[str] = "softmax probability of the explained class"
    #: What a quality-probe map explains (``xai_quality_summary.explained``).
    explained: ClassVar[str] = "predicted"
    #: Where the user finds a class's overlays (pattern recommendations).
    overlays_hint: ClassVar[str] = "the class overlays in artifacts/class_examples"

    evaluation: Evaluation
    store: _MapStore
    method: str
    spec: InputSpec
    options: XaiOptions
    artifacts_dir: Path | None
    #: Relative path -> content key of every file to write.
    jobs: dict[str, tuple[Any, ...]] = attrs.field(factory=dict)
    targets: np.ndarray = attrs.field(init=False)
    predictions: np.ndarray = attrs.field(init=False)
    #: ``(K, 4)`` deletion, insertion, random deletion, random insertion AUC of every key.
    auc: np.ndarray = attrs.field(init=False)
    area_share: float = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.auc = sal.curve_auc(self.store.curves)  # (K, 4)
        height, width = self.spec.size
        self.area_share = sal.border_area_share(int(height), int(width))

    # -- what a subclass defines ----------------------------------------------------------

    def build(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The report sections (the keys of :data:`SECTION_KEYS`) and the patterns."""
        raise NotImplementedError

    def quality_groups(self) -> dict[int, np.ndarray]:
        """Per class (label), the positions of its finished quality-probe maps (non-empty)."""
        raise NotImplementedError

    def quality_positions(self) -> np.ndarray:
        """Positions of every finished quality-probe map."""
        raise NotImplementedError

    def confused_with(self, cls: int) -> list[dict[str, Any]]:
        """Up to three classes ``cls`` is most confused with (``[]`` when not defined)."""
        return []

    def insight(self, cls: int, summary: Mapping[str, Any]) -> str:
        """The ``xai_insights`` paragraph of a class."""
        return sal.class_insight(self.label(cls), self.method, summary)

    # -- helpers --------------------------------------------------------------------------

    def name(self, cls: int) -> str:
        return self.evaluation.class_name(cls)

    def label(self, cls: int) -> str:
        """The class's name for prose, with its id when they differ: ``cat (id 3)``."""
        name = self.name(cls)
        return name if name == str(cls) else f"{name} (id {cls})"

    def file(self, relative: str, content: tuple[Any, ...]) -> str:
        """Register a file to write; its report path (``""`` without an artifacts folder)."""
        if self.artifacts_dir is None:
            return ""
        self.jobs[relative] = content
        return f"{self.artifacts_dir.name}/{relative}"

    def faithfulness(self, position: int) -> dict[str, Any]:
        values = dict(
            zip(sal.FAITHFULNESS_KEYS, (_num(v) for v in self.auc[position]), strict=True)
        )
        margin = self.auc[position, 2] - self.auc[position, 0]
        values["faithful"] = bool(math.isfinite(margin) and margin >= sal.FAITHFUL_MARGIN)
        return values

    def map_stats(self, position: int) -> dict[str, float | None]:
        return {key: _num(self.store.stats[key][position]) for key in sal.STAT_KEYS}

    def mean_stats(self, positions: np.ndarray) -> dict[str, float | None]:
        if not positions.size:
            return {}
        return {key: _num(np.nanmean(self.store.stats[key][positions])) for key in sal.STAT_KEYS}

    def _sample_id(self, row: int) -> str:
        ids = self.evaluation.sample_ids
        return ids[row] if row < len(ids) else str(row)

    # -- sections -------------------------------------------------------------------------

    def class_summaries(self) -> dict[int, dict[str, Any]]:
        """Per class (label): the numbers of its quality-probe maps (:meth:`quality_groups`)."""
        summaries = {}
        for cls, positions in self.quality_groups().items():
            auc = self.auc[positions]
            deletion_margin, insertion_margin = _margins(self.store, positions)
            stats = self.mean_stats(positions)
            gini = stats.get("gini") or 0.0
            margins = auc[:, 2] - auc[:, 0]
            faithful = bool(
                math.isfinite(deletion_margin) and deletion_margin >= sal.FAITHFUL_MARGIN
            )
            quality = sal.quality_score(deletion_margin, insertion_margin, gini)
            summaries[cls] = {
                "sample_count": int(positions.size),
                "deletion_auc": float(np.nanmean(auc[:, 0])),
                "insertion_auc": float(np.nanmean(auc[:, 1])),
                "random_deletion_auc": float(np.nanmean(auc[:, 2])),
                "random_insertion_auc": float(np.nanmean(auc[:, 3])),
                "deletion_margin": deletion_margin,
                "insertion_margin": insertion_margin,
                "faithful_maps": int((margins >= sal.FAITHFUL_MARGIN).sum()),
                "faithful": faithful,
                "quality": quality,
                "stats": stats,
                "border_area_share": self.area_share,
                "background_focus": bool(
                    faithful and (stats.get("border_ratio") or 0.0) >= sal.BORDER_RATIO_THRESHOLD
                ),
            }
        return summaries

    def quality_sections(self, summaries: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
        insights: dict[str, str] = {}
        diagnoses: dict[str, Any] = {}
        per_class: dict[str, Any] = {}
        for cls, summary in summaries.items():
            key, name = str(cls), self.name(cls)
            stats = summary["stats"]
            components = {
                "faithfulness": sal.faithfulness_component(
                    summary["deletion_margin"], summary["insertion_margin"]
                ),
                "focus": _num(stats.get("gini") or 0.0),
                "deletion_margin": _num(summary["deletion_margin"]),
                "insertion_margin": _num(summary["insertion_margin"]),
                "deletion_auc": _num(summary["deletion_auc"]),
                "random_deletion_auc": _num(summary["random_deletion_auc"]),
                "insertion_auc": _num(summary["insertion_auc"]),
                "random_insertion_auc": _num(summary["random_insertion_auc"]),
                "faithful_share": summary["faithful_maps"] / summary["sample_count"],
                "entropy": stats.get("entropy"),
                "coverage": stats.get("coverage"),
                "edge_ratio": stats.get("edge_ratio"),
                "border_ratio": stats.get("border_ratio"),
            }
            severity = sal.class_severity(summary)
            confused = self.confused_with(cls)
            flags = [] if severity == "ok" else [f"severity:{severity}"]
            flags += ["unfaithful"] if not summary["faithful"] else []
            flags += ["low_quality"] if summary["quality"] < sal.LOW_QUALITY else []
            flags += ["background_focus"] if summary["background_focus"] else []
            flags += ["confused_with"] if confused else []
            insight = self.insight(cls, summary)
            confusion_text = ", ".join(f"{c['class_name']} ({c['count']}x)" for c in confused)
            text = insight
            if confusion_text:
                text += f" Most confused with: {confusion_text}."
            suggestion = sal.class_suggestion(summary)
            if suggestion:
                text += f" {suggestion}"
            verdict = "faithful" if summary["faithful"] else "not faithful"
            where = sal.describe_attention(stats).split(" (")[0]
            short = f"{name}: {verdict}, {where}, quality {summary['quality']:.2f}"
            if confused:
                short += f" — confused with {confused[0]['class_name']} ({confused[0]['count']}x)"
            insights[key] = insight
            diagnoses[key] = {
                "class_name": name,
                "text": text,
                "severity": severity,
                "quality_score": summary["quality"],
                "quality_breakdown": components,
                "confused_with": confused,
                "trend": "new",
                "short_text": short,
                "augmentation_impact": "",
                "baseline_delta": {},
                "evidence": self.class_evidence(cls, summary),
            }
            per_class[key] = {
                "class_id": key,
                "class_name": name,
                "mean_quality": summary["quality"],
                "sample_count": summary["sample_count"],
                "flags": flags,
                "components": components,
            }
        return {
            "xai_insights": insights,
            "xai_diagnoses": diagnoses,
            "xai_quality_per_class": per_class,
            "xai_quality_summary": self.quality_summary(summaries),
        }

    def class_evidence(self, cls: int, summary: Mapping[str, Any]) -> list[str]:
        stats = summary["stats"]
        return [
            f"deletion_auc[{cls}]={summary['deletion_auc']:.3f} "
            f"(random {summary['random_deletion_auc']:.3f})",
            f"insertion_auc[{cls}]={summary['insertion_auc']:.3f} "
            f"(random {summary['random_insertion_auc']:.3f})",
            f"faithful_maps[{cls}]={summary['faithful_maps']}/{summary['sample_count']}",
            f"quality[{cls}]={summary['quality']:.3f}",
            f"gini[{cls}]={(stats.get('gini') or 0.0):.3f}",
            f"border_ratio[{cls}]={(stats.get('border_ratio') or 0.0):.2f} "
            f"(strip area share {self.area_share:.2f})",
        ]

    def quality_summary(self, summaries: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
        positions = self.quality_positions()
        auc = self.auc[positions]
        curves = self.store.curves[positions]
        deletion_margin, insertion_margin = _margins(self.store, positions)
        qualities = [s["quality"] for s in summaries.values()]
        steps = self.options.faithfulness_steps
        margins = auc[:, 2] - auc[:, 0]

        def mean_curve(index: int) -> list[float | None]:
            return [_num(v) for v in np.nanmean(curves[:, index], axis=0)] if positions.size else []

        return {
            "mean_quality_score": _num(np.mean(qualities)) if qualities else None,
            "total_samples": int(positions.size),
            "method": self.method,
            "explained": self.explained,
            "classes_scored": len(summaries),
            "images_explained": int(np.unique(self.store.keys[self.store.done][:, 0]).size),
            "maps_computed": int(self.store.done.sum()),
            "quality_formula": (
                "faithfulness * (0.5 + 0.5 * focus); faithfulness = clip((deletion_margin + "
                f"insertion_margin) / {2 * sal.FAITHFULNESS_SCALE:g}, 0, 1); focus = mean Gini"
            ),
            "low_quality_threshold": sal.LOW_QUALITY,
            "low_quality_classes": [
                str(c) for c, s in summaries.items() if s["quality"] < sal.LOW_QUALITY
            ],
            "unfaithful_classes": [str(c) for c, s in summaries.items() if not s["faithful"]],
            "background_focus_classes": [
                str(c) for c, s in summaries.items() if s["background_focus"]
            ],
            "border_strip": {
                "fraction": sal.BORDER_FRACTION,
                "area_share": self.area_share,
                "ratio_threshold": sal.BORDER_RATIO_THRESHOLD,
            },
            "faithfulness": {
                "test": "deletion and insertion of pixels in map order vs a seeded random order",
                "steps": steps,
                "replacement": "per-channel mean of the image",
                "score": self.score_text,
                "margin": sal.FAITHFUL_MARGIN,
                "deletion_auc": _num(np.nanmean(auc[:, 0])) if positions.size else None,
                "insertion_auc": _num(np.nanmean(auc[:, 1])) if positions.size else None,
                "random_deletion_auc": _num(np.nanmean(auc[:, 2])) if positions.size else None,
                "random_insertion_auc": _num(np.nanmean(auc[:, 3])) if positions.size else None,
                "deletion_margin": _num(deletion_margin),
                "insertion_margin": _num(insertion_margin),
                "faithful_maps": int((margins >= sal.FAITHFUL_MARGIN).sum()),
                "faithful_share": _num(np.mean(margins >= sal.FAITHFUL_MARGIN))
                if positions.size
                else None,
                "faithful": bool(
                    math.isfinite(deletion_margin) and deletion_margin >= sal.FAITHFUL_MARGIN
                ),
                "mean_curves": {
                    "fractions": [k / steps for k in range(steps + 1)],
                    "deletion": mean_curve(0),
                    "insertion": mean_curve(1),
                    "random_deletion": mean_curve(2),
                    "random_insertion": mean_curve(3),
                },
            },
        }

    # -- patterns -------------------------------------------------------------------------

    def patterns(
        self, summaries: Mapping[int, Mapping[str, Any]], overall: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        patterns: list[dict[str, Any]] = []
        eligible = {c: s for c, s in summaries.items() if s["sample_count"] >= MIN_PATTERN_MAPS}
        legacy = {
            c: {"type": "low_xai_quality", "class": str(c), "quality_score": s["quality"]}
            for c, s in eligible.items()
            if s["quality"] < sal.LOW_QUALITY
        }
        faithfulness = overall["faithfulness"]
        total = int(overall["total_samples"])
        if total >= MIN_PATTERN_MAPS and not faithfulness["faithful"]:
            patterns.append(
                self.unfaithful_pattern(None, faithfulness, total, list(legacy.values()))
            )
            legacy = {}
        else:
            for cls, summary in eligible.items():
                if not summary["faithful"]:
                    patterns.append(
                        self.unfaithful_pattern(
                            cls,
                            summary,
                            summary["sample_count"],
                            [legacy.pop(cls)] if cls in legacy else [],
                        )
                    )
        for cls, summary in eligible.items():
            if summary["faithful"] and summary["quality"] < sal.LOW_QUALITY:
                patterns.append(self.low_quality_pattern(cls, summary, legacy.pop(cls, None)))
        for cls, summary in eligible.items():
            if summary["background_focus"]:
                patterns.append(self.background_pattern(cls, summary))
        return patterns

    def _common(self, cls: int | None, count: int) -> dict[str, Any]:
        high, medium = CONFIDENCE_MAPS
        return {
            "count": count,
            "class_a": "" if cls is None else str(cls),
            "class_b": "",
            "section": "xai",
            "confidence": "high" if count >= high else "medium" if count >= medium else "low",
        }

    def unfaithful_pattern(
        self,
        cls: int | None,
        numbers: Mapping[str, Any],
        count: int,
        legacy: list[dict[str, Any]],
    ) -> dict[str, Any]:
        deletion = float(numbers["deletion_auc"] or 0.0)
        random_deletion = float(numbers["random_deletion_auc"] or 0.0)
        margin = float(numbers["deletion_margin"] or 0.0)
        who = f"all {self.nouns}" if cls is None else f"{self.noun} {self.label(cls)}"
        pattern = {
            **self._common(cls, count),
            "pattern_type": "unfaithful_saliency",
            "title": "Saliency maps no better than random",
            "description": (
                f"The {self.method} maps for {who} do not beat random maps: deleting their most "
                f"salient pixels first gives deletion AUC {deletion:.3f} vs {random_deletion:.3f} "
                f"for random maps (margin {margin:.3f} < {sal.FAITHFUL_MARGIN})."
            ),
            "severity": "medium",
            "evidence": [
                f"deletion_auc={deletion:.3f}",
                f"random_deletion_auc={random_deletion:.3f}",
                f"deletion_margin={margin:.3f}",
                f"maps={count}",
            ],
            "metadata": {
                "method": self.method,
                "faithful_margin": sal.FAITHFUL_MARGIN,
                "deletion_auc": _num(deletion),
                "random_deletion_auc": _num(random_deletion),
                "deletion_margin": _num(margin),
                "faithfulness_steps": self.options.faithfulness_steps,
            },
            "interpretation": (
                "The maps do not identify the pixels the prediction depends on any better than "
                "chance, so they cannot be trusted as an explanation of where the model looks, "
                "however plausible they appear."
            ),
            "recommended_action": (
                "Do not draw conclusions from these maps; re-run with another --xai-method or "
                "--xai-layer and use only maps whose deletion curve beats random."
            ),
            "recommendation": {
                "title": "Do not trust these saliency maps",
                "action": (
                    "Re-run analyze with another saliency method (--xai-method) or target layer "
                    "(--xai-layer); keep only maps that beat random maps on the deletion test."
                ),
                "priority": 4,
                "expected_impact": _LITERATURE
                + "saliency maps can be insensitive to the model (Adebayo et al., 2018); a "
                "deletion test against random maps separates faithful maps from such ones.",
                "literature_note": (
                    "Adebayo et al., Sanity Checks for Saliency Maps, NeurIPS 2018; Petsiuk "
                    "et al., RISE, BMVC 2018"
                ),
            },
        }
        if legacy:
            pattern["legacy"] = legacy
        return pattern

    def low_quality_pattern(
        self, cls: int, summary: Mapping[str, Any], legacy: dict[str, Any] | None
    ) -> dict[str, Any]:
        quality = summary["quality"]
        pattern = {
            **self._common(cls, summary["sample_count"]),
            "pattern_type": "low_xai_quality",
            "title": "Weak saliency evidence",
            "description": (
                f"The {self.method} maps for {self.noun} {self.label(cls)} score {quality:.3f} "
                f"in quality (below {sal.LOW_QUALITY}): they beat random maps only slightly or "
                "are diffuse."
            ),
            "severity": "low",
            "evidence": [
                f"quality[{cls}]={quality:.3f}",
                f"deletion_margin[{cls}]={summary['deletion_margin']:.3f}",
                f"insertion_margin[{cls}]={summary['insertion_margin']:.3f}",
                f"gini[{cls}]={(summary['stats'].get('gini') or 0.0):.3f}",
            ],
            "metadata": {
                "method": self.method,
                "quality_score": _num(quality),
                "low_quality_threshold": sal.LOW_QUALITY,
                "deletion_margin": _num(summary["deletion_margin"]),
                "insertion_margin": _num(summary["insertion_margin"]),
            },
            "interpretation": (
                f"The model's evidence for this {self.noun} is spread out or only weakly "
                "localised: its decisions may rest on diffuse texture or context rather than on "
                "the object."
            ),
            "recommended_action": (
                f"Look at this {self.noun}'s overlays and compare with another --xai-method "
                "before drawing conclusions."
            ),
        }
        if legacy:
            pattern["legacy"] = legacy
        return pattern

    def background_pattern(self, cls: int, summary: Mapping[str, Any]) -> dict[str, Any]:
        stats = summary["stats"]
        ratio = float(stats.get("border_ratio") or 0.0)
        edge = float(stats.get("edge_ratio") or 0.0)
        return {
            **self._common(cls, summary["sample_count"]),
            "pattern_type": "background_focus_suspected",
            "title": "Background focus suspected",
            "description": (
                f"Faithful {self.method} maps for {self.noun} {self.label(cls)} put "
                f"{edge:.0%} of their saliency in the border strip, {ratio:.1f}x its "
                f"{self.area_share:.0%} share of the image."
            ),
            "severity": "medium",
            "evidence": [
                f"edge_ratio[{cls}]={edge:.3f}",
                f"border_ratio[{cls}]={ratio:.2f}",
                f"border_area_share={self.area_share:.3f}",
                f"maps={summary['sample_count']}",
            ],
            "metadata": {
                "method": self.method,
                "border_fraction": sal.BORDER_FRACTION,
                "border_area_share": self.area_share,
                "border_ratio": ratio,
                "border_ratio_threshold": sal.BORDER_RATIO_THRESHOLD,
            },
            "interpretation": (
                f"The model relies disproportionately on the image border for this {self.noun}, "
                "which often means a shortcut (background, frame, watermark) rather than the "
                "object."
            ),
            "recommended_action": (
                f"Inspect this {self.noun}'s overlays; if the border carries a {self.noun} cue, "
                "remove it from the data or add random-crop/padding augmentation."
            ),
            "recommendation": {
                "title": "Check for background shortcuts",
                "action": (
                    f"Inspect {self.overlays_hint}; remove border or background cues from the "
                    "data, or train with random-crop/padding augmentation, then re-run analyze."
                ),
                "priority": 3,
                "expected_impact": _LITERATURE
                + "models often learn shortcuts such as backgrounds instead of the intended "
                "object (Geirhos et al., 2020).",
                "literature_note": "Geirhos et al., Shortcut Learning in Deep Neural Networks, "
                "Nature Machine Intelligence 2020",
            },
        }

    # -- files ----------------------------------------------------------------------------

    def render(self, content: tuple[Any, ...]) -> bytes:
        kind = content[0]
        if kind == "image":
            return sal.png_bytes(self.store.images[content[1]])
        if kind == "overlay":
            _, row, cls = content
            return sal.png_bytes(sal.overlay(self.store.images[row], self.store.maps[(row, cls)]))
        _, rows, cls = content
        images = np.stack([self.store.images[r] for r in rows])
        maps = np.stack([self.store.maps[(r, cls)] for r in rows])
        return sal.png_bytes(sal.mean_overlay(images, maps))

    def write(self) -> list[Path]:
        """Encode every distinct overlay once and write all files, in parallel."""
        root = self.artifacts_dir
        if root is None or not self.jobs:
            return []
        contents = sorted(set(self.jobs.values()), key=repr)
        files = [(root / relative, content) for relative, content in sorted(self.jobs.items())]
        for folder in sorted({target.parent for target, _ in files}):
            folder.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=RENDER_WORKERS) as pool:
            encoded = dict(zip(contents, pool.map(self.render, contents), strict=True))
            list(pool.map(lambda item: item[0].write_bytes(encoded[item[1]]), files))
        return [target for target, _ in files]


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


def _floats(stats: Mapping[str, float | None]) -> dict[str, float]:
    return {key: float(value or 0.0) for key, value in stats.items()}
