"""The XAI step of ``bnnr analyze``: where the model looks when it is right and when it is wrong,
and whether those maps can be trusted.

:func:`run_xai` works on the cached :class:`~bnnr_core.analysis.evaluation.Evaluation` of a
single-label classifier (for a multi-label one see "Multi-label" below):

1. **Probe set**, chosen on purpose and seeded (:func:`select_probe`): a class-stratified sample
   within the ``samples`` budget (the quality probe), plus the most confident errors, members of
   the most confused pairs and the best/worst galleries. Each image's *predicted* class is
   explained; an error's *true* class too. Every ``(row, class)`` map is computed once and shared
   by every section.
2. **Method**: the named ``xai_method`` component, or with ``"auto"`` the cheapest installed
   method whose maps beat random maps on a small calibration subset (see ``docs/xai.md``).
3. **Maps in batches**: one ``explain`` call per batch, then the statistics and the
   deletion/insertion curves of every map of the batch at once
   (:mod:`bnnr_core.analysis.saliency`).
4. **Sections** in BNNR 0.7's shapes, **patterns** (section ``xai``) and **overlays** under
   ``artifacts_dir``, encoded once per map and written in parallel.

**Multi-label** (targets and predictions ``(N, C)`` multi-hot, sigmoid probabilities): the
probe is the ``max_worst`` highest-loss images with at least one wrong label, every wrong label
of each explained (false positives and false negatives alike, up to :data:`MAX_WRONG_LABELS` per
image), plus a label-stratified quality probe of images where the label is predicted present
(:func:`select_multilabel_probe`). A map explains one label's logit; faithfulness scores that
label's *sigmoid* probability. Confused pairs and best/worst galleries are not defined for
multi-label and stay empty.

The core imports no plugin: methods come from ``host.component("xai_method", name)``.

Modules: :mod:`.options` (options, result, constants), :mod:`.probe` (probe selection),
:mod:`.maps` (computing and measuring maps), :mod:`.methods` (creating and choosing methods),
:mod:`.sections` (shared sections, patterns, overlays), :mod:`.single` and :mod:`.multi`
(single-label and multi-label sections), :mod:`.run` (:func:`run_xai`).
"""

from bnnr_core.analysis.xai.options import (
    AUTO_ORDER,
    CALIBRATION_IMAGES,
    CONFIDENCE_MAPS,
    FALLBACK_METHOD,
    MAX_WRONG_LABELS,
    MIN_PATTERN_MAPS,
    MULTILABEL_FOLDER,
    MULTILABEL_NOTE,
    PAIR_SAMPLES,
    RENDER_WORKERS,
    SECTION_KEYS,
    XaiOptions,
    XaiResult,
    empty_sections,
)
from bnnr_core.analysis.xai.probe import (
    MultilabelProbe,
    PairSelection,
    Probe,
    confusion_counts,
    is_multilabel,
    select_multilabel_probe,
    select_probe,
)
from bnnr_core.analysis.xai.run import run_xai

__all__ = [
    "AUTO_ORDER",
    "CALIBRATION_IMAGES",
    "CONFIDENCE_MAPS",
    "FALLBACK_METHOD",
    "MAX_WRONG_LABELS",
    "MIN_PATTERN_MAPS",
    "MULTILABEL_FOLDER",
    "MULTILABEL_NOTE",
    "PAIR_SAMPLES",
    "RENDER_WORKERS",
    "SECTION_KEYS",
    "MultilabelProbe",
    "PairSelection",
    "Probe",
    "XaiOptions",
    "XaiResult",
    "confusion_counts",
    "empty_sections",
    "is_multilabel",
    "run_xai",
    "select_multilabel_probe",
    "select_probe",
]
