"""The step: :func:`run_xai` orchestrates probe, method, maps, sections and overlays."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bnnr_core.analysis import saliency as sal
from bnnr_core.analysis.xai.maps import _MapStore, _MethodFailed, _model_guard, _Runner
from bnnr_core.analysis.xai.methods import _choose, _create, _describe
from bnnr_core.analysis.xai.multi import _MultilabelContext
from bnnr_core.analysis.xai.options import (
    FALLBACK_METHOD,
    MAX_WRONG_LABELS,
    MIN_PATTERN_MAPS,
    XaiOptions,
    XaiResult,
    empty_sections,
)
from bnnr_core.analysis.xai.probe import (
    MultilabelProbe,
    Probe,
    _calibration_keys,
    _multilabel_calibration_keys,
    is_multilabel,
    select_multilabel_probe,
    select_probe,
)
from bnnr_core.analysis.xai.sections import _Sections
from bnnr_core.analysis.xai.single import _Context
from bnnr_core.errors import BnnrError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from bnnr_core.analysis.data import InputSpec
    from bnnr_core.analysis.evaluation import Evaluation
    from bnnr_core.analysis.progress import Progress
    from bnnr_core.plugins import PluginHost


def run_xai(
    *,
    host: PluginHost,
    model: nn.Module,
    evaluation: Evaluation,
    fetch_images: Callable[[np.ndarray], torch.Tensor],
    spec: InputSpec,
    options: XaiOptions,
    artifacts_dir: Path | None,
    progress: Progress | None = None,
) -> XaiResult:
    """Explain the model's decisions on a probe of the evaluation set and measure the maps.

    Single-label evaluations (targets ``(N,)``) explain classes; multi-label ones (targets,
    predictions and probabilities ``(N, C)``) explain labels, scored with the sigmoid (see the
    module docstring).

    :param fetch_images: dataset positions to model-ready images ``(N, C, H, W)`` on the CPU.
    :param artifacts_dir: ``<output>/artifacts``; overlays go below it and report paths are
        relative to its parent. ``None``: compute everything, write nothing (paths ``""``).
    :raises BnnrError: ``options.method`` names no installed ``xai_method`` (the message lists
        them), or the requested method fails with the ``layer`` the user gave.
    """
    del progress  # the step is short; the engine announces its stage
    available = host.available("xai_method")
    if options.method != "auto" and available:
        host.component("xai_method", options.method)  # UnknownComponentError lists the names
    base_scope: dict[str, Any] = {
        "method": None,
        "method_details": {},
        "method_choice": {},
        "fallback": None,
        "probe": {},
        "errors": [],
        "notes": [],
    }
    if not available:
        return _skipped(base_scope, "no XAI method plugin is installed")
    targets = np.asarray(evaluation.targets)
    multilabel = is_multilabel(evaluation)
    if targets.ndim not in (1, 2):
        return _skipped(
            base_scope,
            "saliency analysis covers single-label and multi-label classification only",
        )
    shape = np.shape(evaluation.probabilities)
    if multilabel and not (targets.shape == shape == np.shape(evaluation.predictions)):
        return _skipped(
            base_scope,
            f"multi-label targets {targets.shape}, predictions "
            f"{np.shape(evaluation.predictions)} and probabilities {shape} differ in shape",
        )

    probe: Probe | None = None
    multilabel_probe: MultilabelProbe | None = None
    if multilabel:
        multilabel_probe = select_multilabel_probe(evaluation, options)
        probe_keys, images = multilabel_probe.keys, int(multilabel_probe.rows.size)
        base_scope["probe"] = {
            **multilabel_probe.counts(),
            "budget": options.samples,
            "seed": options.seed,
            "max_worst": options.max_worst,
            "max_wrong_labels": MAX_WRONG_LABELS,
        }
        calibration = _multilabel_calibration_keys(multilabel_probe, options.seed)
        render = (
            {(int(r), int(c)) for r, c in multilabel_probe.error_keys()}
            if artifacts_dir is not None
            else set()
        )
    else:
        probe = select_probe(evaluation, options)
        probe_keys, images = probe.keys, int(probe.rows.size)
        base_scope["probe"] = {
            **probe.counts(),
            "budget": options.samples,
            "seed": options.seed,
            "max_worst": options.max_worst,
            "pairs": options.pairs,
            "per_class_examples": options.per_class_examples,
            "max_gallery_classes": options.max_gallery_classes,
        }
        calibration = _calibration_keys(evaluation, probe, options.seed)
        render = _render_keys(evaluation, probe) if artifacts_dir is not None else set()
    if not len(probe_keys):
        reason = (
            "no image with finite model outputs has a wrong label or a label predicted present"
            if multilabel
            else "no image with finite model outputs to explain"
        )
        return _skipped(base_scope, reason)

    store = _MapStore(probe_keys, render, options.faithfulness_steps)
    runner = _Runner(
        model=model,
        evaluation=evaluation,
        fetch_images=fetch_images,
        spec=spec,
        options=options,
        score="sigmoid" if multilabel else "softmax",
    )
    errors: list[str] = []
    notes: list[str] = []
    with _model_guard(model):
        if options.method == "auto":
            chosen = _choose(host, runner, calibration, available, options, store)
            base_scope["method_choice"] = chosen.choice
            if chosen.method is None:
                return _skipped(
                    base_scope, "every installed XAI method failed: " + "; ".join(chosen.failures)
                )
            name, method = chosen.name, chosen.method
            if chosen.failures:
                base_scope["fallback"] = f"{'; '.join(chosen.failures)}; {name} was used instead"
            errors += chosen.errors
            notes += chosen.notes
            strict = False
        else:
            name = options.method
            base_scope["method_choice"] = {"mode": "requested", "requested": name}
            try:
                method, note = _create(host, name, options.layer)
            except Exception as exc:
                return _skipped(
                    base_scope, f"{name} could not be created: {type(exc).__name__}: {exc}"
                )
            notes += [note] if note else []
            strict = True
        try:
            errors += runner.run(method, store.pending(), store, strict_first=strict)
        except _MethodFailed as failure:
            if options.layer is not None:
                raise BnnrError(
                    f"XAI method {name!r} failed with --xai-layer {options.layer}: {failure}"
                ) from failure
            errors.append(str(failure))
            if FALLBACK_METHOD not in available or name == FALLBACK_METHOD:
                return _skipped({**base_scope, "errors": errors}, f"{name} failed: {failure}")
            base_scope["fallback"] = (
                f"{name} failed on the first batch ({failure}); {FALLBACK_METHOD} was used instead"
            )
            name = FALLBACK_METHOD
            try:
                method, _ = _create(host, name, None)
                errors += runner.run(method, store.pending(), store, strict_first=True)
            except Exception as second:
                errors.append(str(second))
                return _skipped({**base_scope, "errors": errors}, f"{name} failed too: {second}")
    if not store.done.any():
        return _skipped({**base_scope, "errors": errors}, f"{name} produced no map")

    context: _Sections
    if multilabel_probe is not None:
        context = _MultilabelContext(
            evaluation=evaluation,
            probe=multilabel_probe,
            store=store,
            method=name,
            spec=spec,
            options=options,
            artifacts_dir=artifacts_dir,
        )
        explained = (
            "multi-label: the logit of every wrong label (false positives and false negatives) "
            "of the highest-loss images, and of the predicted-present label on the "
            "label-stratified quality probe"
        )
        notes.append(
            "confusion_pair_xai and best_worst_examples are not defined for multi-label "
            "classification (there is no single predicted class to confuse) and are left empty; "
            "the wrong labels of the highest-loss images are in "
            "xai_examples_per_class.multilabel_high_loss"
        )
    else:
        assert probe is not None
        context = _Context(
            evaluation=evaluation,
            probe=probe,
            store=store,
            method=name,
            spec=spec,
            options=options,
            artifacts_dir=artifacts_dir,
        )
        explained = "the predicted class of every image, and the true class of errors"
    sections, patterns = context.build()
    files = context.write()
    missing = int((~store.done).sum())
    scope = {
        **base_scope,
        "status": "partial" if missing else "ok",
        "reason": (
            f"{name} explained {int(store.done.sum())} of {len(store.keys)} maps of "
            f"{images} images" + (f"; {missing} maps failed (see errors)" if missing else "")
        ),
        "method": name,
        "method_details": _describe(method, name),
        "errors": errors,
        "notes": notes,
        "explain_calls": runner.calls,
        "settings": {
            "explained": explained,
            "faithfulness_score": runner.score,
            "faithfulness_steps": options.faithfulness_steps,
            "faithfulness_replacement": "per-channel mean of the image",
            "faithful_margin": sal.FAITHFUL_MARGIN,
            "faithfulness_scale": sal.FAITHFULNESS_SCALE,
            "low_quality": sal.LOW_QUALITY,
            "border_fraction": sal.BORDER_FRACTION,
            "border_ratio_threshold": sal.BORDER_RATIO_THRESHOLD,
            "min_pattern_maps": MIN_PATTERN_MAPS,
        },
    }
    return XaiResult(sections=sections, patterns=patterns, scope=scope, files=files)


def _skipped(scope: Mapping[str, Any], reason: str) -> XaiResult:
    return XaiResult(
        sections=empty_sections(),
        patterns=[],
        scope={**scope, "status": "skipped", "reason": reason},
        files=[],
    )


def _render_keys(evaluation: Evaluation, probe: Probe) -> set[tuple[int, int]]:
    """The maps that get an overlay (or enter a mean overlay)."""
    targets = np.asarray(evaluation.targets, dtype=np.int64)
    predictions = np.asarray(evaluation.predictions, dtype=np.int64)
    rows = [probe.worst]
    rows += [r for pair in probe.pairs for r in (pair.confused, pair.correct)]
    rows += [r for best, wrong in probe.gallery.values() for r in (best, wrong)]
    keys: set[tuple[int, int]] = set()
    for row in np.unique(np.concatenate(rows)) if rows else []:
        keys.add((int(row), int(predictions[row])))
        if predictions[row] != targets[row]:
            keys.add((int(row), int(targets[row])))
    return keys
