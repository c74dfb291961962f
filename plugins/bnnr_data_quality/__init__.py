"""Built-in data-quality checks: duplicates and leakage, broken or odd images, class balance,
suspected label errors and embedding outliers.

Each check is its own ``data_quality_check`` component, so one can be disabled or replaced
without touching the others. A check reads the
:class:`bnnr_core.analysis.data_quality.DataQualityView` the core builds in one decode pass and
returns issue dictionaries (``docs/data-quality.md``).
The checks live in submodules imported by the factories, so importing this package is cheap
(no numpy, no torch, no PIL).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from bnnr_core import hookimpl
from bnnr_core.components import RegisterFn
from bnnr_core.protocols import DataQualityCheck

#: Component name -> (module, class, description).
CHECKS: dict[str, tuple[str, str, str]] = {
    "duplicates": (
        "bnnr_data_quality.duplicates",
        "DuplicatesCheck",
        "Exact and near-duplicate images within each split and across train/evaluation "
        "(leakage); duplicates with different labels.",
    ),
    "image_properties": (
        "bnnr_data_quality.properties",
        "ImagePropertiesCheck",
        "Unreadable, near-constant, dark, light, blurry, low-information, odd-sized, "
        "odd-shaped and grey images (cleanvision's issue types and thresholds).",
    ),
    "class_balance": (
        "bnnr_data_quality.labels",
        "ClassBalanceCheck",
        "Classes with less than a tenth of the images of the largest class.",
    ),
    "label_errors": (
        "bnnr_data_quality.labels",
        "LabelErrorsCheck",
        "Suspected label errors from the model's probabilities (confident learning).",
    ),
    "outliers": (
        "bnnr_data_quality.outliers",
        "OutliersCheck",
        "Images far from their nearest neighbours in the model's embedding space.",
    ),
}


def _factory(module: str, cls: str) -> Callable[[], DataQualityCheck]:
    """A factory that imports ``module`` and builds ``cls``."""

    def make() -> DataQualityCheck:
        check: DataQualityCheck = getattr(importlib.import_module(module), cls)()
        return check

    return make


@hookimpl
def bnnr_register_data_quality_checks(register: RegisterFn) -> None:
    """Register every built-in data-quality check."""
    for name, (module, cls, description) in CHECKS.items():
        register(name, _factory(module, cls), description=description)
