"""Rendering an analysis report document (``analysis_report.json``) as one HTML page.

:func:`render_html` turns each section into plain view values
(:mod:`bnnr_export_html.sections`, reading the document leniently: a missing or malformed section
is shown as absent, never an error) and renders ``templates/report.html.j2`` with Jinja2
autoescaping, so every string from the document is escaped. Charts are inline SVG
(:mod:`bnnr_export_html.charts`), images base64 data URIs (:mod:`bnnr_export_html.images`). The
output depends only on the document and the image files: no clock, no randomness, no network.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bnnr_export_html.images import ImageEmbedder
from bnnr_export_html.sections import build_context

#: Replaced, after rendering, by the size of the file itself.
SIZE_TOKEN = "\x00bnnr-report-size\x00"


def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env


def _size_text(size: int) -> str:
    return f"{size:,} bytes ({size / 1024:,.0f} KiB)"


def _fill_size(html: str) -> str:
    """Replace the last :data:`SIZE_TOKEN` (the footer's) with the size of the final file."""
    head, found, tail = html.rpartition(SIZE_TOKEN)
    if not found:
        return html
    base = len(head.encode("utf-8")) + len(tail.encode("utf-8"))
    text = ""
    for _ in range(8):
        candidate = _size_text(base + len(text.encode("utf-8")))
        if candidate == text:
            break
        text = candidate
    return head + text + tail


def render_html(report: Mapping[str, Any], *, artifact_root: Path | None) -> bytes:
    """The HTML page of ``report`` as UTF-8 bytes; images are read from ``artifact_root``."""
    embedder = ImageEmbedder(Path(artifact_root) if artifact_root is not None else None)
    context = build_context(report, embedder)
    context["size_token"] = SIZE_TOKEN
    html = _environment().get_template("report.html.j2").render(**context)
    return _fill_size(html).encode("utf-8")
