"""A saved analysis report, and writing it as HTML outside ``bnnr analyze``.

``bnnr analyze`` writes ``report.html`` through the exporter ``html``;
:meth:`AnalysisReport.to_html` writes the same file for a report read back from
``analysis_report.json``, through the same exporter, found through the plugin host: the core does
not import any exporter plugin.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bnnr_core.errors import BnnrError
from bnnr_core.jsonio import JsonReadError, read_json, write_bytes_atomic

if TYPE_CHECKING:
    from bnnr_core.plugins import PluginHost

#: The file name of the report document in an analysis folder.
REPORT_FILE = "analysis_report.json"
#: The exporter component that renders the HTML page.
HTML_EXPORTER = "html"


class AnalysisReport:
    """An analysis report document (the content of ``analysis_report.json``).

    :param document: the report dictionary.
    :param source: the file it was read from; its folder is where the report's image paths
        (``artifacts/...``) are relative to.
    """

    def __init__(self, document: Mapping[str, Any], *, source: Path | None = None) -> None:
        self._document = dict(document)
        self.source = source

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> AnalysisReport:
        """Read ``analysis_report.json`` (or the one inside the folder ``path``).

        :raises BnnrError: the file is missing, unreadable, or not a JSON object.
        """
        source = Path(path)
        if source.is_dir():
            source = source / REPORT_FILE
        try:
            document = read_json(source)
        except JsonReadError as exc:
            raise BnnrError(f"cannot read the analysis report: {exc}") from exc
        if not isinstance(document, dict):
            raise BnnrError(
                f"cannot read the analysis report: {source} does not hold a JSON object"
            )
        return cls(document, source=source)

    @property
    def document(self) -> dict[str, Any]:
        """The report dictionary."""
        return self._document

    def to_html(
        self,
        path: str | os.PathLike[str],
        *,
        artifact_root: str | os.PathLike[str] | None = None,
        host: PluginHost | None = None,
    ) -> Path:
        """Write the report as the HTML page ``bnnr analyze`` writes, atomically, to ``path``.

        :param artifact_root: the folder the report's image paths are relative to; default the
            folder of the JSON file the report was loaded from, else the folder of ``path``.
        :param host: the plugin host to find the ``html`` exporter in; default
            :func:`bnnr_core.plugins.load_plugins`.
        :returns: ``path``.
        :raises BnnrError: no ``html`` exporter is installed, or it failed.
        """
        if host is None:
            from bnnr_core.plugins import load_plugins

            host = load_plugins()
        component = host.components["exporter"].get(HTML_EXPORTER)
        if component is None:
            raise BnnrError(
                "no HTML exporter is installed (the plugin that provides the exporter 'html' is "
                "missing, disabled or failed to load; see 'bnnr plugins list')"
            )
        target = Path(path)
        if artifact_root is not None:
            root = Path(artifact_root)
        elif self.source is not None:
            root = self.source.parent
        else:
            root = target.parent
        try:
            with tempfile.TemporaryDirectory(prefix="bnnr-html-") as scratch:
                written = component.create().export(
                    self._document, Path(scratch), artifact_root=root
                )
                if len(written) != 1:
                    raise ValueError(f"it wrote {len(written)} files instead of one page")
                data = Path(written[0]).read_bytes()
        except Exception as exc:
            raise BnnrError(
                f"exporter 'html' (plugin {component.plugin}) failed: {type(exc).__name__}: {exc}"
            ) from exc
        return write_bytes_atomic(target, data)
