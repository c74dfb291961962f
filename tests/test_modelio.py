"""Loading models of every supported format (bnnr_core.modelio), and refusing what is unsafe."""

from __future__ import annotations

import argparse
import hashlib
import io
import random
import struct
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bnnr_models
import numpy as np
import pytest
import torch
import torchvision
from bnnr_models.small_cnn import SmallCNN
from torch import nn

from bnnr_core.checkpoints import save_checkpoint
from bnnr_core.errors import BnnrError, UnknownComponentError
from bnnr_core.modelio import MODEL_FORMATS, LoadedModel, load_model
from bnnr_core.modelio import loader as loader_module
from bnnr_core.modelio.programs import (
    ExportedProgramModule,
    StaticBatchModule,
    exported_in_training_mode,
)
from bnnr_core.plugins import PluginHost, load_plugins

IMAGES = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def host() -> PluginHost:
    host = load_plugins(autoload=False)
    host.register(bnnr_models, "models")
    return host


def _trained_small_cnn(num_classes: int = 10, width: int = 8) -> nn.Module:
    """A small_cnn with non-trivial batch-norm statistics, left in train mode."""
    torch.manual_seed(0)
    model = SmallCNN(num_classes=num_classes, in_channels=1, width=width)
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 1, 8, 8) * 3 + 1)
    return model


@pytest.fixture
def model() -> nn.Module:
    return _trained_small_cnn()


def _reference_logits(model: nn.Module, images: torch.Tensor = IMAGES) -> torch.Tensor:
    mode = model.training
    with torch.no_grad():
        logits = model.eval()(images)
    model.train(mode)
    return logits


def _logits(loaded: LoadedModel, images: torch.Tensor = IMAGES) -> torch.Tensor:
    with torch.no_grad():
        return loaded.model(images)


def _save(path: Path, obj: object, **kwargs: Any) -> Path:
    torch.save(obj, path, **kwargs)
    return path


# -- BNNR checkpoints ------------------------------------------------------------------------


def _bnnr_checkpoint(tmp_path: Path, model: nn.Module, **extra: Any) -> Path:
    return save_checkpoint(
        model,
        tmp_path / "model.pt",
        arch="small_cnn",
        arch_options={"width": 8},
        class_names=[str(d) for d in range(10)],
        input_size=(1, 8, 8),
        mean=[0.3],
        std=[0.4],
        **extra,
    )


def test_bnnr_checkpoint_round_trip_gives_identical_logits(
    tmp_path: Path, model: nn.Module, host: PluginHost
) -> None:
    expected = _reference_logits(model)
    path = _bnnr_checkpoint(tmp_path, model, extra={"dataset": "digits"})
    loaded = load_model(path, host=host)
    assert loaded.format == "bnnr"
    assert loaded.model is not model
    assert loaded.model.training is False
    assert torch.equal(_logits(loaded), expected)
    assert loaded.arch == "small_cnn"
    assert loaded.arch_options == {"width": 8}
    assert (loaded.num_classes, loaded.in_channels) == (10, 1)
    assert loaded.class_names == tuple(str(d) for d in range(10))
    assert loaded.task == "classification"
    assert loaded.input_size == (1, 8, 8)
    assert (loaded.mean, loaded.std) == ((0.3,), (0.4,))
    assert loaded.metadata["extra"] == {"dataset": "digits"}
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.format in MODEL_FORMATS
    # The caller's model is still in train mode and unchanged.
    assert model.training is True
    assert torch.equal(_reference_logits(model), expected)


def test_bnnr_checkpoint_rejects_contradicting_options(
    tmp_path: Path, model: nn.Module, host: PluginHost
) -> None:
    path = _bnnr_checkpoint(tmp_path, model)
    with pytest.raises(BnnrError, match="architecture 'small_cnn', not 'resnet18'; drop --arch"):
        load_model(path, host=host, arch="resnet18")
    with pytest.raises(BnnrError, match=r"--num-classes 5 does not match .* 10 classes"):
        load_model(path, host=host, num_classes=5)
    with pytest.raises(BnnrError, match="takes 1-channel images"):
        load_model(path, host=host, in_channels=3)


def test_bnnr_checkpoint_whose_architecture_changed_is_explained(
    tmp_path: Path, model: nn.Module, host: PluginHost
) -> None:
    path = _bnnr_checkpoint(tmp_path, model)
    with pytest.raises(BnnrError, match="architecture changed since the file was written"):
        load_model(path, host=host, arch_options={"width": 16})


def test_bnnr_checkpoint_needs_its_architecture_plugin(tmp_path: Path, model: nn.Module) -> None:
    path = _bnnr_checkpoint(tmp_path, model)
    with pytest.raises(UnknownComponentError, match="unknown architecture 'small_cnn'"):
        load_model(path, host=load_plugins(autoload=False))


# -- programs: TorchScript and torch.export --------------------------------------------------


@pytest.mark.parametrize("how", ["script", "trace"])
def test_torchscript_archives_load_without_arch(
    tmp_path: Path, model: nn.Module, host: PluginHost, how: str
) -> None:
    expected = _reference_logits(model)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export
        program = torch.jit.script(model) if how == "script" else torch.jit.trace(model, IMAGES)
        program.save(str(tmp_path / "model.ts"))
    loaded = load_model(tmp_path / "model.ts", host=host, arch="ignored", num_classes=3)
    assert loaded.format == "torchscript"
    assert loaded.class_names is None and loaded.arch is None
    assert loaded.model.training is False
    assert any("ignored arch, num_classes" in note for note in loaded.notes)
    assert torch.equal(_logits(loaded), expected)


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten())
        self.classifier = nn.Linear(72, 3)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(images))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.Tensor]:
    torch.manual_seed(0)
    tiny = _Tiny().eval()
    path = tmp_path_factory.mktemp("export") / "model.pt2"
    dynamic = {"images": {0: torch.export.Dim.DYNAMIC}}
    torch.export.save(torch.export.export(tiny, (IMAGES,), dynamic_shapes=dynamic), str(path))
    with torch.no_grad():
        return path, tiny(IMAGES)


def test_torch_export_programs_load_with_their_module_hierarchy(
    exported: tuple[Path, torch.Tensor], host: PluginHost
) -> None:
    path, expected = exported
    loaded = load_model(path, host=host)
    assert loaded.format == "torch_export"
    assert loaded.notes == ()
    assert torch.equal(_logits(loaded), expected)
    # Unflattened: layers keep their names, so embedding hooks can find the classifier.
    assert isinstance(loaded.model.get_submodule("classifier"), nn.Module)
    loaded.model.train()
    loaded.model.eval()
    assert torch.equal(_logits(loaded), expected)


def test_programs_exported_in_training_mode_are_flagged(tmp_path: Path, host: PluginHost) -> None:
    torch.manual_seed(0)
    program = torch.export.export(_Tiny().train(), (IMAGES,))
    assert exported_in_training_mode(program)
    torch.export.save(program, str(tmp_path / "train.pt2"))
    loaded = load_model(tmp_path / "train.pt2", host=host)
    assert any("exported in training mode" in note for note in loaded.notes)


def test_programs_with_a_fixed_batch_size_run_on_any_batch_size(
    tmp_path: Path, host: PluginHost
) -> None:
    torch.manual_seed(0)
    tiny = _Tiny().eval()
    torch.export.save(torch.export.export(tiny, (IMAGES[:4],)), str(tmp_path / "static.pt2"))
    loaded = load_model(tmp_path / "static.pt2", host=host)
    assert isinstance(loaded.model, StaticBatchModule) and loaded.model.batch_size == 4
    assert any("fixed batch size of 4" in note for note in loaded.notes)
    with torch.no_grad():
        expected = tiny(IMAGES)
    assert torch.allclose(_logits(loaded), expected, atol=1e-6)  # 6 images: 4 + (2 padded to 4)
    assert torch.allclose(_logits(loaded, IMAGES[:1]), expected[:1], atol=1e-6)


def test_programs_that_cannot_be_unflattened_are_wrapped(
    exported: tuple[Path, torch.Tensor], host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(program: object) -> None:
        raise NotImplementedError("unflatten not supported for this program")

    monkeypatch.setattr(torch.export, "unflatten", refuse)
    path, expected = exported
    loaded = load_model(path, host=host)
    assert isinstance(loaded.model, ExportedProgramModule)
    loaded.model.train()  # the bare graph module would raise here
    loaded.model.eval()
    assert torch.equal(_logits(loaded), expected)


# -- state dicts -----------------------------------------------------------------------------


def test_bare_state_dict_infers_classes_and_channels(
    tmp_path: Path, model: nn.Module, host: PluginHost
) -> None:
    path = _save(tmp_path / "sd.pt", model.state_dict())
    loaded = load_model(path, host=host, arch="small_cnn", arch_options={"width": 8})
    assert loaded.format == "state_dict"
    assert (loaded.num_classes, loaded.in_channels, loaded.arch) == (10, 1, "small_cnn")
    assert loaded.class_names is None and loaded.input_size is None and loaded.mean is None
    assert loaded.notes == ()
    assert torch.equal(_logits(loaded), _reference_logits(model))


def _wrap(layout: str, state: dict[str, torch.Tensor]) -> object:
    if layout == "bnnr-0.7":  # the reference's training checkpoints
        return {"model_state": {"model": state, "optimizer": {"state": {}}}, "iteration": 3}
    return {layout: state, "epoch": 4}


@pytest.mark.parametrize(
    "layout", ["state_dict", "model_state", "model", "model_state_dict", "bnnr-0.7"]
)
def test_nested_state_dicts_are_found(
    tmp_path: Path, model: nn.Module, host: PluginHost, layout: str
) -> None:
    path = _save(tmp_path / "ckpt.pt", _wrap(layout, model.state_dict()))
    loaded = load_model(path, host=host, arch="small_cnn", arch_options={"width": 8})
    assert loaded.format == "state_dict"
    assert any("weights read from" in note for note in loaded.notes)
    assert torch.equal(_logits(loaded), _reference_logits(model))


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod."])
def test_wrapper_prefixes_are_stripped(
    tmp_path: Path, model: nn.Module, host: PluginHost, prefix: str
) -> None:
    state = {prefix + key: value for key, value in model.state_dict().items()}
    path = _save(tmp_path / "sd.pt", {"state_dict": state})
    loaded = load_model(path, host=host, arch="small_cnn", arch_options={"width": 8})
    assert any("wrapper prefixes" in note for note in loaded.notes)
    assert torch.equal(_logits(loaded), _reference_logits(model))


def test_lightning_checkpoints_load(tmp_path: Path, model: nn.Module, host: PluginHost) -> None:
    state = {f"model.{key}": value for key, value in model.state_dict().items()}
    state["criterion.weight"] = torch.ones(10)  # a loss module's buffer, not part of the net
    lightning = {
        "epoch": 7,
        "global_step": 700,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": state,
        "optimizer_states": [{"state": {}, "param_groups": []}],
        "hyper_parameters": {"lr": 0.01, "width": 8},
        "class_names": [f"c{i}" for i in range(10)],
    }
    path = _save(tmp_path / "epoch=7.ckpt", lightning)
    loaded = load_model(path, host=host, arch="small_cnn", arch_options={"width": 8})
    assert "removed the key prefix 'model.'" in loaded.notes
    assert any("ignored 1 key(s)" in note and "criterion.weight" in note for note in loaded.notes)
    assert loaded.class_names == tuple(f"c{i}" for i in range(10))
    assert torch.equal(_logits(loaded), _reference_logits(model))


def test_torchvision_resnet18_state_dict_with_inferred_classes(
    tmp_path: Path, host: PluginHost
) -> None:
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None, num_classes=7).eval()
    images = torch.randn(2, 3, 32, 32)
    path = _save(tmp_path / "resnet18.pth", resnet.state_dict())
    loaded = load_model(path, host=host, arch="resnet18")
    assert (loaded.num_classes, loaded.in_channels) == (7, 3)
    assert isinstance(loaded.model, torchvision.models.ResNet)
    assert torch.equal(_logits(loaded, images), _reference_logits(resnet, images))


def test_classes_are_inferred_from_a_convolution_head(tmp_path: Path, host: PluginHost) -> None:
    squeezenet = torchvision.models.squeezenet1_1(weights=None, num_classes=6)
    path = _save(tmp_path / "squeezenet.pt", squeezenet.state_dict())
    loaded = load_model(path, host=host, arch="squeezenet1_1")
    assert loaded.num_classes == 6
    images = torch.randn(1, 3, 64, 64)
    assert torch.equal(_logits(loaded, images), _reference_logits(squeezenet, images))


def test_colliding_keys_are_compared_as_they_are(
    tmp_path: Path, model: nn.Module, host: PluginHost
) -> None:
    state = dict(model.state_dict())
    state["module.classifier.bias"] = state["classifier.bias"]  # two keys, one after stripping
    path = _save(tmp_path / "sd.pt", state)
    with pytest.raises(BnnrError, match=r"1 unexpected key \(module\.classifier\.bias\)"):
        load_model(path, host=host, arch="small_cnn", arch_options={"width": 8})


def test_one_channel_resnet_is_rebuilt_with_a_one_channel_stem(
    tmp_path: Path, host: PluginHost
) -> None:
    resnet = host.component("architecture", "resnet18").create(num_classes=4, in_channels=1)
    path = _save(tmp_path / "resnet18.pt", resnet.state_dict())
    loaded = load_model(path, host=host, arch="resnet18")
    assert (loaded.num_classes, loaded.in_channels) == (4, 1)
    images = torch.randn(2, 1, 16, 16)
    assert torch.equal(_logits(loaded, images), _reference_logits(resnet, images))


@pytest.mark.parametrize(
    ("arch", "options"),
    [("bnnr_models.small_cnn:SmallCNN", {"width": 8}), ("torchvision.models:resnet18", {})],
)
def test_package_module_factory_architectures(
    tmp_path: Path, host: PluginHost, arch: str, options: dict[str, Any]
) -> None:
    torch.manual_seed(0)
    if "resnet" in arch:
        reference: nn.Module = torchvision.models.resnet18(weights=None, num_classes=3)
        images = torch.randn(2, 3, 32, 32)
    else:
        reference, images = _trained_small_cnn(num_classes=3), IMAGES
    path = _save(tmp_path / "sd.pt", reference.state_dict())
    loaded = load_model(path, host=host, arch=arch, arch_options=options)
    assert loaded.arch == arch
    assert torch.equal(_logits(loaded, images), _reference_logits(reference, images))


def test_legacy_non_zip_files_load(tmp_path: Path, model: nn.Module, host: PluginHost) -> None:
    path = _save(tmp_path / "old.pt", model.state_dict(), _use_new_zipfile_serialization=False)
    loaded = load_model(path, host=host, arch="small_cnn", arch_options={"width": 8})
    assert torch.equal(_logits(loaded), _reference_logits(model))


def test_numpy_rng_state_in_a_checkpoint_does_not_need_trust(
    tmp_path: Path, model: nn.Module, host: PluginHost
) -> None:
    checkpoint = {
        "model_state": model.state_dict(),
        "rng_state": {
            "numpy": np.random.get_state(),
            "python": random.getstate(),
            "torch": torch.get_rng_state(),
        },
        "best_metric": np.float64(0.93),
        "history": np.arange(5.0),
    }
    path = _save(tmp_path / "train.pt", checkpoint)
    loaded = load_model(path, host=host, arch="small_cnn", arch_options={"width": 8})
    assert loaded.format == "state_dict"


# -- pickled modules: only with explicit trust -----------------------------------------------


def test_pickled_module_is_refused_without_trust_and_loaded_with_it(
    tmp_path: Path, model: nn.Module, host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _save(tmp_path / "full.pt", model)
    unsafe_calls: list[object] = []
    real_load = torch.load

    def spying_load(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("weights_only") is not True:
            unsafe_calls.append(args)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spying_load)
    with pytest.raises(BnnrError) as refused:
        load_model(path, host=host)
    message = str(refused.value)
    assert "holds pickled Python objects" in message
    assert "bnnr_models.small_cnn.SmallCNN" in message
    assert "arbitrary code" in message
    assert "--trust-checkpoint" in message
    assert "state dict" in message
    assert unsafe_calls == []  # never a silent unsafe attempt

    loaded = load_model(path, host=host, trust_checkpoint=True)
    assert len(unsafe_calls) == 1
    assert loaded.format == "pickled_module"
    assert loaded.model.training is False
    assert torch.equal(_logits(loaded), _reference_logits(model))
    assert model.training is True


def test_trust_does_not_change_how_safe_files_load(
    tmp_path: Path, model: nn.Module, host: PluginHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _save(tmp_path / "sd.pt", model.state_dict())
    real_load = torch.load
    seen: list[object] = []

    def spying_load(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spying_load)
    loaded = load_model(
        path, host=host, arch="small_cnn", arch_options={"width": 8}, trust_checkpoint=True
    )
    assert loaded.format == "state_dict"
    assert seen == [True]


def test_legacy_pickled_module_is_refused_too(
    tmp_path: Path, model: nn.Module, host: PluginHost
) -> None:
    path = _save(tmp_path / "old_full.pt", model, _use_new_zipfile_serialization=False)
    with pytest.raises(BnnrError, match=r"pickled Python objects .*--trust-checkpoint"):
        load_model(path, host=host)
    loaded = load_model(path, host=host, trust_checkpoint=True)
    assert loaded.format == "pickled_module"
    assert torch.equal(_logits(loaded), _reference_logits(model))


def test_lightning_checkpoint_with_pickled_hyperparameters_needs_trust(
    tmp_path: Path, model: nn.Module, host: PluginHost
) -> None:
    state = {f"model.{key}": value for key, value in model.state_dict().items()}
    hparams = argparse.Namespace(lr=0.1, width=8)  # what older Lightning scripts save
    path = _save(tmp_path / "last.ckpt", {"state_dict": state, "hyper_parameters": hparams})
    with pytest.raises(BnnrError, match=r"refers to argparse\.Namespace"):
        load_model(path, host=host, arch="small_cnn", arch_options={"width": 8})
    loaded = load_model(
        path, host=host, arch="small_cnn", arch_options={"width": 8}, trust_checkpoint=True
    )
    assert loaded.format == "state_dict"
    assert torch.equal(_logits(loaded), _reference_logits(model))


def test_pickled_dict_holding_a_module_loads_with_trust(
    tmp_path: Path, model: nn.Module, host: PluginHost
) -> None:
    path = _save(tmp_path / "bundle.pt", {"model": model, "epoch": 3})
    with pytest.raises(BnnrError, match="--trust-checkpoint"):
        load_model(path, host=host)
    loaded = load_model(path, host=host, trust_checkpoint=True)
    assert loaded.format == "pickled_module"
    assert torch.equal(_logits(loaded), _reference_logits(model))


# -- bad input: one clear sentence each ------------------------------------------------------


def _truncated(tmp_path: Path, model: nn.Module) -> Path:
    data = _save(tmp_path / "full.pt", model.state_dict()).read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    return tmp_path / "cut.pt"


def _foreign_zip(tmp_path: Path, _model: nn.Module) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("images/cat.png", b"not really")
    (tmp_path / "images.zip").write_bytes(buffer.getvalue())
    return tmp_path / "images.zip"


def _safetensors(tmp_path: Path, _model: nn.Module) -> Path:
    header = b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
    data = struct.pack("<Q", len(header)) + header + b"\x00" * 4
    (tmp_path / "model.safetensors").write_bytes(data)
    return tmp_path / "model.safetensors"


def _write_bytes(name: str, data: bytes) -> Callable[[Path, nn.Module], Path]:
    def make(tmp_path: Path, _model: nn.Module) -> Path:
        (tmp_path / name).write_bytes(data)
        return tmp_path / name

    return make


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp, _m: tmp / "nope.pt", r"does not exist; check the path passed as --model"),
        (lambda tmp, _m: tmp, r"is a folder, not a model file"),
        (_write_bytes("empty.pt", b""), r"is empty \(0 bytes\)"),
        (_write_bytes("notes.txt", b"hello\n" * 20), r"not a PyTorch model file"),
        (_write_bytes("junk.pt", b"\x80\x02garbage" * 20), r"could not be read as a PyTorch file"),
        (_truncated, r"damaged or truncated archive"),
        (_foreign_zip, r"zip archive but not a PyTorch one"),
        (_safetensors, r"safetensors file"),
    ],
    ids=["missing", "folder", "empty", "text", "garbage", "truncated", "zip", "safetensors"],
)
def test_unreadable_files_get_one_clear_sentence(
    tmp_path: Path,
    model: nn.Module,
    host: PluginHost,
    make: Callable[[Path, nn.Module], Path],
    message: str,
) -> None:
    with pytest.raises(BnnrError, match=message) as error:
        load_model(make(tmp_path, model), host=host, arch="small_cnn")
    assert "\n" not in str(error.value)


def test_state_dict_without_arch_asks_for_it(
    tmp_path: Path, model: nn.Module, host: PluginHost
) -> None:
    path = _save(tmp_path / "sd.pt", model.state_dict())
    with pytest.raises(BnnrError, match=r"only weights .*pass --arch .*resnet18, small_cnn"):
        load_model(path, host=host)


def test_unknown_arch_lists_the_choices(tmp_path: Path, model: nn.Module, host: PluginHost) -> None:
    path = _save(tmp_path / "sd.pt", model.state_dict())
    with pytest.raises(UnknownComponentError) as error:
        load_model(path, host=host, arch="resnet19")
    message = str(error.value)
    assert "unknown architecture 'resnet19'" in message
    assert "resnet18" in message and "small_cnn" in message
    assert "package.module:factory" in message


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ("nonexistent_pkg.models:build", "cannot import module 'nonexistent_pkg.models'"),
        ("bnnr_models.small_cnn:NoSuchThing", "has no 'NoSuchThing'"),
        ("bnnr_models:SMALL_CNN", "names a str, not a function"),
        ("torch.nn:Linear", "could not be built"),
    ],
)
def test_bad_factories_are_explained(
    tmp_path: Path, model: nn.Module, host: PluginHost, arch: str, message: str
) -> None:
    path = _save(tmp_path / "sd.pt", model.state_dict())
    with pytest.raises(BnnrError, match=message):
        load_model(path, host=host, arch=arch)


def test_weights_for_another_architecture_name_the_keys(
    tmp_path: Path, model: nn.Module, host: PluginHost
) -> None:
    path = _save(tmp_path / "sd.pt", model.state_dict())
    with pytest.raises(BnnrError) as error:
        load_model(path, host=host, arch="resnet18")
    message = str(error.value)
    assert "do not fit architecture 'resnet18'" in message
    assert "missing key" in message and "conv1.weight" in message
    assert "unexpected key" in message and "features.block1.0.weight" in message


def test_shape_mismatches_show_both_shapes(
    tmp_path: Path, model: nn.Module, host: PluginHost
) -> None:
    path = _save(tmp_path / "sd.pt", model.state_dict())
    with pytest.raises(BnnrError) as error:
        load_model(path, host=host, arch="small_cnn", arch_options={"width": 16})
    assert "features.block1.0.weight: file (8, 1, 3, 3), model (16, 1, 3, 3)" in str(error.value)


def test_wrong_num_classes_is_reported_with_the_right_one(
    tmp_path: Path, model: nn.Module, host: PluginHost
) -> None:
    path = _save(tmp_path / "sd.pt", model.state_dict())
    with pytest.raises(BnnrError, match=r"--num-classes 5 does not match .* 'classifier.weight'"):
        load_model(path, host=host, arch="small_cnn", arch_options={"width": 8}, num_classes=5)
    with pytest.raises(BnnrError, match="positive integer"):
        load_model(path, host=host, arch="small_cnn", num_classes=0)


def test_a_dict_without_weights_says_what_it_holds(tmp_path: Path, host: PluginHost) -> None:
    path = _save(tmp_path / "meta.pt", {"epoch": 3, "lr": 0.1})
    with pytest.raises(BnnrError, match=r"dict with keys \[epoch, lr\] but no model weights"):
        load_model(path, host=host, arch="small_cnn")


def test_devices_are_checked(tmp_path: Path, model: nn.Module, host: PluginHost) -> None:
    path = _save(tmp_path / "sd.pt", model.state_dict())
    with pytest.raises(BnnrError, match="unknown device 'gpu0'"):
        load_model(path, host=host, arch="small_cnn", device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(BnnrError, match="no CUDA GPU is available"):
            load_model(path, host=host, arch="small_cnn", device="cuda")
    assert loader_module.resolve_device("auto").type in {"cpu", "cuda"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_loading_onto_cuda(
    tmp_path: Path, model: nn.Module, host: PluginHost, exported: tuple[Path, torch.Tensor]
) -> None:
    path = _bnnr_checkpoint(tmp_path, model)
    loaded = load_model(path, host=host, device="cuda")
    assert all(p.device.type == "cuda" for p in loaded.model.parameters())
    with torch.no_grad():
        logits = loaded.model(IMAGES.cuda()).cpu()
    torch.testing.assert_close(logits, _reference_logits(model), rtol=1e-4, atol=1e-4)
    program_path, expected = exported
    program = load_model(program_path, host=host, device="cuda")
    with torch.no_grad():
        program_logits = program.model(IMAGES.cuda()).cpu()
    torch.testing.assert_close(program_logits, expected, rtol=1e-4, atol=1e-4)
