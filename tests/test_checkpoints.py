"""BNNR's checkpoint format (bnnr_core.checkpoints): round trips, safety, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from bnnr_core import checkpoints
from bnnr_core.checkpoints import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    read_checkpoint,
    save_checkpoint,
)
from bnnr_core.errors import BnnrError

SPEC: dict[str, Any] = {
    "arch": "small_cnn",
    "arch_options": {"width": 8},
    "class_names": ["cat", "dog", "bird"],
    "input_size": (1, 8, 8),
    "mean": [0.5],
    "std": [0.25],
}


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 3),
    )


def test_round_trip_keeps_every_fact_and_every_tensor(tmp_path: Path) -> None:
    model = _model().eval()
    path = save_checkpoint(
        model, tmp_path / "model.pt", task="classification", extra={"acc": 0.9}, **SPEC
    )
    assert path == tmp_path / "model.pt"
    checkpoint = read_checkpoint(path)
    assert checkpoint.format_version == CHECKPOINT_VERSION
    assert checkpoint.arch == "small_cnn"
    assert checkpoint.arch_options == {"width": 8}
    assert checkpoint.class_names == ("cat", "dog", "bird")
    assert checkpoint.num_classes == 3
    assert checkpoint.task == "classification"
    assert checkpoint.input_size == (1, 8, 8)
    assert checkpoint.in_channels == 1
    assert checkpoint.mean == (0.5,)
    assert checkpoint.std == (0.25,)
    assert checkpoint.extra == {"acc": 0.9}
    assert checkpoint.metadata["bnnr_version"]
    assert checkpoint.metadata["model_class"] == "torch.nn.modules.container.Sequential"
    expected = model.state_dict()
    assert list(checkpoint.state_dict) == list(expected)
    for key, value in expected.items():
        assert torch.equal(checkpoint.state_dict[key], value), key


def test_the_file_is_a_plain_dict_loadable_with_weights_only(tmp_path: Path) -> None:
    path = save_checkpoint(_model(), tmp_path / "model.pt", **SPEC)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == CHECKPOINT_FORMAT
    assert raw["format_version"] == CHECKPOINT_VERSION
    assert raw["arch"] == {"name": "small_cnn", "options": {"width": 8}}
    assert raw["input_size"] == [1, 8, 8]
    assert raw["normalization"] == {"mean": [0.5], "std": [0.25]}
    assert raw["task"] == "classification"


def test_saving_leaves_the_callers_model_untouched(tmp_path: Path) -> None:
    model = _model().train()
    before = {key: (value.data_ptr(), value.clone()) for key, value in model.state_dict().items()}
    parameters = [id(p) for p in model.parameters()]
    save_checkpoint(model, tmp_path / "model.pt", **SPEC)
    assert model.training is True
    assert all(module.training for module in model.modules())
    assert [id(p) for p in model.parameters()] == parameters
    for key, value in model.state_dict().items():
        pointer, copy = before[key]
        assert value.data_ptr() == pointer, key
        assert value.device.type == "cpu"
        assert torch.equal(value, copy), key
    # The saved tensors are copies: changing the model afterwards does not change the file.
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    saved = read_checkpoint(tmp_path / "model.pt").state_dict
    assert not torch.equal(saved["0.weight"], model.state_dict()["0.weight"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_saving_a_cuda_model_leaves_it_on_the_gpu(tmp_path: Path) -> None:
    model = _model().cuda().eval()
    save_checkpoint(model, tmp_path / "model.pt", **SPEC)
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert model.training is False
    saved = read_checkpoint(tmp_path / "model.pt").state_dict
    assert all(t.device.type == "cpu" for t in saved.values())
    assert torch.equal(saved["0.weight"], model.state_dict()["0.weight"].cpu())


def test_write_is_atomic_and_a_failed_save_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "model.pt"
    save_checkpoint(_model(), target, **SPEC)
    original = target.read_bytes()

    def broken_save(obj: object, f: Any) -> None:
        f.write(b"half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(checkpoints.torch, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(_model(), target, **SPEC)
    assert target.read_bytes() == original
    assert os.listdir(tmp_path) == ["model.pt"]


def test_overwrites_and_creates_parent_folders(tmp_path: Path) -> None:
    target = tmp_path / "runs" / "a" / "model.pt"
    save_checkpoint(_model(), target, **SPEC)
    save_checkpoint(_model(), target, **{**SPEC, "class_names": ["x", "y", "z"]})
    assert read_checkpoint(target).class_names == ("x", "y", "z")
    assert sorted(os.listdir(target.parent)) == ["model.pt"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mean": [0.5, 0.5]}, "one value per channel"),
        ({"std": [0.0]}, "std finite and positive"),
        ({"input_size": (8, 8)}, "channels, height, width"),
        ({"class_names": []}, "non-empty"),
        ({"class_names": ["a", "a", "b"]}, "duplicates"),
        ({"arch": ""}, "arch"),
        ({"arch_options": {"table": np.zeros(2)}}, "only str, int"),
        ({"extra": {"when": object()}}, "only str, int"),
        ({"extra": {1: "x"}}, "keys must be strings"),
    ],
)
def test_inconsistent_arguments_are_rejected_before_writing(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        save_checkpoint(_model(), tmp_path / "model.pt", **{**SPEC, **change})
    assert not (tmp_path / "model.pt").exists()


def test_only_modules_can_be_saved(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"torch.nn.Module"):
        save_checkpoint({"w": torch.zeros(1)}, tmp_path / "m.pt", **SPEC)  # type: ignore[arg-type]


def _write(path: Path, obj: object) -> Path:
    torch.save(obj, path)
    return path


def test_read_errors_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(BnnrError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(BnnrError, match="is a folder"):
        read_checkpoint(tmp_path)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(BnnrError, match="is empty"):
        read_checkpoint(tmp_path / "empty.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00not a checkpoint" * 8)
    with pytest.raises(BnnrError, match="not a readable BNNR checkpoint"):
        read_checkpoint(tmp_path / "junk.pt")
    state_dict = _write(tmp_path / "sd.pt", _model().state_dict())
    with pytest.raises(BnnrError, match=r"not a BNNR checkpoint .*load_model"):
        read_checkpoint(state_dict)


def test_newer_and_damaged_checkpoints_are_reported(tmp_path: Path) -> None:
    path = save_checkpoint(_model(), tmp_path / "model.pt", **SPEC)
    raw = torch.load(path, weights_only=True)
    newer = _write(tmp_path / "newer.pt", {**raw, "format_version": CHECKPOINT_VERSION + 1})
    with pytest.raises(BnnrError, match="upgrade bnnr"):
        read_checkpoint(newer)
    damaged = _write(tmp_path / "damaged.pt", {k: v for k, v in raw.items() if k != "arch"})
    with pytest.raises(BnnrError, match="damaged BNNR checkpoint"):
        read_checkpoint(damaged)
    bad_weights = _write(tmp_path / "bad.pt", {**raw, "state_dict": {"w": [1, 2]}})
    with pytest.raises(BnnrError, match="damaged"):
        read_checkpoint(bad_weights)
