"""BNNR's own checkpoint format: weights plus everything needed to use them.

A BNNR checkpoint is one file written by :func:`torch.save` holding a plain dictionary::

    {
        "format": "bnnr.checkpoint",          # marker: this is a BNNR checkpoint
        "format_version": 1,
        "arch": {"name": "small_cnn", "options": {"width": 32}},
        "state_dict": {...},                   # CPU tensors
        "class_names": ["cat", "dog"],
        "task": "classification",
        "input_size": [3, 32, 32],             # channels, height, width
        "normalization": {"mean": [...], "std": [...]},   # one value per channel, on [0, 1] pixels
        "metadata": {"bnnr_version": ..., "torch_version": ..., "created_at": ...},
        "extra": {...},                        # caller's JSON-like facts
    }

Only strings, numbers, booleans, ``None``, lists, dicts and tensors are stored, so the file loads
with ``torch.load(path, weights_only=True)``: reading a BNNR checkpoint never runs pickled code.
The architecture is rebuilt by name through the ``bnnr_register_architectures`` hook (see
:func:`bnnr_core.modelio.load_model`).
"""

from __future__ import annotations

import datetime as dt
import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from bnnr_core._version import __version__
from bnnr_core.errors import BnnrError
from bnnr_core.jsonio import write_bytes_atomic

#: Value of the ``format`` key that marks a BNNR checkpoint.
CHECKPOINT_FORMAT = "bnnr.checkpoint"
#: The format version this release writes; it reads this one and older ones.
CHECKPOINT_VERSION = 1

_JSON_SCALARS = (str, int, float, bool, type(None))


@attrs.frozen(kw_only=True)
class Checkpoint:
    """A BNNR checkpoint as read by :func:`read_checkpoint`."""

    format_version: int
    arch: str
    arch_options: Mapping[str, Any] = attrs.field(factory=dict)
    state_dict: Mapping[str, torch.Tensor] = attrs.field(repr=False)
    class_names: tuple[str, ...]
    task: str
    #: ``(channels, height, width)`` of the images the model expects.
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    metadata: Mapping[str, Any] = attrs.field(factory=dict)
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def num_classes(self) -> int:
        """Number of classes (the length of :attr:`class_names`)."""
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        """Channels of the input images (the first entry of :attr:`input_size`)."""
        return self.input_size[0]


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    arch: str,
    arch_options: Mapping[str, Any] | None = None,
    class_names: Sequence[str],
    task: str = "classification",
    input_size: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model``'s weights and facts as a BNNR checkpoint at ``path``, atomically.

    :param model: the trained model; it is not moved, modified or switched between train and
        eval mode (its tensors are copied to the CPU for saving).
    :param arch: the registered architecture name that rebuilds the model (e.g. ``small_cnn``),
        or ``package.module:factory``.
    :param arch_options: further keyword arguments of the architecture factory, besides
        ``num_classes`` and ``in_channels`` (JSON-like values only).
    :param class_names: one name per output, in output order.
    :param input_size: ``(channels, height, width)``.
    :param mean: per-channel normalisation mean, on pixels scaled to ``[0, 1]``.
    :param std: per-channel normalisation standard deviation (positive).
    :param extra: caller's JSON-like facts (training metrics, data set name...).
    :returns: the path written.
    :raises ValueError: when an argument is inconsistent (e.g. ``len(mean) != channels``).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, not {type(model).__name__}")
    spec = _validated_spec(
        arch=arch,
        arch_options=dict(arch_options or {}),
        class_names=class_names,
        task=task,
        input_size=input_size,
        mean=mean,
        std=std,
        extra=dict(extra or {}),
    )
    # state_dict() hands out detached views of the live parameters; copying them to fresh CPU
    # tensors leaves the caller's model (device, values, mode) exactly as it was, and saves no
    # larger storages that the views might share.
    state_dict = {
        key: value.detach().to("cpu", copy=True) for key, value in model.state_dict().items()
    }
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        **spec,
        "state_dict": state_dict,
        "metadata": {
            "bnnr_version": __version__,
            "torch_version": torch.__version__.split("+")[0],
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        },
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return write_bytes_atomic(path, buffer.getvalue())


def _validated_spec(
    *,
    arch: str,
    arch_options: dict[str, Any],
    class_names: Sequence[str],
    task: str,
    input_size: Sequence[int],
    mean: Sequence[float],
    std: Sequence[float],
    extra: dict[str, Any],
) -> dict[str, Any]:
    if not isinstance(arch, str) or not arch:
        raise ValueError("arch must be a non-empty architecture name")
    names = list(class_names)
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ValueError("class_names must be a non-empty sequence of non-empty strings")
    if len(set(names)) != len(names):
        raise ValueError(f"class_names has duplicates: {names}")
    size = [int(v) for v in input_size]
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"input_size must be (channels, height, width); got {list(input_size)}")
    mean_values = [float(v) for v in mean]
    std_values = [float(v) for v in std]
    if len(mean_values) != size[0] or len(std_values) != size[0]:
        raise ValueError(
            f"mean and std need one value per channel ({size[0]}); "
            f"got {len(mean_values)} and {len(std_values)}"
        )
    if not all(math.isfinite(v) for v in mean_values) or not all(
        math.isfinite(v) and v > 0 for v in std_values
    ):
        raise ValueError("mean must be finite and std finite and positive")
    for label, value in (("arch_options", arch_options), ("extra", extra)):
        _require_plain(value, label)
    return {
        "arch": {"name": arch, "options": arch_options},
        "class_names": names,
        "task": str(task),
        "input_size": size,
        "normalization": {"mean": mean_values, "std": std_values},
        "extra": extra,
    }


def _require_plain(value: Any, where: str) -> None:
    # Anything but these would need pickled classes, and the file could then no longer be
    # loaded with weights_only=True.
    if isinstance(value, _JSON_SCALARS):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where} keys must be strings; got {key!r}")
            _require_plain(item, f"{where}.{key}")
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _require_plain(item, f"{where}[{index}]")
        return
    raise ValueError(
        f"{where} holds a {type(value).__name__}; only str, int, float, bool, None, lists and "
        "dicts can be stored in a checkpoint"
    )


def require_model_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a :class:`Path` if it is a non-empty readable file, else a :class:`BnnrError`
    that says what is wrong."""
    source = Path(path)
    if not source.exists():
        raise BnnrError(f"model file {source} does not exist; check the path passed as --model")
    if source.is_dir():
        raise BnnrError(
            f"{source} is a folder, not a model file; pass the checkpoint file inside it "
            "(e.g. model.pt)"
        )
    try:
        size = source.stat().st_size
        with source.open("rb"):
            pass
    except OSError as exc:
        raise BnnrError(
            f"model file {source} cannot be read ({exc.strerror}); fix its permissions"
        ) from exc
    if size == 0:
        raise BnnrError(f"model file {source} is empty (0 bytes); save the model again")
    return source


def is_checkpoint_dict(obj: object) -> bool:
    """Whether a loaded object is a BNNR checkpoint dictionary (has the format marker)."""
    return isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a BNNR checkpoint (safely: ``weights_only=True``, tensors on the CPU).

    :raises BnnrError: when the file is missing, unreadable, not a BNNR checkpoint, or written by
        a newer BNNR.
    """
    source = require_model_file(path)
    try:
        obj = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BnnrError(
            f"{source} is not a readable BNNR checkpoint ({type(exc).__name__}); load other "
            "model files with load_model"
        ) from exc
    return checkpoint_from_dict(obj, source=str(source))


def checkpoint_from_dict(obj: object, *, source: str) -> Checkpoint:
    """Build a :class:`Checkpoint` from the dictionary :func:`torch.load` returned.

    :param source: where the dictionary came from, for error messages.
    :raises BnnrError: when ``obj`` is not a BNNR checkpoint or is malformed.
    """
    if not is_checkpoint_dict(obj):
        raise BnnrError(
            f"{source} is not a BNNR checkpoint (no format marker {CHECKPOINT_FORMAT!r}); "
            "load it with load_model instead"
        )
    assert isinstance(obj, Mapping)
    version = obj.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise BnnrError(f"{source} has an invalid checkpoint format_version {version!r}")
    if version > CHECKPOINT_VERSION:
        raise BnnrError(
            f"{source} uses BNNR checkpoint format {version}, newer than this BNNR reads "
            f"({CHECKPOINT_VERSION}); upgrade bnnr"
        )
    try:
        arch = obj["arch"]
        normalization = obj["normalization"]
        state_dict = obj["state_dict"]
        if not isinstance(state_dict, Mapping) or not all(
            isinstance(v, torch.Tensor) for v in state_dict.values()
        ):
            raise TypeError("state_dict must map names to tensors")
        size = tuple(int(v) for v in obj["input_size"])
        if len(size) != 3:
            raise ValueError("input_size must have 3 entries")
        return Checkpoint(
            format_version=version,
            arch=str(arch["name"]),
            arch_options=dict(arch.get("options") or {}),
            state_dict=dict(state_dict),
            class_names=tuple(str(name) for name in obj["class_names"]),
            task=str(obj["task"]),
            input_size=(size[0], size[1], size[2]),
            mean=tuple(float(v) for v in normalization["mean"]),
            std=tuple(float(v) for v in normalization["std"]),
            metadata=dict(obj.get("metadata") or {}),
            extra=dict(obj.get("extra") or {}),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BnnrError(
            f"{source} is a damaged BNNR checkpoint ({type(exc).__name__}: {exc}); save it again"
        ) from exc
