"""Unpickling ``torch.save`` files: safely by default, unsafely only when the user says so.

Every file is first inspected for the Python globals its pickle refers to. Only tensors,
containers and numpy arrays/scalars (allow-listed, so checkpoints with a numpy RNG state load) are
accepted by the safe path, ``torch.load(..., weights_only=True)``. A file that needs anything else
(a pickled ``nn.Module``, a custom class) raises :class:`NeedsTrust`: the caller decides, from
the user's explicit ``--trust-checkpoint``, whether :func:`load_trusted` may run. Nothing here
ever falls back to unsafe loading by itself.
"""

from __future__ import annotations

import contextlib
import importlib
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from bnnr_core.errors import BnnrError
from bnnr_core.modelio.files import TORCH_ZIP

# numpy's array and scalar constructors rebuild plain data; anything an object array holds
# still goes through the same restricted unpickler, so allowing them runs no foreign code.
_NUMPY_SAFE_GLOBALS = frozenset(
    {
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
    }
)
_NUMPY_DTYPE_CLASS = re.compile(r"^numpy\.dtypes\.[A-Za-z0-9]+DType$")
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


class NeedsTrust(Exception):
    """The file can only be unpickled unsafely; ``globals`` names what it refers to."""

    def __init__(self, globals_needed: list[str]) -> None:
        super().__init__(", ".join(globals_needed))
        self.globals_needed = globals_needed


def _is_allow_listed(name: str) -> bool:
    return name in _NUMPY_SAFE_GLOBALS or bool(_NUMPY_DTYPE_CLASS.match(name))


def _resolve_global(name: str) -> Any:
    module_name, _, attribute = name.rpartition(".")
    # numpy 2 renamed numpy.core to numpy._core; a file may name either spelling.
    spellings = [module_name]
    if module_name.startswith("numpy.core."):
        spellings.append(module_name.replace("numpy.core.", "numpy._core.", 1))
    elif module_name.startswith("numpy._core."):
        spellings.append(module_name.replace("numpy._core.", "numpy.core.", 1))
    for spelling in spellings:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return getattr(importlib.import_module(spelling), attribute)
        except (ImportError, AttributeError):
            continue
    return None


def _numpy_dtype_classes() -> list[Any]:
    # Unpickling numpy.dtype("u4") builds an instance of numpy.dtypes.UInt32DType, which the
    # weights-only unpickler checks too, although the file never names it.
    try:
        import numpy.dtypes as dtypes
    except ImportError:  # numpy < 1.25 has no dtype classes to allow
        return []
    return [
        obj
        for name in dir(dtypes)
        if name.endswith("DType") and isinstance(obj := getattr(dtypes, name), type)
    ]


def _globals_in(path: Path, container: str) -> list[str]:
    finder = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if container != TORCH_ZIP or finder is None:
        return []  # the legacy format is checked by the load itself (see load_weights_only)
    try:
        return list(finder(str(path)))
    except Exception as exc:
        raise _unreadable(path, exc) from exc


def _unreadable(path: Path, exc: BaseException) -> BnnrError:
    # torch's own messages run to paragraphs about weights_only; a short first line helps,
    # a long one only confuses.
    lines = str(exc).strip().splitlines()
    detail = lines[0].strip() if lines else ""
    reason = (
        f"{type(exc).__name__}: {detail}" if detail and len(detail) <= 120 else type(exc).__name__
    )
    return BnnrError(
        f"{path} could not be read as a PyTorch file ({reason}); it is probably truncated or "
        "damaged, so copy or save it again"
    )


def load_weights_only(path: Path, container: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, numpy data allowed.

    :raises NeedsTrust: when the file refers to other Python globals.
    :raises BnnrError: when the file is damaged.
    """
    needed = _globals_in(path, container)
    blocked = [name for name in needed if not _is_allow_listed(name)]
    if blocked:
        raise NeedsTrust(blocked)
    allowed: list[Any] = []
    for name in needed:
        obj = _resolve_global(name)
        if obj is not None:
            allowed.append((obj, name))
    if "numpy.dtype" in needed:
        allowed.extend(_numpy_dtype_classes())
    allowing = torch.serialization.safe_globals(allowed) if allowed else contextlib.nullcontext()
    try:
        with allowing:
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _UNSUPPORTED_GLOBAL.search(str(exc))
        if found:
            raise NeedsTrust([found.group(1)]) from exc
        raise _unreadable(path, exc) from exc
    except Exception as exc:
        raise _unreadable(path, exc) from exc


def load_trusted(path: Path) -> Any:
    """``torch.load(path, weights_only=False)``: may run code from the file. Call it only when
    the user explicitly trusted the file.

    :raises BnnrError: when a class the file needs cannot be imported, or the file is damaged.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (AttributeError, ModuleNotFoundError, ImportError) as exc:
        raise BnnrError(
            f"{path} needs a class that cannot be imported here ({exc}); make the module that "
            "defines the model importable (e.g. on PYTHONPATH) or save a state dict instead"
        ) from exc
    except Exception as exc:
        raise _unreadable(path, exc) from exc


def unsafe_pickle_error(path: Path, globals_needed: list[str]) -> BnnrError:
    """The refusal for a file that only unsafe unpickling can read."""
    # The user's own classes say more about the file than torch's building blocks.
    ordered = sorted(globals_needed, key=lambda name: name.startswith("torch."))
    shown = ", ".join(ordered[:3]) + (", ..." if len(ordered) > 3 else "")
    return BnnrError(
        f"{path} holds pickled Python objects (it refers to {shown}), and unpickling them can "
        "run arbitrary code, so BNNR does not load it by default; pass --trust-checkpoint "
        "(trust_checkpoint=True) only if you trust where the file came from, or re-save the "
        "model as a state dict (torch.save(model.state_dict(), path)) or TorchScript"
    )
