"""Writing an analysis into its output folder without ever leaving it half-written.

Exporters write into a staging folder next to the output (same file system). Only when every
exporter has succeeded is the staging folder renamed into place; a previous analysis in that
folder is replaced as a whole (so no stale overlay from an earlier run survives), and a folder
holding anything else is never touched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bnnr_core.errors import BnnrError

if TYPE_CHECKING:
    from bnnr_core.plugins import PluginHost

#: The file that marks a folder as BNNR analyze output (safe to replace).
REPORT_FILE = "analysis_report.json"


def check_output_dir(path: str | os.PathLike[str]) -> Path:
    """Validate ``--output`` before any work: a folder BNNR may create or replace.

    :raises BnnrError: the path is a file, a folder holding files that are not an earlier
        analysis, or a place where nothing can be written.
    """
    output = Path(path).expanduser()
    if output.exists() and not output.is_dir():
        raise BnnrError(f"--output {output} is a file; pass a folder path")
    if output.is_dir() and any(output.iterdir()) and not (output / REPORT_FILE).is_file():
        raise BnnrError(
            f"--output {output} already holds files that are not a BNNR analysis; choose an "
            "empty or new folder (BNNR replaces only its own earlier output)"
        )
    parent = output.absolute().parent
    blocker = _existing_ancestor(parent)
    if not blocker.is_dir():
        raise BnnrError(f"cannot create --output {output}: {blocker} is a file, not a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        Path(tempfile.mkdtemp(prefix=f".{output.name}.probe-", dir=parent)).rmdir()
    except OSError as exc:
        raise BnnrError(
            f"cannot write to {parent} ({exc.strerror or exc}); choose an --output folder you "
            "can write to"
        ) from exc
    return output


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


class Staging:
    """A hidden folder next to the output that an analysis is built in, then moved into place.

    Steps write their files (overlays, thumbnails) under :attr:`artifacts`; :meth:`commit` runs
    the exporters into the same folder and renames it to the output in one step. Used as a
    context manager, a staging folder that was not committed is removed on exit.
    """

    def __init__(self, output: str | os.PathLike[str]) -> None:
        self.output = check_output_dir(output)
        parent = self.output.absolute().parent
        try:
            self.root = Path(tempfile.mkdtemp(prefix=f".{self.output.name}.partial-", dir=parent))
        except OSError as exc:
            raise BnnrError(f"cannot write to {parent} ({exc.strerror or exc})") from exc
        _apply_umask(self.root)
        self.committed = False

    @property
    def artifacts(self) -> Path:
        """``<staging>/artifacts``: report paths are relative to the staging root."""
        return self.root / "artifacts"

    def commit(
        self, report: Mapping[str, Any], *, host: PluginHost, exporters: Sequence[str] | None = None
    ) -> list[Path]:
        """Run the exporters into the staging folder and move it to the output.

        :param exporters: exporter names; default every installed exporter.
        :returns: the files the exporters wrote, as paths inside the output.
        :raises BnnrError: an exporter failed (nothing is written) or the move failed.
        """
        names = list(exporters) if exporters is not None else host.available("exporter")
        if not names:
            raise BnnrError("no exporter plugin is installed, so the analysis cannot be written")
        written: list[Path] = []
        for name in names:
            component = host.component("exporter", name)
            try:
                paths = component.create().export(report, self.root, artifact_root=self.root)
            except Exception as exc:
                raise BnnrError(
                    f"exporter {name!r} (plugin {component.plugin}) failed: "
                    f"{type(exc).__name__}: {exc}; nothing was written (disable a broken "
                    "plugin with BNNR_DISABLE_PLUGINS)"
                ) from exc
            written.extend(Path(path) for path in paths)
        try:
            _swap_into_place(self.root, self.output)
        except OSError as exc:
            raise BnnrError(f"cannot move the analysis into {self.output} ({exc})") from exc
        self.committed = True
        return [self.output / path.relative_to(self.root) for path in written]

    def discard(self) -> None:
        """Remove the staging folder (nothing of it reaches the output)."""
        if not self.committed:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.discard()


def write_report(
    report: Mapping[str, Any],
    output: str | os.PathLike[str],
    *,
    host: PluginHost,
    exporters: Sequence[str] | None = None,
) -> list[Path]:
    """Write a report document into ``output`` through the exporters, all at once (a report
    with no files of its own; analyses with artifacts use :class:`Staging` directly)."""
    with Staging(output) as staging:
        return staging.commit(report, host=host, exporters=exporters)


def _apply_umask(folder: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)


def _swap_into_place(staging: Path, output: Path) -> None:
    """Rename ``staging`` to ``output``; an earlier analysis there is removed only after the
    new one is in place."""
    if not output.exists():
        os.rename(staging, output)
        return
    backup = Path(tempfile.mkdtemp(prefix=f".{output.name}.previous-", dir=output.parent))
    backup.rmdir()
    os.rename(output, backup)
    try:
        os.rename(staging, output)
    except OSError:
        os.rename(backup, output)
        raise
    shutil.rmtree(backup, ignore_errors=True)
