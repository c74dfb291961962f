"""``bnnr.analyze``: the analysis from Python, for a model file or a model in memory.

This is the one place that turns "a model and some data" into an analysis: ``bnnr analyze`` and
``bnnr demo`` call it with their flags, so the command line and Python share every check and
every error sentence.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from bnnr_core.analysis.data import EvalData, input_spec, load_eval_data
from bnnr_core.analysis.engine import AnalysisResult, AnalyzeOptions
from bnnr_core.analysis.engine import analyze as run_engine
from bnnr_core.analysis.progress import Progress
from bnnr_core.errors import BnnrError

if TYPE_CHECKING:
    from torch import nn

    from bnnr_core.modelio.loader import LoadedModel
    from bnnr_core.plugins import PluginHost

#: Task options that only the multi-label task takes, and the flag that sets each.
MULTILABEL_OPTIONS = {"threshold": "--threshold", "tune_thresholds": "--tune-thresholds"}


def analyze(
    model: nn.Module | str | os.PathLike[str],
    data: str | os.PathLike[str] | EvalData,
    *,
    output: str | os.PathLike[str] | None = None,
    host: PluginHost | None = None,
    arch: str | None = None,
    num_classes: int | None = None,
    trust_checkpoint: bool = False,
    device: str = "auto",
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    label_names: Sequence[str] | None = None,
    image_size: tuple[int, int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    progress: Progress | None = None,
    command_line: Sequence[str] = (),
    **options: Any,
) -> AnalysisResult:
    """Analyze a model on evaluation data; write the report to ``output`` when given.

    :param model: a model file (any format ``bnnr analyze --model`` takes) or an ``nn.Module``.
        A module is used where it is: it is not moved to another device, its train/eval mode is
        restored afterwards and no parameter or buffer changes (inference runs under
        ``torch.inference_mode``). Give ``image_size``, ``mean`` and ``std`` for it, as for a
        file without metadata.
    :param data: what ``--data`` takes (a folder, a data set name, a multi-label manifest), or
        an :class:`EvalData`.
    :param output: folder to write ``analysis_report.json`` (and other exporters' files) into,
        with the same rules as ``--output``.
    :param label_names: multi-label: the label names in the model's output order.
    :param progress: receives stage and batch progress (the CLI prints it).
    :param command_line: recorded in ``provenance``.
    :param options: fields of :class:`~bnnr_core.analysis.engine.AnalyzeOptions` (``task``,
        ``task_options``, ``seed``, ``cv_folds``, ``n_bootstrap``, ``batch_size``,
        ``workers``, ``xai``, ``xai_method``, ``data_quality``, ...). ``task`` defaults to the
        task recorded in a BNNR checkpoint, else ``classification``.
    :returns: the report document, the cached :class:`Evaluation` and the files written.
    :raises BnnrError: for every input problem the CLI reports (same sentences).
    """
    from bnnr_core.analysis.output import Staging
    from bnnr_core.plugins import load_plugins

    host = host or load_plugins()
    progress = progress or Progress()
    staging = Staging(output) if output is not None else None
    try:
        progress.stage("load_model")
        loaded = _load(model, host, arch, num_classes, trust_checkpoint, device)
        progress.stage("load_data")
        task = _resolve_task(options, loaded, label_names)
        evaluation_data = (
            data
            if isinstance(data, EvalData)
            else load_eval_data(
                str(data),
                data_dir=data_dir,
                download=download,
                multilabel=task == "multilabel",
                label_names=label_names,
            )
        )
        spec = input_spec(
            evaluation_data,
            model_channels=loaded.in_channels,
            model_input_size=loaded.input_size,
            model_mean=loaded.mean,
            model_std=loaded.std,
            image_size=image_size,
            mean=mean,
            std=std,
        )
        result = run_engine(
            loaded,
            evaluation_data,
            spec,
            host=host,
            options=AnalyzeOptions(**{**options, "task": task}),
            progress=progress,
            command_line=list(command_line),
            artifacts_dir=staging.artifacts if staging is not None else None,
        )
        if staging is None:
            return result
        progress.stage("write")
        return attrs.evolve(result, files=tuple(staging.commit(result.report, host=host)))
    finally:
        if staging is not None:
            staging.discard()


def _load(
    model: nn.Module | str | os.PathLike[str],
    host: PluginHost,
    arch: str | None,
    num_classes: int | None,
    trust_checkpoint: bool,
    device: str,
) -> LoadedModel:
    """A model file loaded safely, or an in-memory module wrapped as it is."""
    from bnnr_core.modelio.loader import LoadedModel, load_model, module_in_channels

    if isinstance(model, (str, os.PathLike)):
        return load_model(
            model,
            host=host,
            arch=arch,
            num_classes=num_classes,
            trust_checkpoint=trust_checkpoint,
            device=device,
        )
    return LoadedModel(
        model=model,
        format="module",
        path=None,
        sha256=None,
        num_classes=num_classes,
        in_channels=module_in_channels(model),
    )


def _resolve_task(
    options: dict[str, Any], loaded: LoadedModel, label_names: Sequence[str] | None
) -> str:
    """The task to analyze: the one asked for, else the checkpoint's, else classification;
    refuses a task that contradicts the checkpoint and multi-label options on another task."""
    task: str = options.get("task") or loaded.task or "classification"
    if loaded.task and task != loaded.task:
        raise BnnrError(
            f"the checkpoint was saved for --task {loaded.task}, not {task}; drop --task "
            f"or pass --task {loaded.task}"
        )
    if task != "multilabel":
        task_options = options.get("task_options") or {}
        for key, flag in MULTILABEL_OPTIONS.items():
            if task_options.get(key) not in (None, False):
                raise BnnrError(f"{flag} applies to --task multilabel only")
        if label_names:
            raise BnnrError("--labels applies to --task multilabel only")
    return task
