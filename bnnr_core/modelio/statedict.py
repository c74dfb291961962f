"""Finding a state dict in a loaded object and fitting it to a freshly built model.

Checkpoints in the wild wrap the same weights in many ways: bare, under ``state_dict`` (PyTorch
Lightning), ``model_state_dict``, ``model_state`` or ``model``; with ``module.`` (DataParallel,
DDP) or ``_orig_mod.`` (``torch.compile``) in front of every key; and Lightning prefixes keys
with the attribute holding the network (``model.``, ``net.``, ...), next to keys of losses or
metrics. Instead of guessing one rule, :func:`fit_state_dict` tries each plausible view of the
keys and keeps the one that matches the model exactly, so nothing is ever half-loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import torch
from torch import nn

#: Keys under which checkpoints commonly nest the state dict, in the order they are tried.
NESTED_KEYS = ("state_dict", "model_state_dict", "model_state", "model")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_MAX_DEPTH = 3
_SHOWN = 3


def is_state_dict(obj: object) -> bool:
    """Whether ``obj`` is a non-empty mapping of string keys to tensors."""
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def find_state_dict(obj: object, _depth: int = 0) -> tuple[dict[str, torch.Tensor], str] | None:
    """The state dict inside a loaded object and where it was (e.g. ``"['state_dict']"``), or
    ``None``. Nested layouts such as ``{"model_state": {"model": {...}, "optimizer": ...}}`` are
    followed a few levels deep."""
    if is_state_dict(obj):
        assert isinstance(obj, Mapping)
        return dict(obj), ""
    if not isinstance(obj, Mapping) or _depth >= _MAX_DEPTH:
        return None
    for key in NESTED_KEYS:
        if key in obj:
            found = find_state_dict(obj[key], _depth + 1)
            if found is not None:
                state, where = found
                return state, f"[{key!r}]{where}"
    return None


def infer_num_classes(state: Mapping[str, torch.Tensor]) -> tuple[int, str] | None:
    """Outputs of the classifier and its key, or ``None``: the last weight matrix, or the last
    convolution weight when it comes later (SqueezeNet-style 1x1 convolution heads)."""
    for key in reversed(list(state)):
        value = state[key]
        if key.endswith("weight") and value.ndim in (2, 4) and value.is_floating_point():
            return int(value.shape[0]), key
    return None


def infer_in_channels(state: Mapping[str, torch.Tensor]) -> int | None:
    """Input channels of the first convolution weight, or ``None``."""
    for key, value in state.items():
        if key.endswith("weight") and value.ndim == 4 and value.is_floating_point():
            return int(value.shape[1])
    return None


def _strip_wrappers(key: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                stripped = True
    return key


def _candidate_prefixes(keys: list[str]) -> list[str]:
    # "" first, then every first and first-two dotted components the keys start with.
    prefixes: dict[str, None] = {"": None}
    for key in keys:
        parts = _strip_wrappers(key).split(".")
        for depth in (1, 2):
            if len(parts) > depth:
                prefixes[".".join(parts[:depth]) + "."] = None
    return list(prefixes)


@attrs.frozen(kw_only=True)
class StateDictView:
    """The file's keys with a prefix removed (and the keys without that prefix dropped)."""

    prefix: str
    state: dict[str, torch.Tensor]
    dropped: tuple[str, ...]
    stripped_wrappers: bool


def _views(state: Mapping[str, torch.Tensor]) -> list[StateDictView]:
    keys = list(state)
    # The keys as they are, always: when stripping collapses two keys into one, this is the
    # view whose mismatch explains the file.
    views = [StateDictView(prefix="", state=dict(state), dropped=(), stripped_wrappers=False)]
    for prefix in _candidate_prefixes(keys):
        kept: dict[str, torch.Tensor] = {}
        dropped: list[str] = []
        wrapped = False
        for key in keys:
            plain = _strip_wrappers(key)
            wrapped = wrapped or plain != key
            if prefix and not plain.startswith(prefix):
                dropped.append(key)
                continue
            kept[_strip_wrappers(plain[len(prefix) :])] = state[key]
        if not prefix and not wrapped:
            continue  # the same as the first view
        if kept and len(kept) == len(keys) - len(dropped):  # no two keys collapsed into one
            views.append(
                StateDictView(
                    prefix=prefix, state=kept, dropped=tuple(dropped), stripped_wrappers=wrapped
                )
            )
    return views


@attrs.frozen(kw_only=True)
class Mismatch:
    """How a state dict fails to fit a model."""

    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    #: ``(key, shape in the file, shape in the model)``.
    shapes: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]

    @property
    def matched(self) -> bool:
        return not (self.missing or self.unexpected or self.shapes)

    def describe(self) -> str:
        """``2 missing keys (a, b); 1 shape mismatch (fc.weight: file (10, 512), model ...)``."""
        parts = []
        if self.missing:
            parts.append(f"{_count(self.missing, 'missing key')} ({_list(self.missing)})")
        if self.unexpected:
            parts.append(f"{_count(self.unexpected, 'unexpected key')} ({_list(self.unexpected)})")
        if self.shapes:
            shown = [
                f"{key}: file {tuple(file_shape)}, model {tuple(model_shape)}"
                for key, file_shape, model_shape in self.shapes[:_SHOWN]
            ]
            more = ", ..." if len(self.shapes) > _SHOWN else ""
            parts.append(f"{_count(self.shapes, 'shape mismatch')} ({', '.join(shown)}{more})")
        return "; ".join(parts)


def _count(items: tuple[Any, ...], noun: str) -> str:
    suffix = "es" if noun.endswith("mismatch") else "s"
    return f"{len(items)} {noun}" + (suffix if len(items) != 1 else "")


def _list(keys: tuple[str, ...]) -> str:
    return ", ".join(keys[:_SHOWN]) + (", ..." if len(keys) > _SHOWN else "")


def _compare(view: StateDictView, expected: Mapping[str, torch.Tensor]) -> Mismatch:
    # BatchNorm rebuilds num_batches_tracked when it is absent (older checkpoints lack it).
    missing = tuple(
        key for key in expected if key not in view.state and not key.endswith("num_batches_tracked")
    )
    unexpected = tuple(key for key in view.state if key not in expected)
    shapes = tuple(
        (key, tuple(value.shape), tuple(expected[key].shape))
        for key, value in view.state.items()
        if key in expected and tuple(value.shape) != tuple(expected[key].shape)
    )
    return Mismatch(missing=missing, unexpected=unexpected, shapes=shapes)


@attrs.frozen(kw_only=True)
class FitResult:
    """The outcome of :func:`fit_state_dict`: the view that fits, or the closest one."""

    view: StateDictView
    mismatch: Mismatch


def fit_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> FitResult:
    """Find the view of ``state`` that fits ``model`` exactly and load it (``strict=True``).

    When no view fits, nothing is loaded and the result holds the closest view and its
    :class:`Mismatch` (check ``result.mismatch.matched``).
    """
    expected = model.state_dict()
    scored = []
    for view in _views(state):
        mismatch = _compare(view, expected)
        overlap = sum(1 for key in view.state if key in expected)
        # Prefer an exact fit, then the most shared keys, then fewer dropped keys.
        scored.append(((mismatch.matched, overlap, -len(view.dropped)), view, mismatch))
    _, view, mismatch = max(scored, key=lambda item: item[0])
    if mismatch.matched:
        model.load_state_dict(view.state, strict=not _lacks_batch_counters(view, expected))
    return FitResult(view=view, mismatch=mismatch)


def _lacks_batch_counters(view: StateDictView, expected: Mapping[str, torch.Tensor]) -> bool:
    return any(key not in view.state for key in expected)
