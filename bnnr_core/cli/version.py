"""``bnnr version``: versions of BNNR, its libraries and its plugins, read without importing."""

from __future__ import annotations

import json
import platform
from importlib import metadata

import click

from bnnr_core._version import __version__
from bnnr_core.cli.context import plugin_host

#: Libraries whose installed version is reported; read from package metadata, never imported.
LIBRARIES = ("torch", "torchvision", "captum", "pluggy", "attrs", "cattrs", "click", "numpy")


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or ``None`` when it is not installed."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object for machines.")
@click.pass_context
def version(ctx: click.Context, as_json: bool) -> None:
    """Print versions of BNNR, Python, key libraries and plugins."""
    host = plugin_host(ctx)
    libraries = {name: installed_version(name) for name in LIBRARIES}
    plugins = {r.name: {"version": r.version, "status": r.status} for r in host.records}
    if as_json:
        document = {
            "bnnr": __version__,
            "python": platform.python_version(),
            "libraries": libraries,
            "plugins": plugins,
        }
        click.echo(json.dumps(document, indent=2, sort_keys=True))
        return
    click.echo(f"bnnr {__version__}")
    click.echo(f"python {platform.python_version()}")
    for name, found in libraries.items():
        click.echo(f"{name} {found or 'not installed'}")
    listed = ", ".join(
        f"{name}-{info['version'] or '?'}"
        + ("" if info["status"] == "ok" else f" ({info['status']})")
        for name, info in sorted(plugins.items())
    )
    click.echo(f"plugins: {listed or 'none'}")
