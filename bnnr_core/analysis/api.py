"""``bnnr.analyze``: the analysis from Python, for a model file or a model in memory."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bnnr_core.analysis.data import EvalData, input_spec, load_eval_data
from bnnr_core.analysis.engine import AnalysisResult, AnalyzeOptions
from bnnr_core.analysis.engine import analyze as run_engine

if TYPE_CHECKING:
    from torch import nn

    from bnnr_core.analysis.output import Staging
    from bnnr_core.plugins import PluginHost


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
    image_size: tuple[int, int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **options: Any,
) -> AnalysisResult:
    """Analyze a model on evaluation data; write the report to ``output`` when given.

    :param model: a model file (any format ``bnnr analyze --model`` takes) or an ``nn.Module``.
        A module is used where it is: it is not moved to another device, its train/eval mode is
        restored afterwards and no parameter or buffer changes (inference runs under
        ``torch.inference_mode``). Give ``image_size``, ``mean`` and ``std`` for it, as for a
        file without metadata.
    :param data: what ``--data`` takes (a folder or a data set name), or an :class:`EvalData`.
    :param output: folder to write ``analysis_report.json`` (and other exporters' files) into,
        with the same rules as ``--output``.
    :param options: fields of :class:`~bnnr_core.analysis.engine.AnalyzeOptions` (``task``,
        ``seed``, ``cv_folds``, ``n_bootstrap``, ``batch_size``, ``workers``, ``xai``,
        ``data_quality``).
    :returns: the report document and the cached :class:`Evaluation`.
    :raises BnnrError: for every input problem the CLI reports (same sentences).
    """
    from bnnr_core.analysis.output import Staging
    from bnnr_core.plugins import load_plugins

    host = host or load_plugins()
    staging = Staging(output) if output is not None else None
    try:
        return _analyze(
            model,
            data,
            staging,
            host=host,
            arch=arch,
            num_classes=num_classes,
            trust_checkpoint=trust_checkpoint,
            device=device,
            data_dir=data_dir,
            image_size=image_size,
            mean=mean,
            std=std,
            options=options,
        )
    finally:
        if staging is not None:
            staging.discard()


def _analyze(
    model: nn.Module | str | os.PathLike[str],
    data: str | os.PathLike[str] | EvalData,
    staging: Staging | None,
    *,
    host: PluginHost,
    arch: str | None,
    num_classes: int | None,
    trust_checkpoint: bool,
    device: str,
    data_dir: str | os.PathLike[str] | None,
    image_size: tuple[int, int] | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    options: dict[str, Any],
) -> AnalysisResult:
    from bnnr_core.modelio.loader import LoadedModel, load_model, module_in_channels

    if isinstance(model, (str, os.PathLike)):
        loaded = load_model(
            model,
            host=host,
            arch=arch,
            num_classes=num_classes,
            trust_checkpoint=trust_checkpoint,
            device=device,
        )
    else:
        loaded = LoadedModel(
            model=model,
            format="module",
            path=None,
            sha256=None,
            num_classes=num_classes,
            in_channels=module_in_channels(model),
        )
    task = options.get("task") or loaded.task or "classification"
    evaluation_data = (
        data
        if isinstance(data, EvalData)
        else load_eval_data(str(data), data_dir=data_dir, multilabel=task == "multilabel")
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
        artifacts_dir=staging.artifacts if staging is not None else None,
    )
    if staging is not None:
        staging.commit(result.report, host=host)
    return result
