"""``bnnr demo``: train a small CNN on the bundled digits, save it, analyze it. Offline."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bnnr_core.cli.context import plugin_host


@click.command()
@click.option(
    "-o",
    "--output",
    default="demo_output",
    show_default=True,
    metavar="FOLDER",
    help="Folder for the checkpoint and the analysis.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Training and analysis seed.")
@click.option("-q", "--quiet", is_flag=True, help="No progress output on stderr.")
@click.pass_context
def demo(ctx: click.Context, output: str, seed: int, quiet: bool) -> None:
    """Train the built-in small CNN on the bundled digits (seconds), save it as a BNNR
    checkpoint, and analyze it on the held-out split; then the same for the multi-label demo
    (tiles of two or three digits, read through a CSV manifest). Fully offline.

    Writes FOLDER/digits_small_cnn.pt, FOLDER/analysis/, FOLDER/multidigits_small_cnn.pt,
    FOLDER/multidigits/ (images and labels.csv) and FOLDER/multilabel_analysis/.
    """
    from bnnr_core.analysis.output import check_output_dir
    from bnnr_core.cli.analyze import _print_outcome, run_analysis
    from bnnr_core.datasets.multidigits import write_multidigits_manifest
    from bnnr_core.demo import save_digits_checkpoint, save_multidigits_checkpoint

    host = plugin_host(ctx)
    folder = Path(output)
    analysis_dir = check_output_dir(folder / "analysis")
    multilabel_dir = check_output_dir(folder / "multilabel_analysis")
    if not quiet:
        click.echo("[demo] training small_cnn on the digits training split...", err=True)
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = save_digits_checkpoint(host, folder / "digits_small_cnn.pt", seed=seed)
    click.echo(f"Checkpoint saved to {checkpoint}")
    params = {
        "model_path": str(checkpoint),
        "data": "digits",
        "output": str(analysis_dir),
        "seed": seed,
        "quiet": quiet,
        "device": "cpu",
    }
    result, written = run_analysis(host, params, command_line=sys.argv)
    _print_outcome(result, written, summary=True)

    if not quiet:
        click.echo("[demo] training small_cnn on the multi-label digit tiles...", err=True)
    checkpoint = save_multidigits_checkpoint(host, folder / "multidigits_small_cnn.pt", seed=seed)
    manifest = write_multidigits_manifest(folder / "multidigits", split="eval")
    click.echo(f"\nMulti-label checkpoint saved to {checkpoint}; data: {manifest}")
    params = {
        **params,
        "model_path": str(checkpoint),
        "data": str(manifest),
        "output": str(multilabel_dir),
    }
    result, written = run_analysis(host, params, command_line=sys.argv)
    _print_outcome(result, written, summary=True)
