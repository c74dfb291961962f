"""``bnnr analyze`` end to end: every model format, every data source, every bad input.

Numbers in the report are checked against an independent computation: the model is run here
with plain torch and the metrics recomputed with scikit-learn.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result
from PIL import Image
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
)
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from bnnr_core.analysis.engine import ANALYSIS_SCHEMA_VERSION, REPORT_KEYS, STAGES
from bnnr_core.cli import cli
from bnnr_core.datasets.digits import CLASS_NAMES, MEAN, STD, load_digits
from bnnr_core.demo import save_digits_checkpoint
from bnnr_core.plugins import load_plugins

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def invoke(*args: str, full: bool = False) -> Result:
    """``bnnr analyze --quiet ARGS``; saliency and data quality only with ``full`` (they have
    their own tests; the report's other sections do not depend on them)."""
    light = [] if full else ["--no-xai", "--no-data-quality"]
    return CliRunner().invoke(cli, ["analyze", "--quiet", *light, *args], catch_exceptions=False)


def report_of(output: Path) -> dict[str, Any]:
    return json.loads((output / "analysis_report.json").read_text())


def assert_one_sentence_error(result: Result, *needles: str) -> None:
    """Exit code 2, one ``Error:`` line, no traceback, and the expected words."""
    assert result.exit_code == 2, result.output
    text = result.output.strip()
    assert "Traceback" not in text
    assert text.startswith("Error:") or "Error:" in text.splitlines()[-1], text
    for needle in needles:
        assert needle in text, text


def independent_digits_metrics(model: torch.nn.Module) -> dict[str, Any]:
    """Run ``model`` on the digits evaluation split with plain torch; score it with sklearn."""
    split = load_digits("eval")
    images = torch.from_numpy(split.images[:, None]).float().div(255.0)
    images = (images - MEAN[0]) / STD[0]
    with torch.no_grad():
        probabilities = torch.softmax(model.eval()(images), dim=1).double().numpy()
    return scores(probabilities, split.labels)


def scores(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    predicted = probabilities.argmax(1)
    classes = list(range(probabilities.shape[1]))
    return {
        "accuracy": accuracy_score(labels, predicted),
        "balanced_accuracy": balanced_accuracy_score(labels, predicted),
        "f1_macro": f1_score(labels, predicted, average="macro", labels=classes, zero_division=0),
        "precision_macro": precision_score(
            labels, predicted, average="macro", labels=classes, zero_division=0
        ),
        "recall_macro": recall_score(
            labels, predicted, average="macro", labels=classes, zero_division=0
        ),
        "cohen_kappa": cohen_kappa_score(labels, predicted),
        "loss": log_loss(labels, probabilities, labels=classes),
        "confusion": sk_confusion_matrix(labels, predicted, labels=classes).tolist(),
        "recall": recall_score(labels, predicted, average=None, labels=classes, zero_division=0),
        "probabilities": probabilities,
        "labels": labels,
    }


def hand_ece(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error with a plain loop over right-closed bins."""
    total = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        members = [
            (c, ok)
            for c, ok in zip(confidence, correct, strict=True)
            if (low < c <= high) or (b == 0 and c == 0)
        ]
        if members:
            gap = abs(np.mean([ok for _, ok in members]) - np.mean([c for c, _ in members]))
            total += len(members) / len(confidence) * gap
    return total


def assert_matches(report: dict[str, Any], expected: dict[str, Any], *, tol: float = 1e-6) -> None:
    for name in (
        "accuracy",
        "balanced_accuracy",
        "f1_macro",
        "precision_macro",
        "recall_macro",
        "cohen_kappa",
    ):
        assert report["metrics"][name] == pytest.approx(expected[name], abs=tol), name
    assert report["metrics"]["loss"] == pytest.approx(expected["loss"], abs=1e-4)
    assert report["confusion"]["matrix"] == expected["confusion"]
    labels, probabilities = expected["labels"], expected["probabilities"]
    predicted, confidence = probabilities.argmax(1), probabilities.max(1)
    for index, recall in enumerate(expected["recall"]):
        if (labels == index).any():
            entry = report["per_class_accuracy"][str(index)]
            assert entry["accuracy"] == pytest.approx(recall, abs=tol)
            assert entry["support"] == int((labels == index).sum())
    classes = probabilities.shape[1]
    assert [report["true_distribution"][str(c)] for c in range(classes)] == np.bincount(
        labels, minlength=classes
    ).tolist()
    assert [report["pred_distribution"][str(c)] for c in range(classes)] == np.bincount(
        predicted, minlength=classes
    ).tolist()
    ece = hand_ece(confidence, predicted == labels)
    assert report["calibration_summary"]["ece"] == pytest.approx(ece, abs=1e-5)
    assert report["metrics"]["ece"] == pytest.approx(ece, abs=1e-5)
    wrong = np.flatnonzero(predicted != labels)
    if wrong.size:
        worst = wrong[np.argmax(confidence[wrong])]
        first = report["confident_errors"][0]
        # Digits ids end in ":<index>"; the digit PNGs are named after that index, the RGB
        # folder files after their position within their class of 6.
        assert first["sample_id"].rsplit(":", 1)[-1].rsplit("/", 1)[-1] in {
            str(worst),
            f"{worst:04d}.png",
            f"{worst % 6}.png",
        }
        assert first["true_label"] == int(labels[worst])
        assert first["confidence"] == pytest.approx(confidence[worst], abs=1e-6)
    assert len(report["confident_errors"]) == min(20, wrong.size)


@pytest.fixture(scope="module")
def digits_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("checkpoint")
    return save_digits_checkpoint(load_plugins(), folder / "digits.pt", epochs=2)


@pytest.fixture(scope="module")
def digits_model(digits_checkpoint: Path) -> torch.nn.Module:
    from bnnr_core.modelio.loader import load_model

    return load_model(digits_checkpoint, host=load_plugins()).model


@pytest.fixture(scope="module")
def digits_report(digits_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("digits") / "out"
    result = invoke(
        "--model",
        str(digits_checkpoint),
        "--data",
        "digits",
        "--output",
        str(output),
        "--cv-folds",
        "3",
        full=True,
    )
    assert result.exit_code == 0, result.output
    return output


def write_digits_folder(root: Path, *, per_class: int | None = None) -> Path:
    """The digits evaluation split as an ImageFolder of lossless PNGs."""
    split = load_digits("eval")
    seen: dict[int, int] = {}
    for index, (image, label) in enumerate(zip(split.images, split.labels, strict=True)):
        seen[int(label)] = seen.get(int(label), 0) + 1
        if per_class is not None and seen[int(label)] > per_class:
            continue
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{index:04d}.png")
    return root


# -------------------------------------------------------------------------------------------
# The report
# -------------------------------------------------------------------------------------------


def test_bnnr_checkpoint_on_digits_matches_an_independent_computation(
    digits_report: Path, digits_model: torch.nn.Module
) -> None:
    report = report_of(digits_report)
    assert set(REPORT_KEYS) <= set(report)
    assert report["schema_version"] == ANALYSIS_SCHEMA_VERSION
    assert_matches(report, independent_digits_metrics(digits_model))
    assert report["confusion"]["class_names"] == [str(d) for d in range(10)]
    assert report["provenance"]["model"]["format"] == "bnnr"
    assert report["provenance"]["data"]["num_samples"] == 360
    assert report["provenance"]["input"]["source"]["normalisation"] == "checkpoint"
    assert report["cv_results"]["n_folds"] == 3
    assert set(report["provenance"]["durations_s"]) == set(STAGES)
    assert sum(fold["support"] for fold in report["cv_results"]["per_fold_metrics"]) == 360
    assert not (digits_report / "events.jsonl").exists()


def test_every_section_is_present_and_xai_and_data_quality_ran(digits_report: Path) -> None:
    report = report_of(digits_report)
    sections = report["analysis_scope"]["sections"]
    for key in ("xai", "data_quality", "failure_patterns", "metrics", "cv_results"):
        assert sections[key]["status"] == "ok", (key, sections[key])
    for key in (
        "xai_quality_summary",
        "xai_quality_per_class",
        "xai_examples_per_class",
        "confusion_pair_xai",
        "best_worst_examples",
        "data_quality",
        "data_quality_summary",
    ):
        assert report[key], key
    overlays = [
        value
        for entries in report["xai_examples_per_class"].values()
        for entry in entries
        for key, value in entry.items()
        if key.endswith("_path") and value
    ]
    assert overlays and all((digits_report / path).is_file() for path in overlays)
    assert (digits_report / "report.html").is_file()
    summary = report["executive_summary"]
    assert summary["health_status"] in {"ok", "warning", "critical"}
    assert 0.0 <= summary["health_score"] <= 1.0
    finding_ids = {finding["id"] for finding in report["findings"]}
    for recommendation in report["recommendations_structured"]:
        assert set(recommendation["linked_finding_ids"]) <= finding_ids
    for finding in report["findings"]:
        assert finding["evidence"] and finding["interpretation"]


def test_sections_turned_off_are_empty_and_say_why(digits_checkpoint: Path, tmp_path: Path) -> None:
    result = invoke("-m", str(digits_checkpoint), "-d", "digits", "-o", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    report = report_of(tmp_path / "o")
    sections = report["analysis_scope"]["sections"]
    assert sections["xai"] == {"status": "disabled", "reason": "turned off with --no-xai"}
    assert sections["data_quality"]["reason"] == "turned off with --no-data-quality"
    for key in (
        "xai_insights",
        "xai_diagnoses",
        "confusion_pair_xai",
        "best_worst_examples",
        "data_quality",
        "data_quality_summary",
    ):
        assert report[key] in ({}, [])
    assert not (tmp_path / "o" / "artifacts").exists()
    assert set(report["executive_summary"]["unchecked_sections"]) == {"xai", "data_quality"}


def test_summary_on_stdout_names_health_metrics_and_paths(
    digits_checkpoint: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    result = invoke("--model", str(digits_checkpoint), "--data", "digits", "--output", str(output))
    assert result.exit_code == 0, result.output
    assert "BNNR ANALYZE SUMMARY" in result.output
    assert "Health" in result.output and "95% CI" in result.output
    assert str(output / "analysis_report.json") in result.output


def test_same_seed_gives_the_same_report(digits_checkpoint: Path, tmp_path: Path) -> None:
    reports = []
    for name in ("a", "b"):
        result = invoke(
            "--model", str(digits_checkpoint), "--data", "digits", "--output", str(tmp_path / name)
        )
        assert result.exit_code == 0, result.output
        report = report_of(tmp_path / name)
        report.pop("provenance")
        reports.append(json.dumps(report, sort_keys=True))
    assert reports[0] == reports[1]


def test_image_folder_gives_the_numbers_of_the_same_images_as_arrays(
    digits_checkpoint: Path, digits_model: torch.nn.Module, tmp_path: Path
) -> None:
    data = write_digits_folder(tmp_path / "digits_png" / "val")
    for label in range(10):
        folder = tmp_path / "digits_png" / "train" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8), 25 * label, np.uint8)).save(folder / "a.png")
    (data / "3" / "broken.png").write_bytes(b"not a png")
    output = tmp_path / "out"
    result = invoke(
        "--model",
        str(digits_checkpoint),
        "--data",
        str(tmp_path / "digits_png"),
        "--output",
        str(output),
    )
    assert result.exit_code == 0, result.output
    report = report_of(output)
    assert_matches(report, independent_digits_metrics(digits_model))
    data_facts = report["provenance"]["data"]
    assert data_facts["split"] == "val" and data_facts["train_samples"] == 10
    assert [item["path"].endswith("broken.png") for item in data_facts["skipped"]] == [True]
    assert any("could not be decoded" in note for note in report["analysis_scope"]["notes"])


def test_torchvision_resnet18_state_dict_on_an_rgb_image_folder(tmp_path: Path) -> None:
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=3).eval()
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}},
        tmp_path / "resnet.pt",
    )
    rng = np.random.default_rng(0)
    arrays, labels = [], []
    for label, name in enumerate(("cat", "dog", "fox")):
        (tmp_path / "data" / name).mkdir(parents=True)
        for index in range(6):
            array = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(array).save(tmp_path / "data" / name / f"{index}.png")
            arrays.append(array)
            labels.append(label)
    output = tmp_path / "out"
    result = invoke(
        "--model",
        str(tmp_path / "resnet.pt"),
        "--arch",
        "resnet18",
        "--data",
        str(tmp_path / "data"),
        "--output",
        str(output),
        "--image-size",
        "32",
        "--mean",
        "0.5,0.5,0.5",
        "--std",
        "0.25,0.25,0.25",
    )
    assert result.exit_code == 0, result.output
    report = report_of(output)
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(255.0)
    with torch.no_grad():
        probabilities = torch.softmax(model((images - 0.5) / 0.25), 1).double().numpy()
    assert_matches(report, scores(probabilities, np.asarray(labels)), tol=1e-6)
    assert report["confusion"]["class_names"] == ["cat", "dog", "fox"]
    assert report["provenance"]["model"]["arch"] == "resnet18"


@pytest.mark.parametrize("kind", ["torchscript", "torch_export"])
def test_programs_on_digits_with_normalisation_flags(
    kind: str, digits_model: torch.nn.Module, tmp_path: Path
) -> None:
    example = torch.zeros(1, 1, 8, 8)
    path = tmp_path / ("model.pt" if kind == "torchscript" else "model.pt2")
    if kind == "torchscript":
        torch.jit.save(torch.jit.trace(digits_model.eval(), example), str(path))
    else:
        torch.export.save(torch.export.export(digits_model.eval(), (example,)), str(path))
    output = tmp_path / "out"
    result = invoke(
        "--model",
        str(path),
        "--data",
        "digits",
        "--output",
        str(output),
        "--mean",
        str(MEAN[0]),
        "--std",
        str(STD[0]),
    )
    assert result.exit_code == 0, result.output
    report = report_of(output)
    assert report["provenance"]["model"]["format"] == kind
    assert_matches(report, independent_digits_metrics(digits_model))


def test_config_file_supplies_options_and_flags_win(
    digits_checkpoint: Path, tmp_path: Path
) -> None:
    config = tmp_path / "analyze.yaml"
    config.write_text(f"model: {digits_checkpoint}\ndata: digits\ncv-folds: 4\nseed: 3\n")
    output = tmp_path / "out"
    result = invoke("--output", str(output), "--config", str(config), "--seed", "5")
    assert result.exit_code == 0, result.output
    report = report_of(output)
    assert report["cv_results"]["n_folds"] == 4
    assert report["provenance"]["seed"] == 5


def test_fail_on_gate_exits_1_after_writing_the_report(tmp_path: Path) -> None:
    # An untrained model: near chance, health critical.
    torch.manual_seed(0)
    model = (
        load_plugins().component("architecture", "small_cnn").create(num_classes=10, in_channels=1)
    )
    from bnnr_core.checkpoints import save_checkpoint

    path = save_checkpoint(
        model,
        tmp_path / "untrained.pt",
        arch="small_cnn",
        arch_options={"num_classes": 10, "in_channels": 1},
        class_names=list(CLASS_NAMES),
        input_size=(1, 8, 8),
        mean=MEAN,
        std=STD,
    )
    output = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        [
            "analyze",
            "-q",
            "-m",
            str(path),
            "-d",
            "digits",
            "-o",
            str(output),
            "--fail-on",
            "critical",
            "--no-xai",
            "--no-data-quality",
        ],
    )
    assert result.exit_code == 1, result.output
    assert "--fail-on critical gate failed" in result.output
    assert report_of(output)["executive_summary"]["health_status"] == "critical"


def test_demo_trains_saves_and_analyzes(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--quiet", "--output", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "demo" / "digits_small_cnn.pt").is_file()
    report = report_of(tmp_path / "demo" / "analysis")
    assert report["metrics"]["accuracy"] > 0.85
    assert "BNNR ANALYZE SUMMARY" in result.output
    assert str(tmp_path / "demo" / "analysis" / "analysis_report.json") in result.output
    assert str(tmp_path / "demo" / "analysis" / "report.html") in result.output
    multilabel = report_of(tmp_path / "demo" / "multilabel_analysis")
    assert multilabel["analysis_scope"]["task"] == "multilabel"
    assert multilabel["metrics"]["f1_macro"] > 0.9
    assert (tmp_path / "demo" / "multidigits" / "labels.csv").is_file()


# -------------------------------------------------------------------------------------------
# Bad input: one sentence, exit code 2, nothing half-written
# -------------------------------------------------------------------------------------------


def test_missing_model_file(tmp_path: Path) -> None:
    result = invoke("-m", str(tmp_path / "nope.pt"), "-d", "digits", "-o", str(tmp_path / "o"))
    assert_one_sentence_error(result, "nope.pt")
    assert not (tmp_path / "o").exists()


def test_corrupt_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.pt"
    path.write_bytes(os.urandom(2048))
    result = invoke("-m", str(path), "-d", "digits", "-o", str(tmp_path / "o"))
    assert_one_sentence_error(result, "corrupt.pt")


def test_pickled_module_needs_trust(digits_model: torch.nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "pickled.pt"
    torch.save(digits_model, path)
    args = (
        "-m",
        str(path),
        "-d",
        "digits",
        "-o",
        str(tmp_path / "o"),
        "--mean",
        str(MEAN[0]),
        "--std",
        str(STD[0]),
    )
    assert_one_sentence_error(invoke(*args), "--trust-checkpoint")
    trusted = invoke(*args, "--trust-checkpoint")
    assert trusted.exit_code == 0, trusted.output
    assert report_of(tmp_path / "o")["provenance"]["model"]["format"] == "pickled_module"


def test_architecture_mismatch(digits_model: torch.nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save(digits_model.state_dict(), path)
    result = invoke(
        "-m", str(path), "--arch", "resnet18", "-d", "digits", "-o", str(tmp_path / "o")
    )
    assert_one_sentence_error(result, "resnet18")


def test_class_count_mismatch_is_caught_before_inference(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    torch.jit.save(torch.jit.script(model), str(tmp_path / "four.pt"))
    result = invoke("-m", str(tmp_path / "four.pt"), "-d", "digits", "-o", str(tmp_path / "o"))
    assert_one_sentence_error(result, "4 outputs", "10 classes")


def test_wrong_image_size_for_the_model(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    torch.jit.save(torch.jit.script(model), str(tmp_path / "flat.pt"))
    result = invoke(
        "-m",
        str(tmp_path / "flat.pt"),
        "-d",
        "digits",
        "-o",
        str(tmp_path / "o"),
        "--image-size",
        "16",
    )
    assert_one_sentence_error(result, "--image-size")


def test_empty_folder(digits_checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = invoke(
        "-m", str(digits_checkpoint), "-d", str(tmp_path / "empty"), "-o", str(tmp_path / "o")
    )
    assert_one_sentence_error(result)


def test_folder_with_one_class(digits_checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "one" / "7").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "one" / "7" / "a.png")
    result = invoke(
        "-m", str(digits_checkpoint), "-d", str(tmp_path / "one"), "-o", str(tmp_path / "o")
    )
    assert_one_sentence_error(result)
    assert "one class" in result.output or "at least two" in result.output


def test_folder_of_only_corrupt_images(digits_checkpoint: Path, tmp_path: Path) -> None:
    for name in ("1", "2"):
        (tmp_path / "bad" / name).mkdir(parents=True)
        (tmp_path / "bad" / name / "x.png").write_bytes(b"garbage")
    result = invoke(
        "-m", str(digits_checkpoint), "-d", str(tmp_path / "bad"), "-o", str(tmp_path / "o")
    )
    assert_one_sentence_error(result, "could be decoded")
    assert not (tmp_path / "o").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging


class _NanAfter(torch.nn.Module):
    """Logits of a linear model, NaN for the rows whose first pixel is bright (or all)."""

    def __init__(self, all_rows: bool) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(64, 10)
        self.all_rows = all_rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.linear(x.flatten(1))
        if self.all_rows:
            return logits * float("nan")
        bad = (x.flatten(1)[:, 27] > 1.0).unsqueeze(1)
        return torch.where(bad, torch.full_like(logits, float("nan")), logits)


def test_nan_logits_for_every_image(tmp_path: Path) -> None:
    torch.jit.save(torch.jit.script(_NanAfter(True)), str(tmp_path / "nan.pt"))
    result = invoke(
        "-m",
        str(tmp_path / "nan.pt"),
        "-d",
        "digits",
        "-o",
        str(tmp_path / "o"),
        "--mean",
        str(MEAN[0]),
        "--std",
        str(STD[0]),
    )
    assert_one_sentence_error(result, "non-finite")
    assert not (tmp_path / "o").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging


def test_nan_logits_for_some_images_are_excluded_and_counted(tmp_path: Path) -> None:
    torch.jit.save(torch.jit.script(_NanAfter(False)), str(tmp_path / "nan.pt"))
    output = tmp_path / "o"
    result = invoke(
        "-m",
        str(tmp_path / "nan.pt"),
        "-d",
        "digits",
        "-o",
        str(output),
        "--mean",
        str(MEAN[0]),
        "--std",
        str(STD[0]),
    )
    assert result.exit_code == 0, result.output
    report = report_of(output)
    split = load_digits("eval")
    pixel = (split.images.reshape(-1, 64)[:, 27] / 255.0 - MEAN[0]) / STD[0]
    bad = int((pixel > 1.0).sum())
    assert 0 < bad < 360
    assert report["metrics"]["nonfinite_rows"] == bad
    assert sum(map(sum, report["confusion"]["matrix"])) == 360 - bad


def test_output_that_cannot_be_written(digits_checkpoint: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke("-m", str(digits_checkpoint), "-d", "digits", "-o", str(blocker / "out"))
    assert_one_sentence_error(result, "is a file")
    if sys.platform.startswith("linux"):
        result = invoke("-m", str(digits_checkpoint), "-d", "digits", "-o", "/proc/bnnr-out")
        assert_one_sentence_error(result, "cannot write")


def test_output_holding_other_files_is_never_touched(
    digits_checkpoint: Path, tmp_path: Path
) -> None:
    output = tmp_path / "mine"
    output.mkdir()
    (output / "notes.txt").write_text("precious")
    result = invoke("-m", str(digits_checkpoint), "-d", "digits", "-o", str(output))
    assert_one_sentence_error(result, "not a BNNR analysis")
    assert sorted(p.name for p in output.iterdir()) == ["notes.txt"]


def test_earlier_analysis_is_replaced_as_a_whole(digits_checkpoint: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    assert invoke("-m", str(digits_checkpoint), "-d", "digits", "-o", str(output)).exit_code == 0
    (output / "artifacts").mkdir(exist_ok=True)
    (output / "artifacts" / "stale.png").write_bytes(b"old overlay")
    assert invoke("-m", str(digits_checkpoint), "-d", "digits", "-o", str(output)).exit_code == 0
    assert not (output / "artifacts" / "stale.png").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_failing_exporter_leaves_the_earlier_analysis_intact(
    digits_checkpoint: Path, tmp_path: Path
) -> None:
    from bnnr_core.analysis.output import write_report
    from bnnr_core.errors import BnnrError
    from bnnr_core.markers import hookimpl

    output = tmp_path / "out"
    assert invoke("-m", str(digits_checkpoint), "-d", "digits", "-o", str(output)).exit_code == 0
    before = (output / "analysis_report.json").read_bytes()

    class Broken:
        name = "broken"

        def export(self, report: Any, output_dir: Path, **_: Any) -> list[Path]:
            (output_dir / "half.txt").write_text("half")
            raise RuntimeError("disk full")

    class Plugin:
        @hookimpl
        def bnnr_register_exporters(self, register: Any) -> None:
            register("broken", Broken)

    host = load_plugins()
    host.register(Plugin(), name="broken_exporter")
    with pytest.raises(BnnrError, match="broken"):
        write_report({"schema_version": "x"}, output, host=host)
    assert (output / "analysis_report.json").read_bytes() == before
    assert not (output / "half.txt").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_cuda_without_a_gpu(digits_checkpoint: Path, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = invoke(
        "-m", str(digits_checkpoint), "-d", "digits", "-o", str(tmp_path / "o"), "--device", "cuda"
    )
    assert_one_sentence_error(result, "CUDA")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--data", "imagenet"), "neither an existing folder nor a known data set"),
        (("--data", "mnist", "--data-dir", "nowhere"), "--download"),
        (("--cv-folds", "1"), "at least 2 folds"),
        (("--image-size", "abc"), "HxW"),
        (("--mean", "0.5"), "both --mean and --std"),
        (("--task", "detection"), "detection"),
    ],
)
def test_bad_options(
    args: tuple[str, ...], needle: str, digits_checkpoint: Path, tmp_path: Path
) -> None:
    base = {"--data": "digits"}
    merged = list(args) if "--data" in args else ["--data", base["--data"], *args]
    result = invoke("-m", str(digits_checkpoint), "-o", str(tmp_path / "o"), *merged)
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert "Traceback" not in result.output


def test_missing_required_options(tmp_path: Path) -> None:
    result = invoke("--data", "digits", "--output", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "Missing option '--model'" in result.output and "Traceback" not in result.output


def test_bad_config_files(digits_checkpoint: Path, tmp_path: Path) -> None:
    base = ("-m", str(digits_checkpoint), "-d", "digits", "-o", str(tmp_path / "o"))
    missing = invoke(*base, "--config", str(tmp_path / "missing.yaml"))
    assert missing.exit_code == 2 and "does not exist" in missing.output
    typo = tmp_path / "typo.yaml"
    typo.write_text("cv_fold: 3\n")
    assert_one_sentence_error(invoke(*base, "--config", str(typo)), "unknown option 'cv_fold'")
    broken = tmp_path / "broken.yaml"
    broken.write_text("cv_folds: [3\n")
    assert_one_sentence_error(invoke(*base, "--config", str(broken)), "cannot read --config")
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("cv_folds: many\n")
    assert_one_sentence_error(invoke(*base, "--config", str(wrong)), "cv_folds")


def test_unknown_xai_method_lists_the_installed_ones(
    digits_checkpoint: Path, tmp_path: Path
) -> None:
    result = invoke(
        "-m",
        str(digits_checkpoint),
        "-d",
        "digits",
        "-o",
        str(tmp_path / "o"),
        "--no-data-quality",
        "--xai-method",
        "lime",
        full=True,
    )
    assert_one_sentence_error(result, "lime", "gradcam", "saliency")
    assert not (tmp_path / "o").exists()


def test_planted_data_defects_are_reported_with_thumbnails(
    digits_checkpoint: Path, tmp_path: Path
) -> None:
    data = write_digits_folder(tmp_path / "planted", per_class=6)
    copy = data / "4" / "copy_of_a_three.png"
    copy.write_bytes(next((data / "3").iterdir()).read_bytes())  # a 3 filed under 4
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(data / "5" / "blank.png")
    (data / "6" / "corrupt.png").write_bytes(b"\x89PNG broken")
    output = tmp_path / "out"
    result = invoke(
        "-m", str(digits_checkpoint), "-d", str(data), "-o", str(output), "--no-xai", full=True
    )
    assert result.exit_code == 0, result.output
    quality = report_of(output)["data_quality"]
    by_type = {warning["type"]: warning for warning in quality["warnings"]}
    assert {"label_conflicts", "unreadable", "near_constant"} <= set(by_type)
    assert any(sid.endswith("corrupt.png") for sid in by_type["unreadable"]["sample_ids"])
    assert any(sid.endswith("blank.png") for sid in by_type["near_constant"]["sample_ids"])
    conflicts = by_type["label_conflicts"]["sample_ids"]
    assert any(sid.endswith("copy_of_a_three.png") for sid in conflicts)
    thumbnails = [p for w in quality["warnings"] for p in w.get("thumbnail_paths", [])]
    assert thumbnails and all((output / path).is_file() for path in thumbnails)
