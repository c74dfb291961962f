"""The ``bnnr`` command line.

One module per command; a command's module is imported only when that command runs (or its help
is shown), and heavy libraries (torch, torchvision, captum) are imported inside command bodies, so
``bnnr --help``, ``bnnr version`` and ``bnnr plugins list`` stay fast and never import torch.

Errors a user can cause are reported as one sentence on stderr with a non-zero exit code; a
traceback appears only with ``--debug`` (or ``BNNR_DEBUG=1``).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from bnnr_core._version import __version__
from bnnr_core.errors import BnnrError

#: Exit codes, the same for every command (docs/cli.md).
EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_INPUT_ERROR = 2
EXIT_INTERNAL_ERROR = 3

#: Command name -> "module:attribute"; modules are imported on first use.
COMMANDS: dict[str, str] = {
    "analyze": "bnnr_core.cli.analyze:analyze",
    "demo": "bnnr_core.cli.demo:demo",
    "plugins": "bnnr_core.cli.plugins:plugins",
    "version": "bnnr_core.cli.version:version",
}


def _debug_enabled(ctx: click.Context | None) -> bool:
    if ctx is not None and ctx.find_root().params.get("debug"):
        return True
    return os.environ.get("BNNR_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}


class BnnrGroup(click.Group):
    """A group that imports its commands lazily and turns errors into one-line messages."""

    def __init__(self, *args: Any, lazy_commands: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands:
            module_name, attribute = self.lazy_commands[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attribute)
            if not isinstance(command, click.Command):  # pragma: no cover - a wiring bug
                raise TypeError(f"{self.lazy_commands[cmd_name]} is not a click command")
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except BnnrError as exc:
            if _debug_enabled(ctx):
                raise
            raise InputError(str(exc)) from exc
        except KeyboardInterrupt:
            raise click.Abort() from None
        except Exception as exc:
            if _debug_enabled(ctx):
                raise
            raise InternalError(
                f"unexpected internal error ({type(exc).__name__}: {exc}). "
                "Run again with --debug to see the traceback, and please report it."
            ) from exc


class InputError(click.ClickException):
    """A user-fixable problem with the input or the environment: exit code 2."""

    exit_code = EXIT_INPUT_ERROR


class InternalError(click.ClickException):
    """A bug in BNNR or a plugin: exit code 3."""

    exit_code = EXIT_INTERNAL_ERROR


@click.group(
    cls=BnnrGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "-V", "--version", prog_name="bnnr")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.option(
    "--strict-plugins",
    is_flag=True,
    help="Fail when any plugin fails to load (same as BNNR_STRICT_PLUGINS=1).",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool, strict_plugins: bool) -> None:
    """BNNR: train, explain, improve and prove PyTorch image classifiers.

    Plugins (tasks, augmentations, XAI methods, data-quality checks, failure detectors,
    exporters) come from the `bnnr` entry-point group; `bnnr plugins list` shows them.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["strict_plugins"] = strict_plugins


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="bnnr")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
