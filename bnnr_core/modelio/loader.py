"""``load_model``: any model file a user has, as an ``nn.Module`` in eval mode plus its facts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from bnnr_core.checkpoints import (
    Checkpoint,
    checkpoint_from_dict,
    is_checkpoint_dict,
    require_model_file,
)
from bnnr_core.errors import BnnrError
from bnnr_core.modelio.architectures import build_architecture
from bnnr_core.modelio.files import (
    TORCH_EXPORT,
    TORCHSCRIPT,
    file_sha256,
    sniff_container,
)
from bnnr_core.modelio.programs import load_exported_program, load_torchscript
from bnnr_core.modelio.safeload import (
    NeedsTrust,
    load_trusted,
    load_weights_only,
    unsafe_pickle_error,
)
from bnnr_core.modelio.statedict import (
    NESTED_KEYS,
    Mismatch,
    find_state_dict,
    fit_state_dict,
    infer_in_channels,
    infer_num_classes,
)
from bnnr_core.plugins import PluginHost

#: Values of :attr:`LoadedModel.format`.
#: ``module`` is a model handed to :func:`bnnr.analyze` in memory rather than loaded from a file.
MODEL_FORMATS = ("bnnr", "torchscript", "torch_export", "state_dict", "pickled_module", "module")

_DEFAULT_IN_CHANNELS = 3


@attrs.frozen(kw_only=True)
class LoadedModel:
    """A loaded model and what is known about it. Unknown facts are ``None``."""

    #: A fresh module, on the requested device, in eval mode (format ``module``: the caller's
    #: own module, used where it is and never modified).
    model: nn.Module = attrs.field(repr=False)
    #: One of :data:`MODEL_FORMATS`.
    format: str
    #: The file it came from (``None`` for a module handed over in memory).
    path: Path | None
    #: Hex SHA-256 of the file, for provenance (``None`` without a file).
    sha256: str | None
    arch: str | None = None
    arch_options: Mapping[str, Any] = attrs.field(factory=dict)
    num_classes: int | None = None
    in_channels: int | None = None
    class_names: tuple[str, ...] | None = None
    task: str | None = None
    #: ``(channels, height, width)``.
    input_size: tuple[int, int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    #: BNNR checkpoint metadata and extras (empty for other formats).
    metadata: Mapping[str, Any] = attrs.field(factory=dict)
    #: What the loader did that a user may want to know (prefixes stripped, options ignored).
    notes: tuple[str, ...] = ()


def load_model(
    path: str | os.PathLike[str],
    *,
    host: PluginHost,
    arch: str | None = None,
    arch_options: Mapping[str, Any] | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    trust_checkpoint: bool = False,
    device: str | torch.device = "cpu",
) -> LoadedModel:
    """Load a model file, whatever its format, safely.

    Formats, detected from the file's bytes (never its name), in this order:

    1. ``torch.export`` program (``.pt2``) -> ``torch.export.load``; format ``torch_export``.
    2. TorchScript archive -> ``torch.jit.load``; format ``torchscript``.
    3. ``torch.save`` file, unpickled with ``weights_only=True`` (numpy arrays allowed):

       a. a BNNR checkpoint (:mod:`bnnr_core.checkpoints`) -> rebuilt from its architecture
          spec; format ``bnnr``;
       b. a state dict, bare or nested under ``state_dict``/``model_state_dict``/
          ``model_state``/``model`` (PyTorch Lightning, training loops), with ``module.``,
          ``_orig_mod.`` or a Lightning attribute prefix removed -> ``arch`` is required;
          format ``state_dict``.

    4. A file that only unsafe unpickling can read (a pickled ``nn.Module``) is refused with a
       :class:`BnnrError` unless ``trust_checkpoint`` is true; then it is loaded with
       ``weights_only=False``; format ``pickled_module``.

    :param host: the loaded plugins; architectures are looked up among their components.
    :param arch: registered architecture name (``small_cnn``, ``resnet18``, ...) or
        ``package.module:factory``; required for state dicts, ignored for programs.
    :param arch_options: further factory keyword arguments (e.g. ``{"width": 16}``).
    :param num_classes: classes of the model; inferred from the last weight matrix if omitted.
    :param in_channels: input channels; inferred from the first convolution if omitted.
    :param trust_checkpoint: allow unsafe unpickling of files that need it. Only for files
        from a trusted source: unpickling can run arbitrary code.
    :param device: where the returned model lives (``cpu``, ``cuda``, ``cuda:1``, ``auto``).
    :raises BnnrError: with a one-sentence reason and fix for every problem a user can cause.
    """
    source = require_model_file(path)
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if value is not None and value < 1:
            raise BnnrError(f"{name} must be a positive integer, not {value}")
    request = _Request(
        host=host,
        source=source,
        sha256=file_sha256(source),
        device=resolve_device(device),
        arch=arch,
        arch_options=dict(arch_options or {}),
        num_classes=num_classes,
        in_channels=in_channels,
    )
    container = sniff_container(source)
    if container == TORCH_EXPORT:
        module, notes = load_exported_program(source, request.device)
        return request.result(module, "torch_export", notes=request.ignored_options() + notes)
    if container == TORCHSCRIPT:
        module = load_torchscript(source, request.device)
        return request.result(module, "torchscript", notes=request.ignored_options())

    try:
        obj = load_weights_only(source, container)
        trusted = False
    except NeedsTrust as refusal:
        if not trust_checkpoint:
            raise unsafe_pickle_error(source, refusal.globals_needed) from None
        obj = load_trusted(source)
        trusted = True

    if is_checkpoint_dict(obj):
        return _from_checkpoint(checkpoint_from_dict(obj, source=str(source)), request)
    pickled = _pickled_module(obj) if trusted else None
    if pickled is not None:
        return request.result(pickled, "pickled_module", notes=request.ignored_options())
    found = find_state_dict(obj)
    if found is None:
        raise BnnrError(f"{source} holds {_describe(obj)} but no model weights; {_formats_hint()}")
    state, where = found
    return _from_state_dict(state, where, obj, request)


@attrs.frozen(kw_only=True)
class _Request:
    """What the caller asked for, shared by the per-format loaders."""

    host: PluginHost
    source: Path
    sha256: str
    device: torch.device
    arch: str | None
    arch_options: dict[str, Any]
    num_classes: int | None
    in_channels: int | None

    def result(self, model: nn.Module, model_format: str, **facts: Any) -> LoadedModel:
        facts["notes"] = tuple(facts.get("notes", ()))
        if "in_channels" not in facts:
            facts["in_channels"] = module_in_channels(model)
        return LoadedModel(
            model=model.to(self.device).eval(),
            format=model_format,
            path=self.source,
            sha256=self.sha256,
            **facts,
        )

    def ignored_options(self) -> list[str]:
        given = [
            name
            for name, value in (
                ("arch", self.arch),
                ("arch_options", self.arch_options or None),
                ("num_classes", self.num_classes),
                ("in_channels", self.in_channels),
            )
            if value is not None
        ]
        if not given:
            return []
        return [f"ignored {', '.join(given)}: this file carries its own architecture"]


def module_in_channels(model: nn.Module) -> int | None:
    """Input channels of a module's first convolution, when its weights can be listed."""
    try:
        return infer_in_channels(model.state_dict())
    except Exception:  # scripted or exported modules may not list weights like eager ones
        return None


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a :class:`torch.device`; ``auto`` picks CUDA when available.

    :raises BnnrError: for an unknown device or one this machine does not have.
    """
    if isinstance(device, str) and device.strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise BnnrError(f"unknown device {device!r}; use cpu, cuda, cuda:N, mps or auto") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise BnnrError(f"device {device!r} was requested but no CUDA GPU is available; use cpu")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise BnnrError(
            f"device {device!r} does not exist; this machine has "
            f"{torch.cuda.device_count()} CUDA device(s)"
        )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise BnnrError(f"device {device!r} was requested but MPS is not available; use cpu")
    return resolved


def _from_checkpoint(checkpoint: Checkpoint, request: _Request) -> LoadedModel:
    source = request.source
    # The checkpoint names its own architecture; a differing request is a mistake to report,
    # not a silent override.
    if request.arch is not None and request.arch != checkpoint.arch:
        raise BnnrError(
            f"{source} is a BNNR checkpoint of architecture {checkpoint.arch!r}, not "
            f"{request.arch!r}; drop --arch (the checkpoint names its architecture)"
        )
    if request.num_classes is not None and request.num_classes != checkpoint.num_classes:
        raise BnnrError(
            f"--num-classes {request.num_classes} does not match {source}, which has "
            f"{checkpoint.num_classes} classes; drop --num-classes or pass "
            f"{checkpoint.num_classes}"
        )
    if request.in_channels is not None and request.in_channels != checkpoint.in_channels:
        raise BnnrError(
            f"in_channels {request.in_channels} does not match {source}, whose model takes "
            f"{checkpoint.in_channels}-channel images; drop it or pass {checkpoint.in_channels}"
        )
    options = {**checkpoint.arch_options, **request.arch_options}
    model = build_architecture(
        checkpoint.arch,
        host=request.host,
        num_classes=checkpoint.num_classes,
        in_channels=checkpoint.in_channels,
        options=options,
    )
    fit = fit_state_dict(model, checkpoint.state_dict)
    if not fit.mismatch.matched:
        written_by = checkpoint.metadata.get("bnnr_version", "an unknown version")
        raise BnnrError(
            f"the weights in BNNR checkpoint {source} do not fit architecture "
            f"{checkpoint.arch!r} as it is built now ({fit.mismatch.describe()}); the "
            f"architecture changed since the file was written (by bnnr {written_by}), so "
            "install the versions of bnnr and the plugin that wrote it"
        )
    return request.result(
        model,
        "bnnr",
        arch=checkpoint.arch,
        arch_options=options,
        num_classes=checkpoint.num_classes,
        in_channels=checkpoint.in_channels,
        class_names=checkpoint.class_names,
        task=checkpoint.task,
        input_size=checkpoint.input_size,
        mean=checkpoint.mean,
        std=checkpoint.std,
        metadata={**checkpoint.metadata, "extra": dict(checkpoint.extra)},
    )


def _from_state_dict(
    state: dict[str, torch.Tensor], where: str, container: object, request: _Request
) -> LoadedModel:
    source, arch = request.source, request.arch
    if arch is None:
        raise BnnrError(
            f"{source} holds only weights (a state dict), so BNNR needs the architecture to "
            "build: pass --arch with a registered name (e.g. resnet18, small_cnn) or "
            "package.module:factory"
        )
    inferred = infer_num_classes(state)
    num_classes = request.num_classes
    if num_classes is None:
        if inferred is None:
            raise BnnrError(
                f"the number of classes cannot be inferred from {source} (it holds no weight "
                "matrix); pass --num-classes"
            )
        num_classes = inferred[0]
    channels = request.in_channels or infer_in_channels(state) or _DEFAULT_IN_CHANNELS
    model = build_architecture(
        arch,
        host=request.host,
        num_classes=num_classes,
        in_channels=channels,
        options=request.arch_options,
    )
    fit = fit_state_dict(model, state)
    if not fit.mismatch.matched:
        raise _mismatch_error(request, fit.mismatch, num_classes, inferred)
    notes = []
    if where:
        notes.append(f"weights read from {where} of the file")
    if fit.view.stripped_wrappers:
        notes.append("removed 'module.'/'_orig_mod.' wrapper prefixes from the keys")
    if fit.view.prefix:
        notes.append(f"removed the key prefix {fit.view.prefix!r}")
    if fit.view.dropped:
        notes.append(
            f"ignored {len(fit.view.dropped)} key(s) outside {fit.view.prefix!r} "
            f"(e.g. {fit.view.dropped[0]})"
        )
    return request.result(
        model,
        "state_dict",
        arch=arch,
        arch_options=request.arch_options,
        num_classes=num_classes,
        in_channels=channels,
        class_names=_class_names_beside(container, num_classes),
        notes=notes,
    )


def _mismatch_error(
    request: _Request, mismatch: Mismatch, num_classes: int, inferred: tuple[int, str] | None
) -> BnnrError:
    if inferred is not None and inferred[0] != num_classes:
        outputs, key = inferred
        return BnnrError(
            f"--num-classes {num_classes} does not match the weights in {request.source}, whose "
            f"last layer {key!r} has {outputs} outputs; drop --num-classes or pass {outputs}"
        )
    return BnnrError(
        f"the weights in {request.source} do not fit architecture {request.arch!r} "
        f"({mismatch.describe()}); check that --arch names the architecture they were "
        "trained with"
    )


def _class_names_beside(obj: object, num_classes: int) -> tuple[str, ...] | None:
    # Training scripts often save the class list next to the weights; use it when it fits.
    if not isinstance(obj, Mapping):
        return None
    for key in ("class_names", "classes"):
        names = obj.get(key)
        if (
            isinstance(names, (list, tuple))
            and len(names) == num_classes
            and all(isinstance(name, str) for name in names)
        ):
            return tuple(names)
    return None


def _pickled_module(obj: object) -> nn.Module | None:
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, Mapping):
        for key in (*NESTED_KEYS, "module", "net"):
            value = obj.get(key)
            if isinstance(value, nn.Module):
                return value
    return None


def _describe(obj: object) -> str:
    if isinstance(obj, Mapping):
        keys = [str(key) for key in list(obj)[:5]]
        more = ", ..." if len(obj) > 5 else ""
        return f"a dict with keys [{', '.join(keys)}{more}]"
    return f"a {type(obj).__name__}"


def _formats_hint() -> str:
    nested = ", ".join(NESTED_KEYS)
    return (
        f"save the model's state_dict (bare or under one of: {nested}), a TorchScript or "
        "torch.export file, or a BNNR checkpoint"
    )
