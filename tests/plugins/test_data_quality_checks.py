"""The built-in data-quality checks (plugin ``data_quality``), each on views with known defects.

Views are built by the core's scan (:func:`bnnr_core.analysis.data_quality.build_view`) from
in-memory arrays; where a check must be driven into a corner (hashes that collide, an unreadable
row) a scanned split is edited with ``attrs.evolve``. Model outputs are built by hand.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import attrs
import bnnr_data_quality
import numpy as np
import pytest
from bnnr_data_quality import search
from bnnr_data_quality.duplicates import DuplicatesCheck
from bnnr_data_quality.labels import ClassBalanceCheck, LabelErrorsCheck
from bnnr_data_quality.outliers import OutliersCheck
from bnnr_data_quality.properties import ImagePropertiesCheck

from bnnr_core.analysis.data import SplitSource, load_eval_data
from bnnr_core.analysis.data_quality import (
    CheckSkipped,
    DataQualityView,
    ModelOutputs,
    build_view,
)
from bnnr_core.analysis.evaluation import Evaluation
from bnnr_core.analysis.findings import build_findings, check_pattern
from bnnr_core.plugins import load_plugins
from bnnr_core.protocols import DataQualityCheck

CHECKS = {
    "duplicates": DuplicatesCheck,
    "image_properties": ImagePropertiesCheck,
    "class_balance": ClassBalanceCheck,
    "label_errors": LabelErrorsCheck,
    "outliers": OutliersCheck,
}
NAMES = ("ant", "bee", "cat")


def _linear(size_in: int, size_out: int) -> np.ndarray:
    centres = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
    eye = np.eye(size_in)
    return np.stack([np.interp(centres, np.arange(size_in), eye[k]) for k in range(size_in)], 1)


def natural(count: int, seed: int = 0, side: int = 32) -> np.ndarray:
    """``count`` distinct natural-looking colour images, uint8 ``(count, 3, side, side)``: a
    smooth random field, two sharp rectangles, noise."""
    rng = np.random.default_rng(seed)
    grow = _linear(4, side)
    pixels = np.einsum("oh,bhwc,pw->bopc", grow, rng.uniform(0, 255, (count, 4, 4, 3)), grow)
    axis = np.arange(side)
    for _ in range(2):
        low = rng.integers(0, side - 6, (count, 2))
        size = rng.integers(4, side // 2, (count, 2))
        rows = (axis >= low[:, :1]) & (axis < low[:, :1] + size[:, :1])
        cols = (axis >= low[:, 1:]) & (axis < low[:, 1:] + size[:, 1:])
        colour = rng.uniform(0, 255, (count, 1, 1, 3))
        pixels = np.where((rows[:, :, None] & cols[:, None, :])[..., None], colour, pixels)
    pixels += rng.normal(0, 8, pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8).transpose(0, 3, 1, 2).copy()


def source(images: np.ndarray, labels: Any = None, name: str = "eval") -> SplitSource:
    count = images.shape[0]
    labels = np.zeros(count, dtype=np.int64) if labels is None else np.asarray(labels)
    return SplitSource(
        name=name,
        labels=labels.astype(np.int64),
        sample_ids=tuple(f"test:{name}:{k}" for k in range(count)),
        arrays=images,
    )


def view_of(
    images: np.ndarray,
    labels: Any = None,
    *,
    train: np.ndarray | None = None,
    train_labels: Any = None,
    evaluation: Evaluation | None = None,
) -> DataQualityView:
    return build_view(
        source(images, labels),
        class_names=NAMES,
        train_source=None if train is None else source(train, train_labels, "train"),
        evaluation=evaluation,
    )


def evaluation_of(
    probabilities: np.ndarray, targets: np.ndarray, embeddings: np.ndarray | None = None
) -> Evaluation:
    return Evaluation(
        task="classification",
        class_names=NAMES[: probabilities.shape[1]],
        probabilities=probabilities,
        targets=targets,
        predictions=probabilities.argmax(axis=1),
        per_sample_loss=np.zeros(len(targets)),
        embeddings=embeddings,
    )


def run(check: Any, view: DataQualityView, **config: Any) -> list[dict[str, Any]]:
    return list(check.run(view, config={**check.defaults, **config}))


def issues_of(found: list[dict[str, Any]], kind: str, split: str = "eval") -> list[int]:
    for issue in found:
        if issue["type"] == kind and issue["split"] == split:
            return list(issue["indices"])
    return []


# -------------------------------------------------------------------------------------------
# The plugin
# -------------------------------------------------------------------------------------------


def test_plugin_registers_every_check_through_its_entry_point() -> None:
    host = load_plugins(environ={})
    assert host.record("data_quality").status == "ok"
    assert host.available("data_quality_check") == sorted(CHECKS)
    for name, cls in CHECKS.items():
        check = host.component("data_quality_check", name).create()
        assert isinstance(check, cls) and isinstance(check, DataQualityCheck)
        assert check.name == name
        assert set(bnnr_data_quality.CHECKS) == set(CHECKS)


def test_loading_the_plugin_imports_neither_numpy_nor_torch_nor_pil() -> None:
    code = (
        "import sys\n"
        "import bnnr_data_quality\n"
        "from bnnr_core.plugins import load_plugins\n"
        "record = load_plugins(autoload=False).register(bnnr_data_quality, 'data_quality')\n"
        "assert record.status == 'ok' and record.provides, record\n"
        "heavy = [m for m in ('numpy', 'torch', 'PIL') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert completed.returncode == 0, completed.stderr


@pytest.mark.parametrize("cls", CHECKS.values())
def test_every_threshold_has_a_json_scalar_default(cls: Any) -> None:
    assert cls.defaults
    for value in cls.defaults.values():
        assert isinstance(value, (bool, int, float))


# -------------------------------------------------------------------------------------------
# Search
# -------------------------------------------------------------------------------------------


def _brute_pairs(hashes: np.ndarray, radius: int) -> set[tuple[int, int]]:
    distance = search.popcount(hashes[:, None] ^ hashes[None, :])
    first, second = np.nonzero(np.triu(distance <= radius, k=1))
    return set(zip(first.tolist(), second.tolist(), strict=True))


@pytest.mark.parametrize("radius", [0, 2, 4, 7])
def test_near_pairs_finds_exactly_the_pairs_within_the_radius(radius: int) -> None:
    rng = np.random.default_rng(radius)
    hashes = list(rng.integers(0, 2**63, 300, dtype=np.uint64))
    for _ in range(150):  # close relatives: flip up to 8 bits of an earlier hash
        value = hashes[int(rng.integers(len(hashes)))]
        for bit in rng.choice(64, int(rng.integers(0, 9)), replace=False):
            value ^= np.uint64(1) << np.uint64(int(bit))
        hashes.append(value)
    array = np.array(hashes, dtype=np.uint64)
    first, second = search.near_pairs(array, radius)
    assert set(zip(first.tolist(), second.tolist(), strict=True)) == _brute_pairs(array, radius)


def test_bands_cover_the_64_bits_and_popcount_has_a_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for radius in (0, 4, 10, 63):
        bands = search.bands(radius)
        assert len(bands) == radius + 1
        assert sum(width for _, width in bands) == 64
        assert bands[-1][0] + bands[-1][1] == 64
    values = np.random.default_rng(0).integers(0, 2**63, 1000, dtype=np.uint64)
    expected = [bin(int(v)).count("1") for v in values]
    assert search.popcount(values).tolist() == expected
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    assert search.popcount(values).tolist() == expected


def test_components_match_a_graph_search() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        count = int(rng.integers(1, 40))
        first = rng.integers(0, count, int(rng.integers(0, 50)))
        second = rng.integers(0, count, first.size)
        labels = search.components(count, first, second)
        seen = list(range(count))  # naive union-find as the reference
        for a, b in zip(first.tolist(), second.tolist(), strict=True):
            ra, rb = seen[a], seen[b]
            seen = [min(ra, rb) if s in (ra, rb) else s for s in seen]
        assert labels.tolist() == seen


# -------------------------------------------------------------------------------------------
# duplicates
# -------------------------------------------------------------------------------------------


def test_exact_and_near_copies_are_grouped_and_distinct_images_are_not() -> None:
    images = natural(120)
    images[100:105] = images[0:5]  # exact copies
    noise = np.random.default_rng(1).integers(-3, 4, images[10:15].shape)
    images[105:110] = np.clip(images[10:15] + noise, 0, 255).astype(np.uint8)  # near copies
    found = run(DuplicatesCheck(), view_of(images))
    assert sorted(issues_of(found, "exact_duplicates")) == [0, 1, 2, 3, 4, *range(100, 105)]
    assert sorted(issues_of(found, "near_duplicates")) == [*range(10, 15), *range(105, 110)]
    groups = found[0]["groups"]
    assert sorted(g["kind"] for g in groups) == ["exact"] * 5 + ["near"] * 5
    assert all(g["size"] == 2 and g["splits"] == ["eval", "eval"] for g in groups)
    assert not issues_of(found, "label_conflicts") and not issues_of(found, "leakage")


def test_blank_images_are_never_duplicates_of_each_other() -> None:
    images = natural(40)
    images[30:33] = 0  # three black images
    images[33:36] = 255  # three white ones
    images[36] = np.array([200, 30, 30], dtype=np.uint8)[:, None, None]  # solid red
    assert run(DuplicatesCheck(), view_of(images)) == []


def test_copies_in_the_training_split_are_leakage_and_other_labels_are_conflicts() -> None:
    evaluation_images, train = natural(60, seed=1), natural(80, seed=2)
    evaluation_images[0:4] = train[0:4]  # leaked, same label
    evaluation_images[4] = train[4]  # leaked under another label
    labels, train_labels = np.zeros(60), np.zeros(80)
    train_labels[4] = 2
    view = view_of(evaluation_images, labels, train=train, train_labels=train_labels)
    found = run(DuplicatesCheck(), view)
    assert sorted(issues_of(found, "leakage")) == [0, 1, 2, 3, 4]
    assert issues_of(found, "label_conflicts") == [4]
    assert issues_of(found, "label_conflicts", "train") == [4]
    leakage = next(issue for issue in found if issue["type"] == "leakage")
    assert leakage["pattern"]["severity"] == "critical"
    assert {d["index"]: d["train_indices"] for d in leakage["details"]}[4] == [4]
    conflict = next(g for g in found[0]["groups"] if g["label_conflict"])
    assert conflict["labels"] == ["ant", "cat"] and conflict["splits"] == ["eval", "train"]
    assert not issues_of(run(DuplicatesCheck(), view, cross_split=False), "leakage")


def _with_hashes(view: DataQualityView, changes: dict[int, int]) -> DataQualityView:
    scan = view.eval_split
    hashes = scan.phash.copy()
    for row, value in changes.items():
        hashes[row] = np.uint64(value)
    return attrs.evolve(view, splits={"eval": attrs.evolve(scan, phash=hashes)}, cache={})


def test_embeddings_propose_near_duplicates_the_tight_hash_misses() -> None:
    images = natural(40)
    images[39] = images[0]
    images[39, :, 0, 0] ^= 1  # one pixel a grey level off: not an exact copy
    rng = np.random.default_rng(0)
    embeddings = rng.normal(0, 1, (40, 8))
    embeddings[39] = embeddings[0] + 0.01
    evaluation = evaluation_of(np.full((40, 3), 1 / 3), np.zeros(40, dtype=np.int64), embeddings)
    flipped = int(np.uint64(0b111111) ^ view_of(images).eval_split.phash[0])  # 6 bits off
    plain = _with_hashes(view_of(images), {39: flipped})
    assert run(DuplicatesCheck(), plain) == []
    with_model = _with_hashes(view_of(images, evaluation=evaluation), {39: flipped})
    assert issues_of(run(DuplicatesCheck(), with_model), "near_duplicates") == [0, 39]
    assert run(DuplicatesCheck(), with_model, embedding_similarity=0.99999) == []


def test_similar_hashes_alone_never_make_duplicates() -> None:
    images = natural(30)
    dark = (natural(2, seed=5) * 0.15).astype(np.uint8)
    images[28:30] = dark  # two different dark images
    view = view_of(images)
    same = {1: int(view.eval_split.phash[0]), 29: int(view.eval_split.phash[28])}
    assert run(DuplicatesCheck(), _with_hashes(view, same)) == []


def test_the_bundled_digits_have_no_duplicates_within_or_across_splits() -> None:
    data = load_eval_data("digits")
    view = build_view(data.raw, class_names=data.class_names, train_source=data.train_source())
    assert run(DuplicatesCheck(), view) == []


# -------------------------------------------------------------------------------------------
# image_properties
# -------------------------------------------------------------------------------------------


def test_image_properties_find_planted_odd_images_and_nothing_else() -> None:
    images = natural(200)
    images[0:3] = (images[0:3] * 0.2).astype(np.uint8)  # dark
    images[3:6] = (255 - (255 - images[3:6].astype(float)) * 0.03).astype(np.uint8)
    images[3:6, :, 2:6, 2:6] = 0  # light, with a little dark content
    images[6:8] = images[6:8].mean(axis=1, keepdims=True).astype(np.uint8)  # grey in colour
    images[8:10] = 90  # blank
    images[10:12] = np.repeat(np.repeat(images[10:12, :, ::8, ::8], 8, 2), 8, 3)  # blocky, smooth
    smooth = np.repeat(np.repeat(images[12:14, :, ::4, ::4], 4, 2), 4, 3).astype(float)
    kernel = np.ones(5) / 5  # a box blur along both axes
    for axis in (2, 3):
        smooth = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), axis, smooth)
    images[12:14] = smooth.astype(np.uint8)  # blurry
    found = run(ImagePropertiesCheck(), view_of(images))
    assert sorted(issues_of(found, "dark")) == [0, 1, 2]
    assert sorted(issues_of(found, "light")) == [3, 4, 5]
    assert sorted(issues_of(found, "grayscale")) == [6, 7]
    assert sorted(issues_of(found, "near_constant")) == [8, 9]
    assert set(issues_of(found, "blurry")) >= {12, 13}
    assert set(issues_of(found, "blurry")) <= {10, 11, 12, 13}
    assert all(issue["severity"] in ("warning", "info") for issue in found)


def test_an_issue_of_most_images_is_reported_as_a_property_of_the_data_set() -> None:
    images = (natural(50) * 0.2).astype(np.uint8)  # all dark
    found = run(ImagePropertiesCheck(), view_of(images))
    dark = next(issue for issue in found if issue["type"] == "dark")
    assert dark["count"] == 50 and dark["severity"] == "info" and "pattern" not in dark
    found = run(ImagePropertiesCheck(), view_of(images), max_prevalence=1.0)
    assert next(issue for issue in found if issue["type"] == "dark")["severity"] == "warning"


def test_unreadable_rows_are_reported_with_their_reason() -> None:
    view = view_of(natural(30))
    scan = view.eval_split
    readable = scan.readable.copy()
    readable[[3, 7]] = False
    error = tuple(
        "OSError: image file is truncated" if k == 3 else e for k, e in enumerate(scan.error)
    )
    truncated = scan.truncated.copy()
    truncated[3] = True
    broken = attrs.evolve(scan, readable=readable, error=error, truncated=truncated)
    found = run(ImagePropertiesCheck(), attrs.evolve(view, splits={"eval": broken}))
    issue = next(issue for issue in found if issue["type"] == "unreadable")
    assert issue["indices"] == [3, 7] and issue["count"] == 2
    assert issue["details"][0]["truncated"] is True
    assert check_pattern(issue["pattern"])["pattern_type"] == "unreadable_files"


# -------------------------------------------------------------------------------------------
# class_balance
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "flagged"),
    [((100, 100, 5), ["cat"]), ((100, 100, 0), ["cat"]), ((100, 60, 20), [])],
)
def test_class_balance_flags_classes_far_below_the_largest(
    counts: tuple[int, int, int], flagged: list[str]
) -> None:
    labels = np.repeat(np.arange(3), counts)
    found = run(ClassBalanceCheck(), view_of(natural(len(labels)), labels))
    names = [d["class_name"] for issue in found for d in issue["details"]]
    assert names == flagged
    if flagged:
        assert found[0]["summary"]["imbalance_ratio"] == counts[2] / 100
        assert check_pattern(found[0]["pattern"])["class_a"] == "2"


# -------------------------------------------------------------------------------------------
# label_errors and outliers
# -------------------------------------------------------------------------------------------


def _probabilities(labels: np.ndarray, swapped: np.ndarray, seed: int = 0) -> np.ndarray:
    """Confident on the label, except ``swapped`` rows (confident on another class) and every
    fifth row (unsure but right)."""
    rng = np.random.default_rng(seed)
    classes = int(labels.max()) + 1
    probabilities = np.zeros((labels.size, classes))
    for row, label in enumerate(labels):
        target = (label + 1) % classes if row in swapped else label
        main = (
            rng.uniform(0.4, 0.55)
            if row % 5 == 0 and row not in swapped
            else rng.uniform(0.75, 0.98)
        )
        probabilities[row] = (1 - main) / (classes - 1)
        probabilities[row, target] = main
    return probabilities


def test_label_errors_find_swapped_labels_ranked_by_self_confidence() -> None:
    labels = np.repeat(np.arange(3), 40)
    swapped = np.array([3, 17, 44, 58, 81, 99, 110])
    evaluation = evaluation_of(_probabilities(labels, swapped), labels)
    found = run(LabelErrorsCheck(), view_of(natural(120), labels, evaluation=evaluation))
    (issue,) = found
    assert sorted(issue["indices"]) == swapped.tolist()
    given = [d["given_probability"] for d in issue["details"]]
    assert given == sorted(given)
    assert issue["details"][0]["suggested"] != issue["details"][0]["given"]
    assert check_pattern(issue["pattern"])["severity"] == "high"  # 7 of 120 >= 5%


def test_label_errors_map_rows_to_dataset_positions() -> None:
    labels = np.repeat(np.arange(3), 20)
    rows = np.array([k for k in range(60) if k not in (5, 6)])  # two images not evaluated
    probabilities = _probabilities(labels[rows], np.array([10]))
    evaluation = attrs.evolve(evaluation_of(probabilities, labels[rows]), dataset_indices=rows)
    view = view_of(natural(60), labels, evaluation=evaluation)
    assert view.model is not None and not view.model.evaluated[[5, 6]].any()
    assert run(LabelErrorsCheck(), view)[0]["indices"] == [12]


def test_label_errors_and_outliers_skip_without_what_they_need() -> None:
    view = view_of(natural(30))
    for check in (LabelErrorsCheck(), OutliersCheck()):
        with pytest.raises(CheckSkipped):
            run(check, view)
    multi = ModelOutputs(
        task="multilabel",
        class_names=NAMES,
        evaluated=np.ones(30, dtype=bool),
        probabilities=np.full((30, 3), 0.5),
        targets=np.ones((30, 3)),
        predictions=np.ones((30, 3)),
        embeddings=None,
    )
    with pytest.raises(CheckSkipped, match="multi-label"):
        run(LabelErrorsCheck(), attrs.evolve(view, model=multi))


def test_outliers_are_the_images_far_from_every_cluster() -> None:
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(3), 50)
    centres = rng.normal(0, 1, (3, 16))
    embeddings = centres[labels] + rng.normal(0, 0.1, (150, 16))
    planted = [7, 70, 140]
    embeddings[planted] = rng.normal(0, 3, (3, 16))
    evaluation = evaluation_of(_probabilities(labels, np.array([])), labels, embeddings)
    (issue,) = run(OutliersCheck(), view_of(natural(150), labels, evaluation=evaluation))
    assert sorted(issue["indices"]) == planted
    assert check_pattern(issue["pattern"])["severity"] == "low"


def test_every_pattern_passes_check_pattern_and_groups_into_findings() -> None:
    images, train = natural(80, seed=1), natural(40, seed=2)
    images[0:3] = train[0:3]
    images[10:12] = images[20:22]
    images[30] = 0
    labels = np.repeat(np.arange(3), [40, 36, 4])
    train_labels = np.zeros(40)
    train_labels[0] = 1
    evaluation = evaluation_of(_probabilities(labels, np.array([15, 25])), labels)
    view = view_of(images, labels, train=train, train_labels=train_labels, evaluation=evaluation)
    patterns = [
        check_pattern(issue["pattern"])
        for check in CHECKS.values()
        for issue in (run(check(), view) if check is not OutliersCheck else [])
        if "pattern" in issue
    ]
    kinds = {pattern["pattern_type"] for pattern in patterns}
    assert kinds >= {
        "train_eval_leakage",
        "duplicate_label_conflict",
        "exact_duplicates",
        "near_constant_images",
        "class_imbalance",
        "suspected_label_errors",
    }
    assert all(pattern["section"] == "data_quality" for pattern in patterns)
    assert all(
        pattern["recommendation"]["expected_impact"].startswith(
            "Literature context (not verified on this run): "
        )
        for pattern in patterns
    )
    findings = build_findings(patterns, class_names=NAMES).findings
    assert findings[0]["severity"] == "critical"
