"""``bnnr analyze --task multilabel`` from the command line: a user's manifest, the bundled demo,
threshold tuning, and the bad inputs of the multi-label path.

The report's metrics are checked against scikit-learn on the model's own sigmoid outputs,
computed here with plain torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result
from sklearn.metrics import f1_score, hamming_loss, roc_auc_score

from bnnr_core.cli import cli
from bnnr_core.datasets.multidigits import MEAN, STD, load_multidigits, write_multidigits_manifest
from bnnr_core.demo import save_multidigits_checkpoint
from bnnr_core.modelio.loader import load_model
from bnnr_core.plugins import load_plugins

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

LIGHT = ("--no-xai", "--no-data-quality", "--quiet", "--bootstrap", "200")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["analyze", *args], catch_exceptions=False)


def report_of(output: Path) -> dict[str, Any]:
    return json.loads((output / "analysis_report.json").read_text())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("multilabel")
    return save_multidigits_checkpoint(load_plugins(), folder / "tiles.pt", epochs=1)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_multidigits_manifest(tmp_path_factory.mktemp("tiles"), split="eval")


def independent(checkpoint: Path) -> tuple[np.ndarray, np.ndarray]:
    """Sigmoid outputs of the checkpoint on the evaluation tiles, and their labels."""
    model = load_model(checkpoint, host=load_plugins()).model.eval()
    split = load_multidigits("eval")
    images = (torch.from_numpy(split.images).float() / 255.0 - MEAN[0]) / STD[0]
    with torch.no_grad():
        probabilities = torch.sigmoid(model(images)).double().numpy()
    return probabilities, split.labels


def assert_metrics(report: dict[str, Any], probabilities: np.ndarray, labels: np.ndarray) -> None:
    predicted = (probabilities >= 0.5).astype(int)
    metrics = report["metrics"]
    expected = {
        "f1_macro": f1_score(labels, predicted, average="macro", zero_division=0),
        "f1_micro": f1_score(labels, predicted, average="micro", zero_division=0),
        "f1_samples": f1_score(labels, predicted, average="samples", zero_division=0),
        "subset_accuracy": float((predicted == labels).all(axis=1).mean()),
        "hamming_loss": hamming_loss(labels, predicted),
        "auroc_macro": roc_auc_score(labels, probabilities, average="macro"),
    }
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value, abs=1e-6), name
    assert metrics["accuracy"] == metrics["subset_accuracy"]
    per_label = report["confusion"]["per_label"]
    assert [row["tp"] for row in per_label] == ((predicted == 1) & (labels == 1)).sum(0).tolist()
    assert [row["fp"] for row in per_label] == ((predicted == 1) & (labels == 0)).sum(0).tolist()


def test_a_users_manifest_gives_the_numbers_of_an_independent_computation(
    checkpoint: Path, manifest: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    result = invoke("-m", str(checkpoint), "-d", str(manifest), "-o", str(output), *LIGHT)
    assert result.exit_code == 0, result.output
    report = report_of(output)
    assert report["analysis_scope"]["task"] == "multilabel"  # taken from the checkpoint
    assert report["provenance"]["data"]["source"] == "manifest"
    assert report["confusion"]["type"] == "multilabel_per_label"
    assert_metrics(report, *independent(checkpoint))
    assert "f1_samples" in result.output  # the summary speaks multi-label


def test_the_bundled_demo_set_and_threshold_tuning(checkpoint: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    result = invoke(
        "-m",
        str(checkpoint),
        "--task",
        "multilabel",
        "-d",
        "multidigits",
        "-o",
        str(output),
        "--tune-thresholds",
        *LIGHT,
    )
    assert result.exit_code == 0, result.output
    report = report_of(output)
    assert_metrics(report, *independent(checkpoint))
    assert report["thresholds"]["mode"] == "tuned"
    assert set(report["thresholds"]["per_label"]) == {str(k) for k in range(10)}
    assert report["metrics_tuned"]["f1_macro"] is not None


def test_saliency_and_data_quality_run_for_multilabel(
    checkpoint: Path, manifest: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    result = invoke(
        "-m",
        str(checkpoint),
        "-d",
        str(manifest),
        "-o",
        str(output),
        "--quiet",
        "--xai-samples",
        "40",
        "--max-worst",
        "5",
        "--bootstrap",
        "100",
    )
    assert result.exit_code == 0, result.output
    report = report_of(output)
    assert report["analysis_scope"]["sections"]["xai"]["status"] == "ok"
    examples = report["xai_examples_per_class"]["multilabel_high_loss"]
    assert examples and all((output / e["overlay_path"]).is_file() for e in examples)
    assert report["xai_quality_summary"]["multilabel_probe_count"] >= 1
    assert report["analysis_scope"]["sections"]["data_quality"]["status"] == "ok"
    assert (output / "report.html").is_file()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--task", "multilabel", "-d", "digits"), "one label per image"),
        (("--task", "classification", "-d", "multidigits"), "saved for --task multilabel"),
        (("-d", "multidigits", "--labels", "a,b"), "label"),
    ],
)
def test_bad_multilabel_input(
    args: tuple[str, ...], needle: str, checkpoint: Path, tmp_path: Path
) -> None:
    result = invoke("-m", str(checkpoint), "-o", str(tmp_path / "o"), *args, *LIGHT)
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output


def test_multilabel_flags_need_the_multilabel_task(tmp_path: Path) -> None:
    from bnnr_core.demo import save_digits_checkpoint

    single = save_digits_checkpoint(load_plugins(), tmp_path / "digits.pt", epochs=1)
    for flag in (("--threshold", "0.3"), ("--tune-thresholds",), ("--labels", "a,b")):
        result = invoke("-m", str(single), "-d", "digits", "-o", str(tmp_path / "o"), *flag, *LIGHT)
        assert result.exit_code == 2, result.output
        assert "--task multilabel" in result.output


def test_a_manifest_is_refused_for_single_label_analysis(manifest: Path, tmp_path: Path) -> None:
    from bnnr_core.demo import save_digits_checkpoint

    single = save_digits_checkpoint(load_plugins(), tmp_path / "digits.pt", epochs=1)
    result = invoke("-m", str(single), "-d", str(manifest), "-o", str(tmp_path / "o"), *LIGHT)
    assert result.exit_code == 2 and "--task multilabel" in result.output
