"""BNNR: train, explain, improve and prove PyTorch image classifiers.

``import bnnr`` is a thin facade over :mod:`bnnr_core`: it re-exports the public API and holds
no logic. Names are resolved on first use, so importing ``bnnr`` stays cheap and never imports
torch.
"""

from __future__ import annotations

from bnnr_core._version import __version__
from bnnr_core.lazy import lazy_exports
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
    # models and data
    "save_checkpoint": "bnnr_core.checkpoints",
    "read_checkpoint": "bnnr_core.checkpoints",
    "Checkpoint": "bnnr_core.checkpoints",
    "load_model": "bnnr_core.modelio",
    "LoadedModel": "bnnr_core.modelio",
    "load_digits": "bnnr_core.datasets.digits",
    "resolve_image_folder": "bnnr_core.datasets.imagefolder",
    "run_inference": "bnnr_core.inference",
    "Predictions": "bnnr_core.inference",
    # analysis
    "analyze": "bnnr_core.analysis.api",
    "AnalysisResult": "bnnr_core.analysis.engine",
    "AnalyzeOptions": "bnnr_core.analysis.engine",
    "Evaluation": "bnnr_core.analysis.evaluation",
    # JSON artifacts
    "write_json": "bnnr_core.jsonio",
    "read_json": "bnnr_core.jsonio",
}

__all__ = ["__version__", "hookimpl", *sorted(_EXPORTS)]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
