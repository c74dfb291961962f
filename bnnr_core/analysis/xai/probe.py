"""Probe selection: which ``(row, class)`` maps the XAI step computes, and why."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from bnnr_core.analysis.xai.options import (
    CALIBRATION_IMAGES,
    MAX_WRONG_LABELS,
    PAIR_SAMPLES,
    XaiOptions,
)

if TYPE_CHECKING:
    from bnnr_core.analysis.evaluation import Evaluation


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
