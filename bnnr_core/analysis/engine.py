"""The analyze engine: sequences the steps of an analysis through plugins.

The engine holds no task-, metric- or method-specific code. It

1. checks that model and data fit (channels, class count, one probe forward) before any work;
2. runs the model ONCE over the evaluation set (:func:`bnnr_core.inference.run_inference`);
3. asks the task plugin for its report sections (metrics, confusion, calibration, ...);
4. runs every failure-detector plugin over the cached :class:`Evaluation`;
5. groups patterns into findings and recommendations and computes the executive summary;
6. assembles the report: every top-level key always present, sections that did not run empty,
   with the reason in ``analysis_scope``.

Writing the report is :func:`bnnr_core.analysis.output.write_report`'s job.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from bnnr_core._version import __version__
from bnnr_core.analysis.data import EvalData, InputSpec
from bnnr_core.analysis.evaluation import Evaluation
from bnnr_core.analysis.progress import Progress
from bnnr_core.clock import utc
from bnnr_core.errors import BnnrError

if TYPE_CHECKING:
    import torch

    from bnnr_core.modelio.loader import LoadedModel
    from bnnr_core.plugins import PluginHost

#: Version of the ``analysis_report.json`` layout (independent of the package version).
ANALYSIS_SCHEMA_VERSION = "1.0.0"

#: Every top-level key of an analysis report and its value when the step did not run.
REPORT_KEYS: dict[str, Callable[[], Any]] = {
    "schema_version": lambda: ANALYSIS_SCHEMA_VERSION,
    "metrics": dict,
    "metrics_ci": dict,
    "per_class_accuracy": dict,
    "confusion": dict,
    "xai_insights": dict,
    "xai_diagnoses": dict,
    "xai_quality_summary": dict,
    "data_quality": dict,
    "failure_patterns": list,
    "recommendations": list,
    "executive_summary": dict,
    "findings": list,
    "recommendations_structured": list,
    "class_diagnostics": list,
    "true_distribution": dict,
    "pred_distribution": dict,
    "distribution_summary": dict,
    "failure_patterns_extended": list,
    "xai_quality_per_class": dict,
    "xai_examples_per_class": dict,
    "data_quality_summary": dict,
    "cv_results": dict,
    "confusion_pair_xai": list,
    "best_worst_examples": dict,
    "analysis_scope": dict,
    "calibration_summary": dict,
    "confident_errors": list,
    # Multi-label: decision thresholds, metrics at tuned thresholds, co-occurrence errors.
    "thresholds": dict,
    "metrics_tuned": dict,
    "cooccurrence_errors": dict,
    "provenance": dict,
}


#: Stage names, in order, as they appear in ``provenance.durations_s`` and progress output.
STAGES = (
    "check",
    "inference",
    "task_sections",
    "failure_detectors",
    "xai",
    "data_quality",
    "findings",
)


@attrs.frozen(kw_only=True)
class AnalyzeOptions:
    """What to compute. The CLI flags map one to one onto these fields."""

    task: str = "classification"
    #: Keyword options of the task's factory (multi-label: ``threshold``, ``tune_thresholds``).
    task_options: Mapping[str, Any] = attrs.field(factory=dict)
    seed: int = 0
    cv_folds: int = 0
    n_bootstrap: int = 1000
    batch_size: int = 64
    workers: int = 0
    xai: bool = True
    #: ``xai_method`` component to use, or ``auto`` (see docs/xai.md).
    xai_method: str = "auto"
    #: Target layer for CAM methods (dotted module name); found automatically when ``None``.
    xai_layer: str | None = None
    #: Probe budget: images explained per class-stratified sample.
    xai_samples: int = 500
    #: High-confidence errors explained (and listed) at most.
    max_worst: int = 20
    data_quality: bool = True
    #: Data-quality thresholds per check: ``{check: {threshold: value}}``.
    data_quality_config: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True, eq=False)
class AnalysisResult:
    """The report document, the cached evaluation it was computed from, and the files the
    exporters wrote (empty when nothing was written)."""

    report: dict[str, Any]
    evaluation: Evaluation
    files: tuple[Path, ...] = ()


def analyze(
    loaded: LoadedModel,
    data: EvalData,
    spec: InputSpec,
    *,
    host: PluginHost,
    options: AnalyzeOptions | None = None,
    progress: Progress | None = None,
    command_line: Sequence[str] = (),
    artifacts_dir: Path | None = None,
) -> AnalysisResult:
    """Analyze ``loaded.model`` on ``data`` and return the report document.

    Steps that write files (saliency overlays, thumbnails) write them under ``artifacts_dir``
    (the ``artifacts/`` folder of the output being staged); report paths are relative to its
    parent. Without it nothing is written.

    :raises BnnrError: model and data do not fit, the task is unknown, or the model produced no
        finite output at all.
    """
    options = options or AnalyzeOptions()
    progress = progress or Progress()
    timer = _Timer()
    started = utc().isoformat(timespec="seconds")
    scope: dict[str, Any] = {
        "task": options.task,
        "extended_analysis": True,
        "sections": {},
        "notes": [],
    }

    with timer("check"):
        progress.stage("check")
        task = _task(host, options.task, options.task_options)
        if options.data_quality and host.available("data_quality_check"):
            from bnnr_core.analysis.data_quality import validate_config

            validate_config(host, options.data_quality_config)  # a bad threshold fails now
        class_names, label_map = _class_mapping(loaded, data)
        _probe_forward(loaded.model, data, spec, len(class_names))

    with timer("inference"):
        progress.stage("inference")
        predictions, indices = _infer(
            loaded.model, data, spec, task, class_names, label_map, options, progress
        )
    scope["notes"].extend(data.notes)
    if data.skipped:
        scope["notes"].append(
            f"{len(data.skipped)} of {data.num_samples} images could not be decoded and were "
            "skipped; they are listed under provenance.data.skipped"
        )
    finite = np.isfinite(predictions.probabilities).all(axis=1)
    if not finite.any():
        raise BnnrError(
            f"the model produced non-finite outputs (NaN or infinity) for all {finite.size} "
            "images; check the checkpoint and the input normalisation (--mean/--std)"
        )
    if not finite.all():
        scope["notes"].append(
            f"the model produced non-finite outputs for {int((~finite).sum())} images; they are "
            "left out of every metric and counted in metrics.nonfinite_rows"
        )

    with timer("task_sections"):
        progress.stage("task_sections")
        sample_ids = tuple(data.sample_ids[int(i)] for i in indices)
        sections = task.report_sections(
            probabilities=predictions.probabilities,
            targets=predictions.targets,
            per_sample_loss=predictions.per_sample_loss,
            class_names=class_names,
            sample_ids=sample_ids,
            seed=options.seed,
            cv_folds=options.cv_folds,
            n_bootstrap=options.n_bootstrap,
        )
    evaluation = Evaluation(
        task=options.task,
        class_names=class_names,
        probabilities=predictions.probabilities,
        targets=predictions.targets,
        predictions=task.decode(predictions.probabilities),
        per_sample_loss=predictions.per_sample_loss,
        embeddings=predictions.embeddings,
        dataset_indices=indices,
        sample_ids=sample_ids,
        sections=sections,
    )
    scope["sections"]["metrics"] = {"status": "ok", "reason": ""}
    scope["sections"]["cv_results"] = (
        {"status": "ok", "reason": f"{options.cv_folds} folds over the cached predictions"}
        if options.cv_folds
        else {"status": "disabled", "reason": "--cv-folds was not given"}
    )

    with timer("failure_detectors"):
        progress.stage("failure_detectors")
        patterns, ran_detectors = _run_detectors(host, evaluation, scope)
    sections_run = {"predictions": ran_detectors}

    extra: dict[str, Any] = {}
    with timer("xai"):
        if _step_enabled(host, "xai", "xai_method", options.xai, "--no-xai", "XAI method", scope):
            progress.stage("xai")
            from bnnr_core.analysis.xai import XaiOptions, run_xai

            xai = run_xai(
                host=host,
                model=loaded.model,
                evaluation=evaluation,
                fetch_images=lambda positions: data.images(positions, spec),
                spec=spec,
                options=XaiOptions(
                    method=options.xai_method,
                    layer=options.xai_layer,
                    samples=options.xai_samples,
                    max_worst=options.max_worst,
                    seed=options.seed,
                    batch_size=min(options.batch_size, 32),
                ),
                artifacts_dir=artifacts_dir,
                progress=progress,
            )
            extra.update(xai.sections)
            patterns.extend(xai.patterns)  # built by BNNR, already in the pattern schema
            scope["sections"]["xai"] = xai.scope
    sections_run["xai"] = _ran(scope, "xai")

    with timer("data_quality"):
        if _step_enabled(
            host,
            "data_quality",
            "data_quality_check",
            options.data_quality,
            "--no-data-quality",
            "data-quality check",
            scope,
        ):
            progress.stage("data_quality")
            from bnnr_core.analysis.data_quality import DataQualityOptions, run_data_quality

            quality = run_data_quality(
                host=host,
                data=data,
                evaluation=evaluation,
                options=DataQualityOptions(
                    config=options.data_quality_config,
                    workers=options.workers,
                    seed=options.seed,
                ),
                artifacts_dir=artifacts_dir,
                progress=progress,
            )
            extra.update(quality.sections)
            patterns.extend(quality.patterns)  # checked by the step, check by check
            scope["sections"]["data_quality"] = quality.scope
    sections_run["data_quality"] = _ran(scope, "data_quality")

    with timer("findings"):
        progress.stage("findings")
        report = _assemble(
            evaluation,
            {**sections, **extra},
            patterns,
            sections_run,
            getattr(task, "headline_metric", "accuracy"),
        )
    report["analysis_scope"] = scope
    report["provenance"] = _provenance(
        loaded, data, spec, options, host, timer, started, command_line, len(predictions.targets)
    )
    return AnalysisResult(report=report, evaluation=evaluation)


# -------------------------------------------------------------------------------------------
# Steps
# -------------------------------------------------------------------------------------------


def _task(host: PluginHost, name: str, task_options: Mapping[str, Any]) -> Any:
    component = host.component("task", name)
    try:
        task = component.create(**task_options)
    except (TypeError, ValueError) as exc:
        shown = ", ".join(f"{key}={value!r}" for key, value in task_options.items())
        raise BnnrError(f"the {name!r} task does not accept {shown} ({exc})") from exc
    if not callable(getattr(task, "report_sections", None)):
        raise BnnrError(f"the {name!r} task plugin cannot produce an analysis report")
    return task


def _class_mapping(
    loaded: LoadedModel, data: EvalData
) -> tuple[tuple[str, ...], np.ndarray | None]:
    """The class names of the report and, when the data's class order differs from the
    model's, the map from data label to model output index."""
    outputs = loaded.num_classes
    names = loaded.class_names
    if names is not None and tuple(names) != data.class_names:
        index = {name: position for position, name in enumerate(names)}
        unknown = [name for name in data.class_names if name not in index]
        if unknown:
            shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise BnnrError(
                f"the data has classes the model does not know ({shown}); the model's classes "
                f"are: {', '.join(names[:10])}{' ...' if len(names) > 10 else ''}"
            )
        return tuple(names), np.array([index[name] for name in data.class_names], dtype=np.int64)
    if names is None and outputs is not None and outputs != len(data.class_names):
        raise BnnrError(
            f"the model has {outputs} outputs but {data.location} has {len(data.class_names)} "
            "classes; analyze it on data with the classes it was trained on"
        )
    return data.class_names, None


def _probe_forward(model: torch.nn.Module, data: EvalData, spec: InputSpec, classes: int) -> None:
    """One forward pass on one image: a clear error now instead of a crash mid-run."""
    import torch

    from bnnr_core.inference import evaluation_mode, model_device

    device = model_device(model)
    images = torch.zeros((1, spec.channels, *spec.size), device=device)
    try:
        with torch.inference_mode(), evaluation_mode(model):
            output = model(images)
    except Exception as exc:
        # The last line of an error carries its reason (TorchScript prepends a traceback).
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        text = (lines[-1] if lines else "")[:300]
        raise BnnrError(
            f"the model cannot take {spec.channels}x{spec.size[0]}x{spec.size[1]} images "
            f"({type(exc).__name__}: {text}); pass the size it was trained on with --image-size"
        ) from exc
    if not isinstance(output, torch.Tensor) or output.ndim != 2:
        shape = getattr(output, "shape", type(output).__name__)
        raise BnnrError(
            f"the model must return a (batch, classes) tensor of logits, but it returned {shape}"
        )
    if output.shape[1] != classes:
        raise BnnrError(
            f"the model has {output.shape[1]} outputs but the report needs {classes} classes; "
            "analyze it on data with the classes it was trained on"
        )


def _infer(
    model: torch.nn.Module,
    data: EvalData,
    spec: InputSpec,
    task: Any,
    class_names: Sequence[str],
    label_map: np.ndarray | None,
    options: AnalyzeOptions,
    progress: Progress,
) -> tuple[Any, np.ndarray]:
    import torch

    from bnnr_core.inference import run_inference

    indices: list[torch.Tensor] = []
    total = -(-data.num_samples // options.batch_size)
    advance = progress.batches(total)
    mapping = None if label_map is None else torch.from_numpy(label_map)
    num_outputs = len(class_names)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels, positions in data.batches(
            spec, batch_size=options.batch_size, workers=options.workers
        ):
            indices.append(positions)
            advance(1)
            yield images, labels if mapping is None else _remap(labels, mapping, num_outputs)

    try:
        predictions = run_inference(model, batches(), task)
    except ValueError as exc:  # no batch at all: every image was unreadable
        raise BnnrError(
            f"none of the {data.num_samples} images in {data.location} could be decoded"
        ) from exc
    finally:
        progress.done()
    return predictions, torch.cat(indices).numpy()


def _remap(labels: torch.Tensor, mapping: torch.Tensor, num_outputs: int) -> torch.Tensor:
    """Data labels in the model's class order: class indices through ``mapping``, or multi-hot
    columns moved to the model's columns (classes the data lacks stay 0)."""
    import torch

    if labels.ndim == 1:
        return mapping[labels]
    moved = torch.zeros((labels.shape[0], num_outputs), dtype=labels.dtype)
    moved[:, mapping] = labels
    return moved


def _run_detectors(
    host: PluginHost, evaluation: Evaluation, scope: dict[str, Any]
) -> tuple[list[dict[str, Any]], bool]:
    """Every failure detector over the evaluation. A detector that raises or returns a
    malformed pattern is reported in ``analysis_scope`` and skipped; the run goes on."""
    from bnnr_core.analysis.findings import check_pattern

    names = host.available("failure_detector")
    if not names:
        scope["sections"]["failure_patterns"] = {
            "status": "skipped",
            "reason": "no failure-detector plugin is installed",
        }
        return [], False
    patterns: list[dict[str, Any]] = []
    errors: list[str] = []
    for name in names:
        component = host.component("failure_detector", name)
        try:
            found = list(component.create().detect(evaluation))
        except Exception as exc:  # a plugin bug must not cost the user the whole analysis
            errors.append(
                f"detector {name!r} ({component.plugin}) failed: {type(exc).__name__}: {exc}"
            )
            continue
        for raw in found:
            try:
                pattern = check_pattern(raw)
            except ValueError as exc:
                errors.append(
                    f"detector {name!r} ({component.plugin}) returned a bad pattern: {exc}"
                )
                continue
            pattern["detector"] = name
            pattern["plugin"] = component.plugin
            patterns.append(pattern)
    scope["sections"]["failure_patterns"] = {
        "status": "ok" if not errors else "partial",
        "reason": f"{len(names)} detectors ran",
        "detectors": list(names),
        "errors": errors,
    }
    return patterns, True


def _step_enabled(
    host: PluginHost,
    section: str,
    kind: str,
    enabled: bool,
    flag: str,
    noun: str,
    scope: dict[str, Any],
) -> bool:
    """Whether an optional step (XAI, data quality) runs; if not, record why."""
    if not enabled:
        scope["sections"][section] = {"status": "disabled", "reason": f"turned off with {flag}"}
        return False
    if not host.available(kind):
        scope["sections"][section] = {
            "status": "skipped",
            "reason": f"no {noun} plugin is installed",
        }
        return False
    return True


def _ran(scope: Mapping[str, Any], section: str) -> bool:
    return scope["sections"].get(section, {}).get("status") in ("ok", "partial")


def _assemble(
    evaluation: Evaluation,
    sections: Mapping[str, Any],
    patterns: list[dict[str, Any]],
    sections_run: Mapping[str, bool],
    headline_metric: str,
) -> dict[str, Any]:
    from bnnr_core.analysis.findings import build_findings, build_recommendations
    from bnnr_core.analysis.summary import executive_summary

    report = {key: make() for key, make in REPORT_KEYS.items()}
    for key, value in sections.items():
        if key in REPORT_KEYS:
            report[key] = value
    grouped = build_findings(patterns, class_names=evaluation.class_names)
    structured, legacy = build_recommendations(grouped.findings, patterns)
    report["failure_patterns"] = grouped.failure_patterns
    report["failure_patterns_extended"] = grouped.failure_patterns_extended
    report["findings"] = grouped.findings
    report["recommendations_structured"] = structured
    report["recommendations"] = legacy
    report["executive_summary"] = executive_summary(
        metrics=report["metrics"],
        headline_metric=headline_metric,
        findings=grouped.findings,
        recommendations=structured,
        class_diagnostics=report["class_diagnostics"],
        sections_run=sections_run,
    )
    return report


# -------------------------------------------------------------------------------------------
# Provenance
# -------------------------------------------------------------------------------------------


class _Timer:
    def __init__(self) -> None:
        self.durations: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.durations[stage] = round(time.perf_counter() - start, 4)


def _provenance(
    loaded: LoadedModel,
    data: EvalData,
    spec: InputSpec,
    options: AnalyzeOptions,
    host: PluginHost,
    timer: _Timer,
    started: str,
    command_line: Sequence[str],
    evaluated: int,
) -> dict[str, Any]:
    from importlib import metadata

    from bnnr_core.inference import model_device

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "tool": "bnnr",
        "version": __version__,
        "started_at": started,
        "finished_at": utc().isoformat(timespec="seconds"),
        "command_line": list(command_line),
        "python": platform.python_version(),
        "platform": sys.platform,
        "libraries": {name: version(name) for name in ("torch", "torchvision", "numpy")},
        "plugins": {
            record.name: record.version for record in host.records if record.status == "ok"
        },
        "model": {
            "path": None if loaded.path is None else str(loaded.path),
            "sha256": loaded.sha256,
            "format": loaded.format,
            "arch": loaded.arch,
            "num_classes": loaded.num_classes,
            "notes": list(loaded.notes),
        },
        "data": {
            "source": data.source,
            "location": data.location,
            "split": data.split,
            "num_samples": data.num_samples,
            "evaluated_samples": evaluated,
            "train_samples": data.train_samples,
            "ignored_folders": list(data.ignored_folders),
            "skipped": [
                {"index": item.index, "path": str(item.path), "reason": item.reason}
                for item in data.skipped
            ],
        },
        "input": {
            "channels": spec.channels,
            "size": list(spec.size),
            "mean": None if spec.mean is None else list(spec.mean),
            "std": None if spec.std is None else list(spec.std),
            "source": dict(spec.source),
        },
        "device": str(model_device(loaded.model)),
        "seed": options.seed,
        "options": attrs.asdict(options),
        "durations_s": dict(timer.durations),
    }
