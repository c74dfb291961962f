"""``bnnr analyze``: diagnose a trained classifier on a folder of images or a known data set."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import click

from bnnr_core.analysis.progress import Progress
from bnnr_core.cli.context import plugin_host
from bnnr_core.errors import BnnrError

if TYPE_CHECKING:
    from bnnr_core.analysis.engine import AnalysisResult
    from bnnr_core.plugins import PluginHost

#: ``--fail-on`` levels and the health statuses that fail each.
FAIL_ON = {"warning": ("warning", "critical"), "critical": ("critical",)}


def _floats(_ctx: click.Context, param: click.Parameter, value: Any) -> tuple[float, ...] | None:
    if value is None or isinstance(value, tuple):
        return value
    try:
        numbers = tuple(float(part) for part in str(value).split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}") from None
    if not numbers:
        raise click.BadParameter("expected at least one number")
    return numbers


def _size(_ctx: click.Context, param: click.Parameter, value: Any) -> tuple[int, int] | None:
    if value is None or isinstance(value, tuple):
        return value
    text = str(value).lower().replace("×", "x")
    try:
        parts = [int(part) for part in text.split("x")]
    except ValueError:
        raise click.BadParameter(f"expected N or HxW, e.g. 224 or 160x224, got {value!r}") from None
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise click.BadParameter(f"expected N or HxW with positive numbers, got {value!r}")
    return (parts[0], parts[-1])


def _folds(_ctx: click.Context, param: click.Parameter, value: int) -> int:
    if value == 1 or value < 0:
        raise click.BadParameter("use 0 (off) or at least 2 folds")
    return value


def analysis_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options shared by ``bnnr analyze`` (and commands that analyze a model)."""
    options = [
        click.option(
            "--task",
            help="Task plugin: classification or multilabel (default: the task recorded in a "
            "BNNR checkpoint, else classification).",
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(min=1),
            default=64,
            show_default=True,
            help="Images per inference batch.",
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="Processes decoding image files (0: decode in this process).",
        ),
        click.option(
            "--device",
            default="auto",
            show_default=True,
            help="auto, cpu, cuda or cuda:N; asking for CUDA without one is an error.",
        ),
        click.option(
            "--seed",
            type=int,
            default=0,
            show_default=True,
            help="Seed of bootstrap intervals and folds; same seed, same report.",
        ),
        click.option(
            "--cv-folds",
            type=int,
            default=0,
            show_default=True,
            callback=_folds,
            help="Split the cached predictions into K stratified folds and report "
            "metric spread (no retraining).",
        ),
        click.option(
            "--bootstrap",
            "n_bootstrap",
            type=click.IntRange(min=1),
            default=1000,
            show_default=True,
            help="Bootstrap resamples for the 95% intervals.",
        ),
        click.option("--no-xai", is_flag=True, help="Skip saliency maps."),
        click.option(
            "--xai-method",
            default="auto",
            show_default=True,
            help="Saliency method (bnnr plugins list shows them); auto picks the cheapest one "
            "that is faithful on this model.",
        ),
        click.option(
            "--xai-layer",
            metavar="MODULE",
            help="Target layer of CAM methods (dotted module name); found automatically.",
        ),
        click.option(
            "--xai-samples",
            type=click.IntRange(min=1),
            default=500,
            show_default=True,
            help="Images explained, stratified by class (errors and confused pairs are added).",
        ),
        click.option(
            "--max-worst",
            type=click.IntRange(min=0),
            default=20,
            show_default=True,
            help="Most confident errors explained and listed.",
        ),
        click.option("--no-data-quality", is_flag=True, help="Skip the data-quality checks."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@click.command()
@click.option(
    "-m",
    "--model",
    "model_path",
    metavar="FILE",
    help="Required. Model file: BNNR checkpoint, TorchScript, .pt2 program or a state dict "
    "(with --arch).",
)
@click.option(
    "-d",
    "--data",
    metavar="FOLDER|NAME",
    help="Required. Image folder (class sub-folders, or train/ and val/ splits), or digits, "
    "mnist, fashion_mnist, cifar10.",
)
@click.option(
    "-o",
    "--output",
    metavar="FOLDER",
    help="Required. Output folder; an earlier analysis there is replaced as a whole.",
)
@click.option(
    "--arch",
    help="Architecture of a state dict: small_cnn, resnet18, ... or package.module:factory.",
)
@click.option(
    "--num-classes",
    type=click.IntRange(min=1),
    help="Classes of a state dict (inferred from the weights when omitted).",
)
@click.option(
    "--labels",
    "label_names",
    metavar="A,B,...",
    help="Multi-label: the label names in the model's output order (else labels.txt next to "
    "the manifest, else the sorted labels found).",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0),
    help="Multi-label: decision threshold on each label's probability (default 0.5).",
)
@click.option(
    "--tune-thresholds",
    is_flag=True,
    help="Multi-label: also tune one threshold per label, reported out-of-sample by "
    "cross-fitting over the evaluation set.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default="data",
    show_default=True,
    help="Where mnist, fashion_mnist and cifar10 files are.",
)
@click.option("--download", is_flag=True, help="Download mnist/fashion_mnist/cifar10 if missing.")
@click.option(
    "--image-size",
    callback=_size,
    metavar="N|HxW",
    help="Input size when the checkpoint does not record it.",
)
@click.option(
    "--mean",
    callback=_floats,
    metavar="M[,M,M]",
    help="Normalisation mean when the checkpoint does not record it.",
)
@click.option(
    "--std",
    callback=_floats,
    metavar="S[,S,S]",
    help="Normalisation std when the checkpoint does not record it.",
)
@analysis_options
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="YAML file of option values (keys as the long option names); flags given on "
    "the command line win.",
)
@click.option(
    "--summary/--no-summary",
    default=True,
    show_default=True,
    help="Print the health summary (else only the paths written).",
)
@click.option(
    "--fail-on",
    type=click.Choice(sorted(FAIL_ON)),
    help="Exit with code 1 when health is at this level or worse (for CI gates).",
)
@click.option(
    "--trust-checkpoint",
    is_flag=True,
    help="Allow unpickling a full nn.Module. Only for files you trust: unpickling "
    "can run arbitrary code.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress output on stderr.")
@click.pass_context
def analyze(ctx: click.Context, **params: Any) -> None:
    """Diagnose a trained classifier: metrics with intervals, calibration, confusion, failure
    patterns, findings, recommendations and a health summary.

    Writes FOLDER/analysis_report.json (and every other installed exporter's files).
    """
    if params.get("config_path"):
        params = _apply_config(ctx, params)
    for key, flag in (("model_path", "--model"), ("data", "--data"), ("output", "--output")):
        if not params.get(key):
            raise click.UsageError(f"Missing option '{flag}' (give it here or in --config).")
    host = plugin_host(ctx)
    result, written = run_analysis(host, params, command_line=sys.argv)
    _print_outcome(result, written, summary=params["summary"])
    _gate(result, params.get("fail_on"))


def run_analysis(
    host: PluginHost, params: dict[str, Any], *, command_line: Sequence[str] = ()
) -> tuple[AnalysisResult, list[Path]]:
    """Run :func:`bnnr_core.analysis.api.analyze` with the command's flags; shared with
    ``bnnr demo``. Returns the result and the files written."""
    from bnnr_core.analysis.api import MULTILABEL_OPTIONS, analyze
    from bnnr_core.datasets.manifest import parse_label_names

    label_names = params.get("label_names")
    result = analyze(
        params["model_path"],
        params["data"],
        output=params["output"],
        host=host,
        arch=params.get("arch"),
        num_classes=params.get("num_classes"),
        trust_checkpoint=params.get("trust_checkpoint", False),
        device=params.get("device", "auto"),
        data_dir=params.get("data_dir"),
        download=params.get("download", False),
        label_names=parse_label_names(label_names) if label_names else None,
        image_size=params.get("image_size"),
        mean=params.get("mean"),
        std=params.get("std"),
        progress=_CliProgress(quiet=params.get("quiet", False)),
        command_line=command_line,
        task=params.get("task"),
        task_options={
            key: params[key] for key in MULTILABEL_OPTIONS if params.get(key) not in (None, False)
        },
        seed=params.get("seed", 0),
        cv_folds=params.get("cv_folds", 0),
        n_bootstrap=params.get("n_bootstrap", 1000),
        batch_size=params.get("batch_size", 64),
        workers=params.get("workers", 0),
        xai=not params.get("no_xai", False),
        xai_method=params.get("xai_method", "auto"),
        xai_layer=params.get("xai_layer"),
        xai_samples=params.get("xai_samples", 500),
        max_worst=params.get("max_worst", 20),
        data_quality=not params.get("no_data_quality", False),
        data_quality_config=params.get("data_quality_config") or {},
    )
    return result, list(result.files)


def _apply_config(ctx: click.Context, params: dict[str, Any]) -> dict[str, Any]:
    """Values from ``--config`` for every option not given on the command line."""
    import yaml

    path = Path(params["config_path"])
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BnnrError(f"cannot read --config {path}: {problem}") from exc
    if document is None:
        return params
    if not isinstance(document, dict):
        raise BnnrError(f"--config {path} must hold a mapping of option names to values")
    by_name = {
        param.name: param
        for param in ctx.command.params
        if isinstance(param, click.Option) and param.name not in {"config_path"}
    }
    aliases = {"model": "model_path", "bootstrap": "n_bootstrap"}
    merged = dict(params)
    for raw_key, value in document.items():
        key = aliases.get(str(raw_key).replace("-", "_"), str(raw_key).replace("-", "_"))
        if key == "data_quality":
            if not isinstance(value, dict):
                raise BnnrError(f"--config {path}: data_quality must map check names to thresholds")
            merged["data_quality_config"] = value
            continue
        param = by_name.get(key)
        if param is None:
            known = sorted({next((a for a, n in aliases.items() if n == k), k) for k in by_name})
            raise BnnrError(
                f"--config {path}: unknown option {raw_key!r}; known options: {', '.join(known)}"
            )
        if ctx.get_parameter_source(key) is not click.core.ParameterSource.DEFAULT:
            continue
        try:
            converted = param.type_cast_value(ctx, value)
            if param.callback is not None:
                converted = param.callback(ctx, param, converted)
        except click.BadParameter as exc:
            raise BnnrError(f"--config {path}: {raw_key}: {exc.message}") from exc
        merged[key] = converted
    return merged


class _CliProgress(Progress):
    """Stage lines and an inference progress bar on stderr (nothing with ``--quiet``)."""

    LABELS: ClassVar[dict[str, str]] = {
        "load_model": "loading model",
        "load_data": "reading data",
        "check": "checking model against data",
        "inference": "running inference",
        "task_sections": "computing metrics and intervals",
        "failure_detectors": "detecting failure patterns",
        "xai": "explaining predictions with saliency maps",
        "data_quality": "checking data quality",
        "findings": "writing findings and summary",
        "write": "writing report",
    }

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self._bar: Any = None

    def stage(self, name: str) -> None:
        if not self.quiet and name not in {"inference", "data_quality"}:
            click.echo(f"[analyze] {self.LABELS.get(name, name)}...", err=True)

    def batches(self, total: int, label: str = "running inference") -> Callable[[int], None]:
        if self.quiet:
            return lambda _n: None
        self._bar = click.progressbar(
            length=total, label=f"[analyze] {label}", file=sys.stderr, width=30
        )
        self._bar.__enter__()
        return self._bar.update

    def done(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


#: Headline metrics of the stdout summary, per task.
SUMMARY_METRICS = {
    "classification": ("accuracy", "balanced_accuracy", "f1_macro", "ece"),
    "multilabel": ("f1_macro", "f1_samples", "subset_accuracy", "hamming_loss", "ece"),
}


def _percent(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, (int, float)) else "n/a"


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The human summary of a report: health, headline metrics with intervals, findings,
    actions."""
    summary = report.get("executive_summary", {})
    metrics = report.get("metrics", {})
    intervals = report.get("metrics_ci", {}).get("intervals", {})
    rule = "=" * 64
    lines = [rule, "  BNNR ANALYZE SUMMARY", rule]
    lines.append(
        f"  Health            : {str(summary.get('health_status', '?')).upper()} "
        f"(score {summary.get('health_score', 0):.2f})"
    )
    unchecked = summary.get("unchecked_sections") or []
    if unchecked:
        lines.append(f"  Not checked       : {', '.join(unchecked)} (see analysis_scope)")
    task = report.get("analysis_scope", {}).get("task")
    for name in SUMMARY_METRICS.get(task, SUMMARY_METRICS["classification"]):
        if name not in metrics:
            continue
        interval = intervals.get(name)
        spread = (
            f"  [95% CI {_percent(interval['low'])} - {_percent(interval['high'])}]"
            if interval
            else ""
        )
        lines.append(f"  {name:<18}: {_percent(metrics[name])}{spread}")
    findings = summary.get("key_findings") or []
    lines.append("-" * 64)
    lines.append("  Key findings:")
    lines.extend(f"    - {text}" for text in findings)
    actions = summary.get("top_actions") or []
    if actions:
        lines.append("  Top actions:")
        lines.extend(f"    - {text}" for text in actions)
    return lines


def _print_outcome(result: AnalysisResult, written: list[Path], *, summary: bool) -> None:
    if summary:
        for line in summary_lines(result.report):
            click.echo(line)
        click.echo("-" * 64)
    output = written[0].parent if written else None
    click.echo(f"Analysis saved to {output}")
    for path in written:
        click.echo(f"  {path}")


def _gate(result: AnalysisResult, fail_on: str | None) -> None:
    from bnnr_core.cli import EXIT_GATE_FAILED

    if fail_on is None:
        return
    status = result.report["executive_summary"].get("health_status")
    if status in FAIL_ON[fail_on]:
        click.echo(f"Health is {status}: the --fail-on {fail_on} gate failed.", err=True)
        raise click.exceptions.Exit(EXIT_GATE_FAILED)
