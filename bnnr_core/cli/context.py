"""What commands share: the plugin set, loaded once per invocation."""

from __future__ import annotations

import click

from bnnr_core.plugins import PluginHost, load_plugins


def plugin_host(ctx: click.Context) -> PluginHost:
    """The plugin set of this invocation, loaded on first use.

    ``--strict-plugins`` on the root command turns plugin failures into errors (as does
    ``BNNR_STRICT_PLUGINS=1``).
    """
    root = ctx.find_root()
    root.ensure_object(dict)
    host = root.obj.get("plugin_host")
    if host is None:
        strict = True if root.obj.get("strict_plugins") else None
        host = load_plugins(strict=strict)
        root.obj["plugin_host"] = host
    return host
