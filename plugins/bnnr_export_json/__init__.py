"""Built-in exporter ``json``: writes an analysis report as ``analysis_report.json``.

The file is written atomically with sorted keys; non-finite numbers become ``null`` and are
listed under ``non_finite_values`` (see :mod:`bnnr_core.jsonio`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bnnr_core import hookimpl
from bnnr_core.components import RegisterFn

REPORT_FILE = "analysis_report.json"


class JsonExporter:
    """Writes ``analysis_report.json`` into the output directory."""

    name = "json"

    def export(
        self, report: Mapping[str, Any], output_dir: Path, *, artifact_root: Path | None = None
    ) -> list[Path]:
        from bnnr_core.jsonio import write_json

        return [write_json(Path(output_dir) / REPORT_FILE, dict(report))]


@hookimpl
def bnnr_register_exporters(register: RegisterFn) -> None:
    register(
        "json",
        JsonExporter,
        description="analysis_report.json: the full analysis, sorted keys, no NaN",
        files=[REPORT_FILE],
    )
