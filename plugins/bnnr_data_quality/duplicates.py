"""The ``duplicates`` check: exact and near-duplicate images, train/evaluation leakage, and
duplicates whose labels disagree.

* **Exact duplicates** have the same decoded pixels (the view's ``pixel_hash``).
* **Near duplicates** are proposed by the perceptual hash (at most ``hash_distance`` differing
  bits, found by multi-index hashing, :mod:`bnnr_data_quality.search`) and, when the evaluation
  has embeddings, by embedding neighbours with cosine similarity of at least
  ``embedding_similarity`` whose hashes differ in at most ``embedding_hash_distance`` bits. Every
  proposed pair must also *look* the same: the mean absolute difference of the two 16x16 grey
  thumbnails is at most ``max_thumbnail_difference`` of the grey range. A hash or a model alone
  never makes two images duplicates.
* Near-constant images (grey standard deviation below ``min_contrast``) are never duplicates of
  each other: blank images are the ``near_constant`` issue of ``image_properties``.

Pairs are joined into groups (connected components). A group spanning both splits is leakage;
a group whose members carry different labels is a label conflict. With multi-label data a label
is the whole label *set* of an image: duplicates conflict when their sets differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs
import numpy as np

from bnnr_data_quality.common import (
    examples,
    label_keys,
    make_issue,
    make_pattern,
    percent,
    plural,
    split_noun,
)
from bnnr_data_quality.search import components, near_pairs, popcount, unique_pairs

#: Embedding neighbours proposed per image (the ``outliers`` check's default, so the view's
#: neighbour search is shared).
EMBEDDING_NEIGHBOURS = 10
#: Leaked images given details (their training-split matches), and matches listed per image.
DETAILS_LISTED = 50
MATCHES_LISTED = 5


@attrs.frozen(kw_only=True, eq=False)
class _Table:
    """The scanned rows of the checked splits, concatenated (evaluation rows first)."""

    splits: tuple[Any, ...]
    split_of: np.ndarray
    row_in_split: np.ndarray

    @classmethod
    def of(cls, splits: Sequence[Any]) -> _Table:
        return cls(
            splits=tuple(splits),
            split_of=np.concatenate(
                [np.full(len(s), k, dtype=np.int64) for k, s in enumerate(splits)]
            ),
            row_in_split=np.concatenate([np.arange(len(s), dtype=np.int64) for s in splits]),
        )

    def field(self, name: str) -> np.ndarray:
        return np.concatenate([getattr(split, name) for split in self.splits])


class DuplicatesCheck:
    """Exact and near duplicates, leakage across splits, label conflicts."""

    name = "duplicates"
    defaults: ClassVar[Mapping[str, Any]] = {
        "hash_distance": 4,
        "max_thumbnail_difference": 0.02,
        "max_relative_difference": 0.25,
        "embedding_similarity": 0.98,
        "embedding_hash_distance": 10,
        "min_contrast": 0.01,
        "cross_split": True,
    }

    def run(self, view: Any, *, config: Mapping[str, Any]) -> list[dict[str, Any]]:
        splits = [view.eval_split]
        if config["cross_split"] and view.train_split is not None:
            splits.append(view.train_split)
        table = _Table.of(splits)
        readable = table.field("readable")
        usable = readable & (table.field("contrast") >= config["min_contrast"])
        rows = np.flatnonzero(usable)
        _, first, digest = np.unique(
            table.field("pixel_hash")[rows], return_index=True, return_inverse=True
        )
        digest = digest.reshape(-1)
        representatives = rows[first]
        hashes = table.field("phash")
        thumbs = table.field("thumb").reshape(len(readable), -1).astype(np.int16)
        contrast = table.field("contrast")

        def look_alike(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            """Whether representatives ``a`` and ``b`` have near-identical thumbnails: mean
            absolute difference within the absolute limit and within the relative one (a share
            of the flatter image's contrast, so two dark images are not alike for being dark)."""
            rows_a, rows_b = representatives[a], representatives[b]
            difference = np.abs(thumbs[rows_a] - thumbs[rows_b]).mean(axis=1) / 255.0
            flatter = np.minimum(contrast[rows_a], contrast[rows_b])
            return (difference <= config["max_thumbnail_difference"]) & (
                difference <= config["max_relative_difference"] * flatter
            )

        pair_a, pair_b = near_pairs(
            hashes[representatives], int(config["hash_distance"]), look_alike
        )
        extra_a, extra_b = self._embedding_pairs(view, config, usable, rows, digest, hashes)
        if extra_a.size:
            keep = look_alike(extra_a, extra_b)
            pair_a, pair_b = unique_pairs(
                np.r_[pair_a, extra_a[keep]], np.r_[pair_b, extra_b[keep]]
            )
        group = np.full(len(readable), -1, dtype=np.int64)
        group[rows] = components(representatives.size, pair_a, pair_b)[digest]
        digests = np.full(len(readable), -1, dtype=np.int64)
        digests[rows] = digest
        return _Report(view, table, group, digests, config).issues()

    @staticmethod
    def _embedding_pairs(
        view: Any,
        config: Mapping[str, Any],
        usable: np.ndarray,
        rows: np.ndarray,
        digest: np.ndarray,
        hashes: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pairs of representatives proposed by embedding neighbours (evaluation rows only; they
        come first in the table), with hashes at most ``embedding_hash_distance`` apart."""
        empty = np.empty(0, dtype=np.int64)
        if view.model is None or view.model.embeddings is None:
            return empty, empty
        neighbours, similarity = view.neighbours(EMBEDDING_NEIGHBOURS)
        close = (neighbours >= 0) & (similarity >= config["embedding_similarity"])
        source, slot = np.nonzero(close)
        target = neighbours[source, slot]
        representative = np.full(usable.size, -1, dtype=np.int64)
        representative[rows] = digest
        keep = usable[source] & usable[target]
        source, target = source[keep], target[keep]
        near = popcount(hashes[source] ^ hashes[target]) <= config["embedding_hash_distance"]
        first, second = representative[source[near]], representative[target[near]]
        return unique_pairs(first, second)


class _Report:
    """Groups and issues from the component of every row (``-1``: not a candidate)."""

    def __init__(
        self,
        view: Any,
        table: _Table,
        group: np.ndarray,
        digest: np.ndarray,
        config: Mapping[str, Any],
    ) -> None:
        self.view = view
        self.table = table
        self.config = config
        # Labels as one key per row (a class, or a label set for multi-label data).
        self.multilabel = table.splits[0].labels.ndim == 2
        self.label_sets = table.field("labels")
        self.labels, self.label_text = label_keys(self.label_sets, view.class_names)
        ids, sizes = np.unique(group[group >= 0], return_counts=True)
        self.group = np.where(np.isin(group, ids[sizes >= 2]), group, -1)
        self.digest = digest
        self.in_group = self.group >= 0
        member = np.flatnonzero(self.in_group)
        self.has_train = self._any_per_group(member, table.split_of[member] > 0)
        self.conflict = self._distinct_per_group(member, self.labels[member]) >= 2
        self.thresholds = {
            key: config[key]
            for key in (
                "hash_distance",
                "max_thumbnail_difference",
                "max_relative_difference",
                "embedding_similarity",
                "embedding_hash_distance",
                "min_contrast",
            )
        }

    def _any_per_group(self, member: np.ndarray, flag: np.ndarray) -> np.ndarray:
        """``(rows,)``: whether any member of the row's group has ``flag``."""
        hit = np.unique(self.group[member][flag])
        return self.in_group & np.isin(self.group, hit)

    def _distinct_per_group(self, member: np.ndarray, values: np.ndarray) -> np.ndarray:
        """``(rows,)``: distinct ``values`` among the members of the row's group (0 outside)."""
        pairs = np.unique(np.stack([self.group[member], values]), axis=1)
        groups, counts = np.unique(pairs[0], return_counts=True)
        result = np.zeros(self.group.size, dtype=np.int64)
        lookup = dict(zip(groups.tolist(), counts.tolist(), strict=True))
        result[member] = [lookup[g] for g in self.group[member].tolist()]
        return result

    def _in_split(self, index: int) -> np.ndarray:
        return self.table.split_of == index

    def issues(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for index, split in enumerate(self.table.splits):
            own = self._in_split(index)
            member = np.flatnonzero(own & self.in_group)
            digests_here = self._distinct_per_group(member, self.digest[member])
            copies = self._copies_within(own)
            found += self._exact(split, own, copies)
            found += self._near(split, own, digests_here)
            found += self._conflicts(split, own)
        found += self._leakage()
        groups = self._groups()
        if found:
            found[0]["groups"] = groups
        return found

    # -- masks ------------------------------------------------------------------------------

    def _copies_within(self, own: np.ndarray) -> np.ndarray:
        """``(rows,)``: rows of the split whose pixels occur at least twice in it."""
        rows = np.flatnonzero(own & (self.digest >= 0))
        values, counts = np.unique(self.digest[rows], return_counts=True)
        result = np.zeros(self.digest.size, dtype=bool)
        result[rows] = np.isin(self.digest[rows], values[counts >= 2])
        return result

    def _position(self, row: int) -> int:
        """Dataset position of table row ``row`` in its split."""
        split = self.table.splits[int(self.table.split_of[row])]
        return int(split.positions[int(self.table.row_in_split[row])])

    def _sample_id(self, row: int) -> str:
        split = self.table.splits[int(self.table.split_of[row])]
        return str(split.sample_ids[int(self.table.row_in_split[row])])

    def _ordered(self, mask: np.ndarray) -> list[int]:
        """Dataset positions of ``mask`` rows, members of one group next to each other."""
        rows = np.flatnonzero(mask)
        rows = rows[np.lexsort((self.table.row_in_split[rows], self.group[rows]))]
        return [self._position(row) for row in rows.tolist()]

    def _ids(self, mask: np.ndarray) -> list[str]:
        return [self._sample_id(row) for row in np.flatnonzero(mask).tolist()]

    # -- issues -----------------------------------------------------------------------------

    def _exact(self, split: Any, own: np.ndarray, copies: np.ndarray) -> list[dict[str, Any]]:
        mask = own & copies
        count = int(mask.sum())
        if not count:
            return []
        sets = np.unique(self.digest[mask]).size
        where = split_noun(split.name)
        redundant = count - sets
        message = (
            f"{plural(count, 'image')} of the {where} split are pixel-identical copies of another "
            f"image of the split ({plural(sets, 'set')}; {redundant} redundant). Duplicates count "
            "twice in every metric and give their content extra weight."
        )
        pattern = make_pattern(
            pattern_type="exact_duplicates",
            title="Exact duplicate images",
            description=(
                f"{plural(count, 'image')} of the {where} split have a pixel-identical copy in "
                f"the same split ({plural(sets, 'set')})."
            ),
            severity="medium",
            count=count,
            evidence=[
                f"exact_duplicates[{split.name}]={count}",
                f"duplicate_sets[{split.name}]={sets}",
                f"examples={examples(self._ids(mask))}",
            ],
            metadata={"split": split.name, "sets": sets, "redundant": redundant},
            interpretation=(
                "Metrics on the evaluation split over-weight the duplicated images."
                if split.name == "eval"
                else "Training over-weights the duplicated images."
            ),
            confidence="high",
            recommended_action=(
                f"Keep one image of each duplicate set in the {where} split "
                "(data_quality.duplicate_groups lists them)."
            ),
            recommendation_title="Remove exact duplicate images",
            priority=4,
            impact=(
                "duplicated test images weight some content more than others in every metric; "
                "de-duplicating benchmark test sets changed reported accuracies (Barz & "
                "Denzler, 2020)."
            ),
            literature_note="Barz & Denzler, 'Do We Train on Test Data?', J. Imaging 2020.",
        )
        return [
            make_issue(
                kind="exact_duplicates",
                severity="warning",
                split=split.name,
                indices=self._ordered(mask),
                message=message,
                thresholds={"min_contrast": self.config["min_contrast"]},
                summary="exact_duplicate_images",
                pattern=pattern,
            )
        ]

    def _near(self, split: Any, own: np.ndarray, digests: np.ndarray) -> list[dict[str, Any]]:
        mask = own & (digests >= 2)
        count = int(mask.sum())
        if not count:
            return []
        groups = np.unique(self.group[mask]).size
        message = (
            f"{plural(count, 'image')} of the {split_noun(split.name)} split are near-identical "
            f"to another image of the split (resized, re-encoded or slightly edited copies; "
            f"{plural(groups, 'group')})."
        )
        return [
            make_issue(
                kind="near_duplicates",
                severity="warning",
                split=split.name,
                indices=self._ordered(mask),
                message=message,
                thresholds=self.thresholds,
                summary="near_duplicate_images",
            )
        ]

    def _conflicts(self, split: Any, own: np.ndarray) -> list[dict[str, Any]]:
        mask = own & self.conflict
        count = int(mask.sum())
        if not count:
            return []
        groups = np.unique(self.group[mask]).size
        where = split_noun(split.name)
        text = self.label_text
        pairs = self._conflict_pairs(mask)
        first_a, first_b = self._pattern_classes(pairs[0]) if pairs else ("", "")
        label = "label set" if self.multilabel else "label"
        message = (
            f"{plural(count, 'image')} of the {where} split have a duplicate (in either split) "
            f"with a different {label} ({plural(groups, 'group')}); at most one {label} can be "
            "right."
        )
        pattern = make_pattern(
            pattern_type="duplicate_label_conflict",
            title="Duplicates with conflicting labels",
            description=(
                f"{plural(count, 'image')} of the {where} split are duplicates of an image "
                f"labelled differently ({plural(groups, 'group')})."
                + (" Labels are compared as whole label sets." if self.multilabel else "")
            ),
            severity="high",
            count=count,
            evidence=[
                f"label_conflicts[{split.name}]={count}",
                f"conflicting_groups[{split.name}]={groups}",
                *(f"labels={text[int(a)]}/{text[int(b)]}" for a, b in pairs[:2]),
                f"examples={examples(self._ids(mask))}",
            ],
            metadata={"split": split.name, "groups": groups, "label_sets": self.multilabel},
            interpretation=(
                f"The same image carries two {label}s, so one of them is wrong: the model is "
                f"penalised (or trained) against a wrong {label}."
            ),
            confidence="high",
            recommended_action=(
                "Relabel or remove the conflicting duplicates listed in "
                "data_quality.duplicate_groups (label_conflict: true)."
            ),
            recommendation_title="Resolve duplicates with conflicting labels",
            priority=2,
            impact=(
                "label noise in test sets can reorder models (Northcutt et al., 2021, estimate "
                "an average of 3.3% label errors across 10 benchmark test sets)."
            ),
            literature_note=(
                "Northcutt, Athalye & Mueller, 'Pervasive Label Errors in Test Sets "
                "Destabilize Machine Learning Benchmarks', NeurIPS 2021 Datasets and Benchmarks."
            ),
            class_a=str(first_a),
            class_b=str(first_b),
        )
        return [
            make_issue(
                kind="label_conflicts",
                severity="critical",
                split=split.name,
                indices=self._ordered(mask),
                message=message,
                thresholds=self.thresholds,
                summary="label_conflicts",
                pattern=pattern,
            )
        ]

    def _pattern_classes(self, pair: tuple[int, int]) -> tuple[str, str]:
        """``class_a``/``class_b`` of a conflict pattern: the two labels (single-label), or the
        first two labels on which the two label sets disagree (multi-label)."""
        if not self.multilabel:
            return str(pair[0]), str(pair[1])
        first, second = (self.label_sets[np.flatnonzero(self.labels == key)[0]] for key in pair)
        differing = [str(k) for k in np.flatnonzero((first > 0) != (second > 0))]
        padded = [*differing, "", ""]
        return padded[0], padded[1]

    def _conflict_pairs(self, mask: np.ndarray) -> list[tuple[int, int]]:
        """The two smallest labels (label-set keys for multi-label data) of each conflicting
        group, most frequent pair first."""
        groups = np.unique(self.group[mask])
        member = np.flatnonzero(np.isin(self.group, groups))
        group_label = np.unique(np.stack([self.group[member], self.labels[member]]), axis=1)
        starts = np.flatnonzero(np.r_[True, group_label[0, 1:] != group_label[0, :-1]])
        pairs = np.stack([group_label[1, starts], group_label[1, starts + 1]], axis=1)
        values, counts = np.unique(pairs, axis=0, return_counts=True)
        return [(int(a), int(b)) for a, b in values[np.argsort(-counts, kind="stable")]]

    def _leakage(self) -> list[dict[str, Any]]:
        if len(self.table.splits) < 2:
            return []
        mask = self._in_split(0) & self.has_train
        count = int(mask.sum())
        if not count:
            return []
        scanned = len(self.table.splits[0])
        exact = self._leaked_exactly(mask)
        details = self._matches(mask)
        message = (
            f"{plural(count, 'evaluation image')} ({percent(count / scanned)}) have an exact "
            f"({exact}) or near ({count - exact}) copy in the training split: the model may have "
            "seen them during training, so metrics on them overstate its accuracy."
        )
        pattern = make_pattern(
            pattern_type="train_eval_leakage",
            title="Evaluation images leaked from the training split",
            description=(
                f"{plural(count, 'evaluation image')} ({percent(count / scanned)}) also appear "
                f"in the training split ({exact} exact, {count - exact} near copies)."
            ),
            severity="critical",
            count=count,
            evidence=[
                f"leaked_samples={count}",
                f"leaked_share={count / scanned:.4f}",
                f"exact_copies={exact}",
                f"examples={examples(self._ids(mask))}",
            ],
            metadata={"exact": exact, "near": count - exact, "scanned": scanned},
            interpretation=(
                "Metrics on leaked images measure memorisation, not generalisation; the "
                "reported accuracy is optimistic by an unknown amount."
            ),
            confidence="high" if exact else "medium",
            recommended_action=(
                "Remove the leaked images from the evaluation split (or from training and "
                "retrain), then analyze again."
            ),
            recommendation_title="Remove train/evaluation leakage",
            priority=1,
            impact=(
                "Barz & Denzler (2020) found near duplicates of 3.3% of the CIFAR-10 and 10% of "
                "the CIFAR-100 test images in the training sets; without them, every model they "
                "tested scored lower."
            ),
            literature_note="Barz & Denzler, 'Do We Train on Test Data?', J. Imaging 2020.",
        )
        return [
            make_issue(
                kind="leakage",
                severity="critical",
                split="eval",
                indices=self._ordered(mask),
                message=message,
                thresholds=self.thresholds,
                summary="leaked_samples",
                details=details,
                pattern=pattern,
            )
        ]

    def _leaked_exactly(self, mask: np.ndarray) -> int:
        train = self._in_split(1) & (self.digest >= 0)
        return int(np.isin(self.digest[mask], self.digest[train]).sum())

    def _matches(self, mask: np.ndarray) -> list[dict[str, Any]]:
        """For the first leaked images: their training-split copies and whether one is exact."""
        copies: dict[int, list[int]] = {}
        for row in np.flatnonzero(self._in_split(1) & self.in_group).tolist():
            copies.setdefault(int(self.group[row]), []).append(row)
        rows = np.flatnonzero(mask)
        rows = rows[np.lexsort((self.table.row_in_split[rows], self.group[rows]))]
        details = []
        for row in rows[:DETAILS_LISTED].tolist():
            matches = copies.get(int(self.group[row]), [])
            details.append(
                {
                    "index": self._position(row),
                    "train_indices": [self._position(m) for m in matches[:MATCHES_LISTED]],
                    "train_sample_ids": [self._sample_id(m) for m in matches[:MATCHES_LISTED]],
                    "exact": bool(np.isin(self.digest[row], self.digest[matches]).item()),
                }
            )
        return details

    # -- groups -----------------------------------------------------------------------------

    def _groups(self) -> list[dict[str, Any]]:
        rows = np.flatnonzero(self.in_group)
        rows = rows[np.lexsort((self.table.row_in_split[rows], self.table.split_of[rows]))]
        members: dict[int, list[int]] = {}
        for row in rows.tolist():
            members.setdefault(int(self.group[row]), []).append(row)
        groups: list[dict[str, Any]] = []
        for group_rows in members.values():
            labels = self.labels[group_rows]
            groups.append(
                {
                    "kind": "exact" if np.unique(self.digest[group_rows]).size == 1 else "near",
                    "size": len(group_rows),
                    "splits": [
                        self.table.splits[int(k)].name for k in self.table.split_of[group_rows]
                    ],
                    "indices": [self._position(row) for row in group_rows],
                    "labels": [self.label_text[int(label)] for label in labels],
                    "label_conflict": bool(np.unique(labels).size > 1),
                }
            )
        groups.sort(
            key=lambda g: (
                not g["label_conflict"],
                len(set(g["splits"])) < 2,
                -g["size"],
            )
        )
        return groups
