"""The quickstart example that ``make demo`` runs keeps working and learns the digits."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_digits_quickstart_trains_saves_reloads_and_evaluates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    example = runpy.run_path(str(REPO / "examples" / "digits_quickstart.py"))
    metrics = example["main"](tmp_path)
    assert (tmp_path / "digits_small_cnn.pt").is_file()
    assert metrics["accuracy"] is not None and metrics["accuracy"] > 0.85
    printed = capsys.readouterr().out
    assert "evaluated 360 held-out digits" in printed
    assert f"accuracy           {metrics['accuracy']:.4f}" in printed

    # The printed accuracy agrees with an independent recomputation from the saved checkpoint.
    import torch

    import bnnr
    from bnnr_core.datasets.torchdata import DigitsDataset

    loaded = bnnr.load_model(tmp_path / "digits_small_cnn.pt", host=bnnr.load_plugins())
    evaluation = DigitsDataset("eval")
    with torch.no_grad():
        predicted = loaded.model(evaluation.images).argmax(1).numpy()
    labels = np.asarray([int(label) for _, label in evaluation])
    assert accuracy_score(labels, predicted) == pytest.approx(metrics["accuracy"])
