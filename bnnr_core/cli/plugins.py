"""``bnnr plugins``: what plugins are installed, what they provide, and whether they loaded."""

from __future__ import annotations

import json

import click

from bnnr_core.cli.context import plugin_host
from bnnr_core.components import COMPONENT_KINDS
from bnnr_core.plugins import STATUS_DISABLED, STATUS_FAILED, STATUS_OK, PluginRecord


@click.group()
def plugins() -> None:
    """Inspect the plugins found through the `bnnr` entry-point group."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list for machines.")
@click.option("--hook", "hook_names", multiple=True, help="Only plugins implementing this hook.")
@click.pass_context
def list_plugins(ctx: click.Context, as_json: bool, hook_names: tuple[str, ...]) -> None:
    """List every plugin: version, status, hooks and the components it provides.

    A plugin that failed to load is listed with its error; the other plugins still work.
    """
    host = plugin_host(ctx)
    records = sorted(host.records, key=lambda r: (not r.builtin, r.name))
    if hook_names:
        records = [r for r in records if set(hook_names) & set(r.hooks)]
    if as_json:
        click.echo(json.dumps([r.to_json() for r in records], indent=2, sort_keys=True))
        return
    click.echo(_table(records))
    if ctx.find_root().params.get("debug"):
        for name, tail in host.tracebacks.items():
            click.echo(f"\nTraceback of plugin {name!r}:\n{tail}", err=True)


#: Names shown per component kind in the table; ``--json`` always lists all of them.
TABLE_NAMES_PER_KIND = 5


def _provides_text(record: PluginRecord) -> str:
    parts = []
    for kind in COMPONENT_KINDS:
        names = list(record.provides.get(kind, ()))
        if not names:
            continue
        shown = ", ".join(names[:TABLE_NAMES_PER_KIND])
        if len(names) > TABLE_NAMES_PER_KIND:
            shown += f" (+{len(names) - TABLE_NAMES_PER_KIND} more)"
        parts.append(f"{kind}: {shown}")
    return "; ".join(parts) or "-"


def _table(records: list[PluginRecord]) -> str:
    if not records:
        return "No bnnr plugins are installed."
    header = ("NAME", "VERSION", "STATUS", "BUILTIN", "PROVIDES")
    rows = [
        (
            r.name,
            r.version or "?",
            r.status,
            "yes" if r.builtin else "no",
            _provides_text(r),
        )
        for r in records
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row, record in zip([header, *rows], [None, *records], strict=True):
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
        if record is not None:
            if record.error:
                lines.append(f"    error: {record.error}")
            if record.reason and record.status == STATUS_DISABLED:
                lines.append(f"    disabled: {record.reason}")
            lines.extend(f"    warning: {warning}" for warning in record.warnings)
    counts = {
        status: sum(1 for r in records if r.status == status)
        for status in (STATUS_OK, STATUS_FAILED, STATUS_DISABLED)
    }
    summary = ", ".join(f"{count} {status}" for status, count in counts.items())
    lines.append("")
    lines.append(f"{len(records)} plugin{'s' if len(records) != 1 else ''}: {summary}")
    return "\n".join(lines)
