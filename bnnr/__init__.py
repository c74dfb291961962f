"""BNNR: train, explain, improve and prove PyTorch image classifiers.

``import bnnr`` is a thin facade over :mod:`bnnr_core`: it re-exports the public API and holds
no logic. Names are resolved on first use, so importing ``bnnr`` stays cheap and never imports
torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from bnnr_core._version import __version__
from bnnr_core.markers import hookimpl

#: Public name -> module that defines it.
_EXPORTS: dict[str, str] = {
    # plugins
    "load_plugins": "bnnr_core.plugins",
    "PluginHost": "bnnr_core.plugins",
    "PluginRecord": "bnnr_core.plugins",
    "Component": "bnnr_core.components",
    # errors
    "BnnrError": "bnnr_core.errors",
    "PluginLoadError": "bnnr_core.errors",
    "UnknownComponentError": "bnnr_core.errors",
    # events and runs
    "Event": "bnnr_core.events",
    "EventLog": "bnnr_core.events",
    "EventTail": "bnnr_core.events",
    "read_events": "bnnr_core.events",
    "EVENT_SCHEMA_VERSION": "bnnr_core.events",
    "create_run_dir": "bnnr_core.runs",
    "RunDirectory": "bnnr_core.runs",
    # JSON artifacts
    "write_json": "bnnr_core.jsonio",
    "read_json": "bnnr_core.jsonio",
}

__all__ = ["__version__", "hookimpl", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'bnnr' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
