"""The data-quality step end to end: an image folder with planted defects, the real plugin.

The folder holds natural-looking synthetic images (smooth colour fields with sharp shapes and
mild noise, 48x48) plus known defects: exact, re-encoded and resized copies, copies across
train/val, copies under another label, blank, dark, bright, blurred, posterised, odd-sized,
odd-shaped and grey images, and unreadable files. The model's outputs are built by hand so that
swapped labels and embedding outliers are known. Precision and recall of every issue type must
be at least 0.9 on the planted set.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import bnnr_data_quality
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from bnnr_core import hookimpl
from bnnr_core.analysis.data import SplitSource, load_eval_data
from bnnr_core.analysis.data_quality import (
    CHECK_KIND,
    DataQualityOptions,
    DataQualityResult,
    build_view,
    run_data_quality,
    validate_config,
)
from bnnr_core.analysis.evaluation import Evaluation
from bnnr_core.analysis.findings import build_findings, check_pattern
from bnnr_core.errors import BnnrError
from bnnr_core.plugins import PluginHost, load_plugins

CLASSES = ("ant", "bee", "cat", "dog")
SIDE = 48
PER_CLASS_VAL = 50
PER_CLASS_TRAIN = 30
MIN_SCORE = 0.9


def natural_image(rng: np.random.Generator, side: int = SIDE) -> np.ndarray:
    """A smooth random colour field with 2-4 sharp ellipses or rectangles, a grey texture and
    mild noise: uint8 ``(side, side, 3)``."""
    coarse = rng.uniform(0, 255, size=(4, 4, 3)).astype(np.uint8)
    image = Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 5))):
        x0, y0 = (int(v) for v in rng.integers(0, side - 8, 2))
        width, height = (int(v) for v in rng.integers(6, side // 2, 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x0, y0, x0 + width, y0 + height], fill=colour)
    grain = rng.uniform(0, 255, (side // 3, side // 3)).astype(np.uint8)
    texture = Image.fromarray(grain).resize((side, side), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32)
    pixels += 25 * (np.asarray(texture, dtype=np.float32)[:, :, None] - 127) / 127
    pixels += rng.normal(0, 8, (side, side, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def overexposed(array: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """``array`` washed out towards white, with a small dark square (under 5% of the pixels)
    somewhere."""
    image = Image.fromarray((255 - (255 - array.astype(np.float32)) * 0.04).astype(np.uint8))
    x, y = (int(v) for v in rng.integers(0, SIDE - 8, 2))
    ImageDraw.Draw(image).rectangle([x, y, x + 7, y + 7], fill=(0, 0, 0))
    return image


def jpeg(array: np.ndarray, quality: int = 70) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


class Planted:
    """Writes an image-folder tree and remembers which sample ids carry which defect."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.truth: dict[str, set[str]] = {}
        self.counter = 0

    def save(self, split: str, label: str, image: Image.Image | bytes, suffix: str = "png") -> str:
        folder = self.root / split / label
        folder.mkdir(parents=True, exist_ok=True)
        self.counter += 1
        path = folder / f"img_{self.counter:04d}.{suffix}"
        if isinstance(image, bytes):
            path.write_bytes(image)
        else:
            image.save(path)
        return path.relative_to(self.root).as_posix()

    def mark(self, kind: str, *sample_ids: str) -> None:
        self.truth.setdefault(kind, set()).update(sample_ids)


def build_planted(root: Path) -> tuple[Planted, dict[str, np.ndarray]]:
    """The planted tree; returns it and the pixels of every clean validation image by id."""
    rng = np.random.default_rng(7)
    planted = Planted(root)
    clean: dict[str, np.ndarray] = {}
    for label in CLASSES:
        for _ in range(PER_CLASS_TRAIN):
            planted.save("train", label, Image.fromarray(natural_image(rng)))
        for _ in range(PER_CLASS_VAL):
            array = natural_image(rng)
            clean[planted.save("val", label, Image.fromarray(array))] = array
    ids = list(clean)
    label_of = {sample_id: sample_id.split("/")[1] for sample_id in ids}

    # Exact copies within val (same label), and one three-way set.
    for source in ids[0:5]:
        copy = planted.save("val", label_of[source], Image.fromarray(clean[source]))
        planted.mark("exact_duplicates", source, copy)
    third = planted.save("val", label_of[ids[0]], Image.fromarray(clean[ids[0]]))
    planted.mark("exact_duplicates", third)
    # Re-encoded (JPEG) and resized copies within val.
    for source in ids[10:15]:
        copy = planted.save("val", label_of[source], jpeg(clean[source]), "jpg")
        planted.mark("near_duplicates", source, copy)
    for source, side in zip(ids[15:20], (30, 34, 38, 42, 44), strict=True):
        resized = Image.fromarray(clean[source]).resize((side, side), Image.Resampling.BILINEAR)
        copy = planted.save("val", label_of[source], resized)
        planted.mark("near_duplicates", source, copy)
    # Copies under another label: label conflicts (and exact duplicates).
    for source in ids[20:24]:
        other = CLASSES[(CLASSES.index(label_of[source]) + 1) % len(CLASSES)]
        copy = planted.save("val", other, Image.fromarray(clean[source]))
        planted.mark("label_conflicts", source, copy)
        planted.mark("exact_duplicates", source, copy)
    # Leakage: val images copied from train (exact, re-encoded, resized).
    for number in range(9):
        array = natural_image(rng)
        label = CLASSES[number % len(CLASSES)]
        planted.save("train", label, Image.fromarray(array))
        leaked: Image.Image | bytes = Image.fromarray(array)
        if number % 3 == 1:
            leaked = jpeg(array)
        elif number % 3 == 2:
            leaked = Image.fromarray(array).resize((40, 40), Image.Resampling.BILINEAR)
        planted.mark(
            "leakage", planted.save("val", label, leaked, "jpg" if number % 3 == 1 else "png")
        )

    def add(
        kind: str, make: Callable[[int], Image.Image | bytes], count: int, suffix: str = "png"
    ) -> None:
        for number in range(count):
            label = CLASSES[number % len(CLASSES)]
            planted.mark(kind, planted.save("val", label, make(number), suffix))

    colours = [(0, 0, 0), (255, 255, 255), (128, 128, 128), (200, 30, 30), (20, 40, 220)]
    add("near_constant", lambda n: Image.new("RGB", (SIDE, SIDE), colours[n]), 5)
    add("dark", lambda n: Image.fromarray((natural_image(rng) * 0.15).astype(np.uint8)), 5)
    add("light", lambda n: overexposed(natural_image(rng), rng), 5)
    add(
        "blurry",
        lambda n: Image.fromarray(natural_image(rng)).filter(ImageFilter.GaussianBlur(3)),
        5,
    )
    add(
        "low_information",
        lambda n: Image.fromarray(natural_image(rng)).quantize(3).convert("RGB"),
        4,
    )
    add(
        "odd_size",
        lambda n: Image.fromarray(
            natural_image(rng, side=160) if n == 1 else natural_image(rng)
        ).resize(([12, 160, 14][n],) * 2),
        3,
    )
    add(
        "odd_aspect_ratio",
        lambda n: Image.fromarray(natural_image(rng, side=120)).resize((120, 20)),
        3,
    )
    add("grayscale", lambda n: Image.fromarray(natural_image(rng)).convert("L"), 4)
    good_png = (root / ids[30]).read_bytes()
    add("unreadable", lambda n: [good_png[: len(good_png) // 2], b"not an image"][n], 2)
    return planted, clean


def hand_built_evaluation(
    data: Any, planted: Planted, swapped: set[str], outliers: set[str]
) -> Evaluation:
    """Probabilities and embeddings for the decodable validation images: confident on the
    given label, except the ``swapped`` images (another class confidently) and some hard but
    correctly labelled images; embeddings in one cluster per class (copies next to their source),
    except the ``outliers``."""
    rng = np.random.default_rng(11)
    unreadable = planted.truth["unreadable"]
    rows = [i for i, sample_id in enumerate(data.sample_ids) if sample_id not in unreadable]
    classes = len(CLASSES)
    centres = rng.normal(0, 1, (classes, 16))
    probabilities = np.zeros((len(rows), classes))
    embeddings = np.zeros((len(rows), 16))
    for row, position in enumerate(rows):
        sample_id, label = data.sample_ids[position], int(data.labels[position])
        noise = rng.dirichlet(np.ones(classes - 1))
        if sample_id in swapped:
            other = (label + 2) % classes
            main, target = rng.uniform(0.75, 0.95), other
        else:
            main, target = (
                (rng.uniform(0.35, 0.5) if row % 7 == 0 else rng.uniform(0.7, 0.99)),
                label,
            )
        rest = [k for k in range(classes) if k != target]
        probabilities[row, target] = main
        probabilities[row, rest] = (1 - main) * noise
        if target != label and probabilities[row, label] > 0.1:
            probabilities[row, label], probabilities[row, rest[0]] = (
                0.05,
                probabilities[row, rest[0]] + probabilities[row, label] - 0.05,
            )
        embeddings[row] = centres[label] + rng.normal(0, 0.15, 16)
        if sample_id in outliers:
            embeddings[row] = rng.normal(0, 1, 16) * 3
    targets = data.labels[rows]
    return Evaluation(
        task="classification",
        class_names=data.class_names,
        probabilities=probabilities,
        targets=targets,
        predictions=probabilities.argmax(axis=1),
        per_sample_loss=-np.log(probabilities[np.arange(len(rows)), targets]),
        embeddings=embeddings,
        dataset_indices=np.asarray(rows, dtype=np.int64),
        sample_ids=tuple(data.sample_ids[i] for i in rows),
    )


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("planted")
    planted, clean = build_planted(root / "data")
    data = load_eval_data(str(root / "data"))
    ids = sorted(clean)
    swapped = set(ids[40:50]) | set(ids[120:125])
    outliers = set(ids[60:66])
    planted.mark("label_errors", *swapped)
    planted.mark("outliers", *outliers)
    evaluation = hand_built_evaluation(data, planted, swapped, outliers)
    output = root / "out"
    result = run_data_quality(
        host=load_plugins(),
        data=data,
        evaluation=evaluation,
        options=DataQualityOptions(),
        artifacts_dir=output / "artifacts",
    )
    return {"planted": planted, "data": data, "result": result, "output": output}


def _flagged(result: DataQualityResult, kind: str, split: str = "eval") -> set[str]:
    """Every sample id an issue of ``kind`` names (indices are below the cap here)."""
    found: set[str] = set()
    for warning in result.sections["data_quality"]["warnings"]:
        if warning["type"] == kind and warning["split"] == split:
            assert warning["count"] == len(warning["sample_ids"]) <= warning["index_cap"]
            found.update(warning["sample_ids"])
    return found


PLANTED_TYPES = (
    "exact_duplicates",
    "near_duplicates",
    "label_conflicts",
    "leakage",
    "near_constant",
    "dark",
    "light",
    "blurry",
    "low_information",
    "odd_size",
    "odd_aspect_ratio",
    "grayscale",
    "unreadable",
    "label_errors",
    "outliers",
)


@pytest.mark.parametrize("kind", PLANTED_TYPES)
def test_every_planted_defect_is_found_with_precision_and_recall_of_at_least_0_9(
    planted_run: dict[str, Any], kind: str
) -> None:
    truth = planted_run["planted"].truth[kind]
    found = _flagged(planted_run["result"], kind)
    hits = len(truth & found)
    precision = hits / len(found) if found else 0.0
    recall = hits / len(truth)
    assert precision >= MIN_SCORE and recall >= MIN_SCORE, (
        f"{kind}: precision {precision:.2f}, recall {recall:.2f}; "
        f"missed {sorted(truth - found)}, extra {sorted(found - truth)}"
    )


# -------------------------------------------------------------------------------------------
# The report sections
# -------------------------------------------------------------------------------------------


def test_sections_are_json_with_relative_thumbnail_paths_and_no_embedded_images(
    planted_run: dict[str, Any],
) -> None:
    result: DataQualityResult = planted_run["result"]
    output: Path = planted_run["output"]
    assert set(result.sections) == {"data_quality", "data_quality_summary"}
    text = json.dumps(result.sections, allow_nan=False)
    assert "base64" not in text and "iVBOR" not in text
    section = result.sections["data_quality"]
    paths = [p for w in section["warnings"] for p in w["thumbnail_paths"]]
    paths += [p for g in section["duplicate_groups"] for p in g["thumbnail_paths"]]
    assert paths and all(p.startswith("artifacts/data_quality/") for p in paths)
    assert all((output / p).is_file() for p in paths)
    assert {output / p for p in paths} == set(result.files)
    for warning in section["warnings"]:
        assert warning["type"] and warning["check"] and warning["message"]
        assert warning["severity"] in ("critical", "warning", "info")
        assert len(warning["thumbnail_paths"]) <= 8 and len(warning["indices"]) <= 50
        assert len(warning["indices"]) == len(warning["sample_ids"])
    unreadable = next(w for w in section["warnings"] if w["type"] == "unreadable")
    assert unreadable["thumbnail_paths"] == []
    severities = [w["severity"] for w in section["warnings"]]
    assert severities == sorted(severities, key=("critical", "warning", "info").index)
    assert section["duplicate_group_count"] == len(section["duplicate_groups"])
    assert section["summary"].endswith(".") and section["scanned_samples"] == 265


def test_the_flat_summary_holds_numbers_only_and_is_not_a_copy(
    planted_run: dict[str, Any],
) -> None:
    summary = planted_run["result"].sections["data_quality_summary"]
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in summary.values())
    assert summary["leaked_samples"] == 9 and summary["label_conflicts"] == 8
    assert summary["unreadable_files"] == 2 and summary["suspected_label_errors"] == 15
    assert (
        summary["exact_duplicate_groups"] + summary["near_duplicate_groups"]
        == (summary["duplicate_groups"])
    )
    assert "warnings" not in summary


def test_patterns_are_valid_stamped_and_ordered_into_findings(planted_run: dict[str, Any]) -> None:
    result: DataQualityResult = planted_run["result"]
    assert result.scope["status"] == "ok" and result.scope["errors"] == []
    assert result.scope["thresholds"]["duplicates"]["hash_distance"] == 4
    for pattern in result.patterns:
        assert check_pattern(pattern) == pattern
        assert pattern["section"] == "data_quality" and pattern["plugin"] == "data_quality"
    severity = {p["pattern_type"]: p["severity"] for p in result.patterns}
    assert severity["train_eval_leakage"] == "critical"
    assert severity["duplicate_label_conflict"] == "high"
    assert severity["suspected_label_errors"] in ("medium", "high")
    assert severity["near_constant_images"] == "low"
    findings = build_findings(result.patterns).findings
    assert findings[0]["finding_type"] == "train_eval_leakage"


def test_without_an_artifacts_folder_nothing_is_written(
    planted_run: dict[str, Any], tmp_path: Path
) -> None:
    result = run_data_quality(
        host=load_plugins(),
        data=planted_run["data"],
        evaluation=None,
        options=DataQualityOptions(max_samples=60, workers=2),
        artifacts_dir=None,
    )
    assert result.files == []
    section = result.sections["data_quality"]
    assert section["scanned_samples"] == 60
    assert all(w["thumbnail_paths"] == [] for w in section["warnings"])
    assert set(result.scope["skipped"]) == {"label_errors", "outliers"}


def test_decoding_threads_do_not_change_the_result(planted_run: dict[str, Any]) -> None:
    data = planted_run["data"]
    views = [
        build_view(data.raw, class_names=data.class_names, workers=workers) for workers in (1, 3)
    ]
    one, three = views[0].eval_split, views[1].eval_split
    for field in ("phash", "pixel_hash", "thumb", "contrast", "entropy", "readable"):
        assert np.array_equal(getattr(one, field), getattr(three, field)), field
    assert one.error == three.error


def test_a_file_and_the_same_pixels_as_an_array_give_the_same_facts(tmp_path: Path) -> None:
    pixels = natural_image(np.random.default_rng(0))
    Image.fromarray(pixels).save(tmp_path / "one.png")
    as_file = SplitSource(
        name="val", labels=np.zeros(1), sample_ids=("one.png",), files=(tmp_path / "one.png",)
    )
    as_array = SplitSource(
        name="val", labels=np.zeros(1), sample_ids=("one",), arrays=pixels.transpose(2, 0, 1)[None]
    )
    scans = [build_view(s, class_names=("a",)).eval_split for s in (as_file, as_array)]
    for field in ("pixel_hash", "phash", "thumb", "brightness", "laplacian_var", "colourfulness"):
        assert np.array_equal(getattr(scans[0], field), getattr(scans[1], field)), field
    assert scans[0].file_bytes[0] == (tmp_path / "one.png").stat().st_size
    assert scans[1].file_bytes[0] == -1


# -------------------------------------------------------------------------------------------
# Configuration and failures
# -------------------------------------------------------------------------------------------


def _host(*plugins: tuple[str, Any]) -> PluginHost:
    host = load_plugins(autoload=False)
    host.register(bnnr_data_quality, "data_quality")
    for name, plugin in plugins:
        host.register(plugin, name)
    return host


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"nope": {}}, "unknown check"),
        ({"duplicates": {"radius": 3}}, "no threshold 'radius'"),
        ({"duplicates": {"hash_distance": "4"}}, "must be like its default"),
        ({"duplicates": {"hash_distance": 4.5}}, "must be like its default"),
        ({"duplicates": {"cross_split": 1}}, "must be like its default"),
        ({"image_properties": {"dark": float("nan")}}, "must be like its default"),
        ({"outliers": 3}, "must be a mapping"),
    ],
)
def test_bad_configuration_is_a_user_error_before_any_scan(
    config: dict[str, Any], message: str
) -> None:
    data = load_eval_data("digits")
    with pytest.raises(BnnrError, match=message):
        run_data_quality(
            host=_host(),
            data=data,
            evaluation=None,
            options=DataQualityOptions(config=config),
            artifacts_dir=None,
        )


def test_configuration_can_be_validated_before_any_image_is_read() -> None:
    thresholds = validate_config(_host(), {"outliers": {"neighbours": 5}})
    assert thresholds["outliers"] == {"neighbours": 5, "threshold": 3.5}
    assert set(thresholds) == set(bnnr_data_quality.CHECKS)
    with pytest.raises(BnnrError, match="installed checks: none"):
        validate_config(load_plugins(autoload=False), {"duplicates": {}})


def test_thresholds_from_the_configuration_are_used_and_recorded() -> None:
    result = run_data_quality(
        host=_host(),
        data=load_eval_data("digits"),
        evaluation=None,
        options=DataQualityOptions(config={"image_properties": {"low_information": 0.01}}),
        artifacts_dir=None,
    )
    assert result.scope["thresholds"]["image_properties"]["low_information"] == 0.01
    assert result.sections["data_quality"]["thresholds"]["image_properties"]["dark"] == 0.32
    assert result.sections["data_quality"]["warnings"] == []
    assert result.sections["data_quality"]["summary"].startswith("All 360 evaluation")


class _Broken:
    name = "broken"
    defaults: ClassVar[dict[str, Any]] = {}

    def run(self, view: Any, *, config: Any) -> list[dict[str, Any]]:
        raise RuntimeError("boom")


class _Malformed:
    name = "malformed"
    defaults: ClassVar[dict[str, Any]] = {}

    def run(self, view: Any, *, config: Any) -> list[Any]:
        good = {"type": "fine", "severity": "info", "count": 1, "message": "ok", "indices": [0]}
        bad_pattern = {**good, "type": "odd", "pattern": {"pattern_type": "x"}}
        return [good, bad_pattern, {"type": "x", "severity": "fatal", "count": 1, "message": ""}]


class _Extra:
    @hookimpl
    def bnnr_register_data_quality_checks(self, register: Any) -> None:
        register("broken", _Broken)
        register("malformed", _Malformed)


def test_a_failing_check_is_recorded_and_the_others_still_run() -> None:
    result = run_data_quality(
        host=_host(("extra", _Extra())),
        data=load_eval_data("digits"),
        evaluation=None,
        options=DataQualityOptions(),
        artifacts_dir=None,
    )
    scope = result.scope
    assert scope["status"] == "partial"
    assert "duplicates" in scope["checks"] and "malformed" in scope["checks"]
    assert any("'broken'" in error and "boom" in error for error in scope["errors"])
    assert any("bad issue" in error and "fatal" in error for error in scope["errors"])
    assert any("bad pattern" in error for error in scope["errors"])
    types = [w["type"] for w in result.sections["data_quality"]["warnings"]]
    assert "fine" in types and "odd" in types
    assert result.sections["data_quality_summary"]["fine"] == 1


def test_without_any_check_installed_the_step_is_skipped() -> None:
    result = run_data_quality(
        host=load_plugins(autoload=False),
        data=load_eval_data("digits"),
        evaluation=None,
        options=DataQualityOptions(),
        artifacts_dir=None,
    )
    assert result.scope["status"] == "skipped"
    assert result.sections == {"data_quality": {}, "data_quality_summary": {}}
    assert result.patterns == [] and result.files == []


def test_checks_are_registered_components_of_their_kind() -> None:
    assert set(load_plugins().available(CHECK_KIND)) >= {
        "duplicates",
        "image_properties",
        "class_balance",
        "label_errors",
        "outliers",
    }


def test_the_bundled_digits_yield_no_duplicate_group(tmp_path: Path) -> None:
    result = run_data_quality(
        host=_host(),
        data=load_eval_data("digits"),
        evaluation=None,
        options=DataQualityOptions(),
        artifacts_dir=tmp_path / "artifacts",
    )
    section = result.sections["data_quality"]
    assert section["duplicate_groups"] == [] and section["scanned_train_samples"] == 1437
    assert result.sections["data_quality_summary"]["duplicate_groups"] == 0
