"""Options, result type, report keys and constants of the XAI step."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

#: Report keys this step fills.
SECTION_KEYS: tuple[str, ...] = (
    "xai_insights",
    "xai_diagnoses",
    "xai_quality_summary",
    "xai_quality_per_class",
    "xai_examples_per_class",
    "confusion_pair_xai",
    "best_worst_examples",
)
#: ``"auto"`` tries installed methods in this order (cheapest first), then any other installed
#: method by name.
AUTO_ORDER: tuple[str, ...] = (
    "gradcam",
    "saliency",
    "smoothgrad",
    "integrated_gradients",
    "opticam",
)
#: Method used when the requested one fails on the first batch (e.g. Grad-CAM on a model without
#: convolutional layers).
FALLBACK_METHOD = "saliency"
#: Images of the quality probe ``"auto"`` evaluates each candidate on.
CALIBRATION_IMAGES = 32
#: Confused and correctly classified samples explained per confused pair.
PAIR_SAMPLES = 8
#: Maps a class needs before a pattern is reported for it.
MIN_PATTERN_MAPS = 5
#: Pattern confidence: ``high`` from this many maps, ``medium`` from the second, else ``low``.
CONFIDENCE_MAPS = (30, 10)
#: Threads encoding and writing overlay PNGs.
RENDER_WORKERS = 4
#: Multi-label: wrong labels explained per high-loss image at most, the most wrong first (largest
#: ``|probability - target|``); the rest are counted in the probe's ``wrong_labels_left_out``.
MAX_WRONG_LABELS = 32
#: Multi-label overlays go to this folder under ``artifacts_dir``.
MULTILABEL_FOLDER = "xai_multilabel"
#: ``xai_quality_summary.multilabel_xai_note``: what the multi-label maps explain.
MULTILABEL_NOTE = (
    "Each map explains one label's logit. For the highest-loss images with at least one wrong "
    "label, EVERY wrong label is explained (not only the first mismatch): a false positive "
    "(predicted present, absent) shows the evidence the model used for the wrong label, a false "
    "negative (present, not predicted) shows what evidence for the label the model sees. The "
    "per-label quality comes from a separate label-stratified probe of images where the label is "
    "predicted present, explaining that label. Faithfulness measures the explained label's "
    "sigmoid probability."
)


def _at_least(minimum: int) -> Callable[[Any, Any, int], None]:
    def check(_instance: Any, attribute: Any, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"XaiOptions.{attribute.name} must be an integer >= {minimum}")

    return check


@attrs.frozen(kw_only=True)
class XaiOptions:
    """What the XAI step explains and how (the CLI's ``--xai-*`` flags and ``--max-worst``)."""

    #: ``xai_method`` component name, or ``"auto"``.
    method: str = "auto"
    #: Passed as ``layer=`` to methods that accept it (CAM methods).
    layer: str | None = None
    #: Budget of the class-stratified quality probe.
    samples: int = attrs.field(default=500, validator=_at_least(0))
    #: High-confidence errors explained and listed.
    max_worst: int = attrs.field(default=20, validator=_at_least(0))
    seed: int = 0
    batch_size: int = attrs.field(default=32, validator=_at_least(1))
    #: Most confused class pairs explained.
    pairs: int = attrs.field(default=3, validator=_at_least(0))
    #: Best and worst examples per class.
    per_class_examples: int = attrs.field(default=4, validator=_at_least(0))
    #: Best/worst galleries only for this many classes, those with the most errors.
    max_gallery_classes: int = attrs.field(default=20, validator=_at_least(0))
    #: Steps of the deletion and insertion curves.
    faithfulness_steps: int = attrs.field(default=10, validator=_at_least(2))


@attrs.frozen(kw_only=True)
class XaiResult:
    """What the XAI step adds to the report."""

    #: Exactly the keys of :data:`SECTION_KEYS`.
    sections: dict[str, Any]
    #: Failure patterns, section ``xai``; each passes
    #: :func:`~bnnr_core.analysis.findings.check_pattern`.
    patterns: list[dict[str, Any]]
    #: ``analysis_scope.sections.xai``.
    scope: dict[str, Any]
    #: Files written under ``artifacts_dir``.
    files: list[Path]


def empty_sections() -> dict[str, Any]:
    """The XAI report keys with their not-run values."""
    return {key: [] if key == "confusion_pair_xai" else {} for key in SECTION_KEYS}
