"""Built-in exporter ``html``: writes an analysis report as one self-contained ``report.html``.

The page is what most readers open and forward: every image is embedded as a base64 data URI and
every chart is inline SVG, so the file needs nothing next to it and makes no network request (a
Content-Security-Policy forbids any). Every string from the report is escaped. The same document
gives the same bytes (no clock, no randomness), whether written by ``bnnr analyze`` or by
:meth:`bnnr_core.analysis.report.AnalysisReport.to_html`.

Importing this package is cheap: Jinja2 and Pillow are imported only when a report is rendered.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bnnr_core import hookimpl
from bnnr_core.components import RegisterFn

REPORT_FILE = "report.html"


class HtmlExporter:
    """Writes ``report.html`` into the output directory, atomically."""

    name = "html"

    def export(
        self, report: Mapping[str, Any], output_dir: Path, *, artifact_root: Path | None = None
    ) -> list[Path]:
        """Render ``report`` and write ``output_dir/report.html``.

        :param artifact_root: the folder the report's image paths are relative to; default
            ``output_dir`` (``bnnr analyze`` writes images there before the exporters run).
        :returns: ``[output_dir / "report.html"]``.
        """
        from bnnr_core.jsonio import write_bytes_atomic
        from bnnr_export_html.render import render_html

        output_dir = Path(output_dir)
        root = Path(artifact_root) if artifact_root is not None else output_dir
        return [
            write_bytes_atomic(output_dir / REPORT_FILE, render_html(report, artifact_root=root))
        ]


@hookimpl
def bnnr_register_exporters(register: RegisterFn) -> None:
    register(
        "html",
        HtmlExporter,
        description="report.html: a self-contained page to read and share (images embedded)",
        files=[REPORT_FILE],
    )
