"""Inline SVG charts of the HTML report, built in Python.

Every chart is returned as :class:`markupsafe.Markup`; every piece of text from the report (class
names, numbers) goes through :func:`markupsafe.escape` in :func:`tag`, so a hostile class name
cannot break out of the SVG. Colours come from CSS classes (so light and dark schemes both work),
except heatmap cells, whose colour encodes a value. Each mark carries a ``<title>`` with its exact
numbers, shown as a tooltip and read by screen readers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from markupsafe import Markup, escape

#: Colours of heatmap cells: correct predictions (diagonal) and confusions.
DIAGONAL_RGB = (37, 99, 235)
CONFUSION_RGB = (220, 38, 38)
#: Characters of a class name shown on a chart axis (the full name is in the tooltip).
LABEL_CHARS = 14


def fmt_number(value: float) -> str:
    """A coordinate with at most two decimals and no trailing zeros (deterministic text)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in {"", "-0"} else text


def tag(name: str, attributes: Mapping[str, Any] | None = None, *children: str) -> Markup:
    """One SVG element; attribute values and text children are escaped, Markup is kept."""
    head = name
    for key, value in (attributes or {}).items():
        if value is None:
            continue
        text = fmt_number(value) if isinstance(value, float) else str(value)
        head += f' {key}="{escape(text)}"'
    if not children:
        return Markup(f"<{head}/>")
    body = "".join(str(escape(child)) for child in children)
    return Markup(f"<{head}>{body}</{name}>")


def shorten(text: str, limit: int = LABEL_CHARS) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _svg(width: float, height: float, label: str, css_class: str, *children: str) -> Markup:
    return tag(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "class": f"chart {css_class}",
            "viewBox": f"0 0 {fmt_number(width)} {fmt_number(height)}",
            "width": width,
            "height": height,
            "role": "img",
            "aria-label": label,
        },
        tag("title", None, label),
        *children,
    )


def _text(x: float, y: float, text: str, css_class: str, **extra: Any) -> Markup:
    return tag("text", {"x": x, "y": y, "class": css_class, **extra}, text)


def _label_width(labels: Sequence[str]) -> float:
    longest = max((len(shorten(label)) for label in labels), default=1)
    return 7.0 * longest + 10.0


# -------------------------------------------------------------------------------------------
# Confusion heatmap
# -------------------------------------------------------------------------------------------


@attrs.frozen
class HeatmapCell:
    """One non-zero cell of a confusion matrix, with what its tooltip says."""

    row: int
    column: int
    count: int
    share: float
    title: str


def heatmap_cells(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], shown: Sequence[int]
) -> list[HeatmapCell]:
    """The non-zero cells among classes ``shown``; ``share`` is the count over the true class's
    samples (the whole row, also columns that are not shown)."""
    cells = []
    for row, i in enumerate(shown):
        support = sum(matrix[i])
        for column, j in enumerate(shown):
            count = matrix[i][j]
            if not count:
                continue
            share = count / support if support else 0.0
            verb = "correct" if i == j else f"predicted {labels[j]}"
            title = f"true {labels[i]} → {verb}: {count} of {support} ({share:.1%})"
            cells.append(HeatmapCell(row, column, count, share, title))
    return cells


def _cell_fill(cell: HeatmapCell, max_confusion_share: float) -> tuple[str, float]:
    if cell.row == cell.column:
        rgb, opacity = DIAGONAL_RGB, 0.2 + 0.8 * cell.share
    else:
        scale = cell.share / max_confusion_share if max_confusion_share else 1.0
        rgb, opacity = CONFUSION_RGB, 0.25 + 0.75 * scale
    return "#{:02x}{:02x}{:02x}".format(*rgb), round(opacity, 3)


def confusion_heatmap(
    matrix: Sequence[Sequence[int]],
    labels: Sequence[str],
    shown: Sequence[int],
    *,
    caption: str,
) -> Markup:
    """A heatmap of ``matrix`` restricted to the classes ``shown`` (rows true, columns predicted).

    Diagonal cells are blue with opacity by recall; confusions red with opacity relative to the
    largest confusion share shown. Counts are printed in the cells when they are large enough.
    """
    n = len(shown)
    if n <= 10:
        cell = 36.0
    elif n <= 25:
        cell = 30.0 if n <= 15 else 24.0
    else:
        cell = float(max(4, min(16, 720 // n)))
    with_labels = cell >= 10
    label_w = _label_width([labels[i] for i in shown]) if with_labels else 4.0
    left = top = 20.0 + label_w
    size = n * cell
    parts: list[str] = [
        tag("rect", {"x": left, "y": top, "width": size, "height": size, "class": "hm-bg"}),
        _text(
            left + size / 2, 14.0, "predicted class →", "axis-title", **{"text-anchor": "middle"}
        ),
        _text(
            14.0,
            top + size / 2,
            "true class →",
            "axis-title",
            **{
                "text-anchor": "middle",
                "transform": f"rotate(90 14 {fmt_number(top + size / 2)})",
            },
        ),
    ]
    if with_labels:
        for position, index in enumerate(shown):
            centre = position * cell + cell / 2
            full = labels[index]
            row_label = tag(
                "text",
                {"x": left - 5, "y": top + centre + 4, "class": "tick", "text-anchor": "end"},
                tag("title", None, full),
                shorten(full),
            )
            x = left + centre + 4
            column_label = tag(
                "text",
                {
                    "x": x,
                    "y": top - 5,
                    "class": "tick",
                    "transform": f"rotate(-90 {fmt_number(x)} {fmt_number(top - 5)})",
                },
                tag("title", None, full),
                shorten(full),
            )
            parts.extend([row_label, column_label])
    cells = heatmap_cells(matrix, labels, shown)
    max_confusion = max((c.share for c in cells if c.row != c.column), default=0.0)
    for item in cells:
        fill, opacity = _cell_fill(item, max_confusion)
        x, y = left + item.column * cell, top + item.row * cell
        parts.append(
            tag(
                "rect",
                {
                    "x": x + 0.5,
                    "y": y + 0.5,
                    "width": cell - 1,
                    "height": cell - 1,
                    "fill": fill,
                    "fill-opacity": opacity,
                    "class": "hm-cell",
                },
                tag("title", None, item.title),
            )
        )
        if cell >= 22:
            shade = "hm-v-on" if opacity > 0.55 else "hm-v"
            parts.append(
                _text(
                    x + cell / 2,
                    y + cell / 2 + 4,
                    str(item.count),
                    shade,
                    **{"text-anchor": "middle"},
                )
            )
    return _svg(left + size + 6, top + size + 6, caption, "heatmap", *parts)


def confusion_png(matrix: Sequence[Sequence[int]], shown: Sequence[int]) -> str:
    """The matrix as a small PNG data URI (one square per cell), for matrices too large for
    one SVG element per cell; same colour code as :func:`confusion_heatmap`."""
    from PIL import Image

    from bnnr_export_html.images import pil_data_uri

    n = len(shown)
    scale = max(1, 720 // max(n, 1))
    image = Image.new("RGB", (n, n), (255, 255, 255))
    cells = heatmap_cells(matrix, [""] * len(matrix), shown)
    max_confusion = max((c.share for c in cells if c.row != c.column), default=0.0)
    pixels = image.load()
    assert pixels is not None
    for item in cells:
        fill, opacity = _cell_fill(item, max_confusion)
        rgb = tuple(int(fill[k : k + 2], 16) for k in (1, 3, 5))
        pixels[item.column, item.row] = tuple(
            round(255 + (channel - 255) * opacity) for channel in rgb
        )
    return pil_data_uri(image.resize((n * scale, n * scale), Image.Resampling.NEAREST))


# -------------------------------------------------------------------------------------------
# Reliability diagram
# -------------------------------------------------------------------------------------------


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def reliability_diagram(bins: Sequence[Mapping[str, Any]], *, caption: str) -> Markup:
    """Accuracy per confidence bin against the diagonal, with the gap to the bin's mean
    confidence shaded and the sample count per bin as a strip below."""
    plot, left, top, strip = 300.0, 46.0, 10.0, 46.0
    bottom = top + plot
    parts: list[str] = []
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = bottom - tick * plot
        x = left + tick * plot
        parts.append(
            tag("line", {"x1": left, "y1": y, "x2": left + plot, "y2": y, "class": "grid"})
        )
        parts.append(_text(left - 6, y + 4, f"{tick:.2f}", "tick", **{"text-anchor": "end"}))
        parts.append(
            _text(x, bottom + strip + 16, f"{tick:.2f}", "tick", **{"text-anchor": "middle"})
        )
    parts.append(
        tag(
            "line",
            {"x1": left, "y1": bottom, "x2": left + plot, "y2": top, "class": "diagonal"},
            tag("title", None, "perfect calibration: accuracy equals confidence"),
        )
    )
    counts = [int(_as_float(b.get("count")) or 0) for b in bins]
    most = max(counts, default=0)
    for entry, count in zip(bins, counts, strict=True):
        lower, upper = _as_float(entry.get("lower")), _as_float(entry.get("upper"))
        accuracy = _as_float(entry.get("accuracy"))
        confidence = _as_float(entry.get("mean_confidence"))
        if lower is None or upper is None or not count:
            continue
        x, width = left + lower * plot, max((upper - lower) * plot - 1, 1.0)
        title = f"confidence {lower:.2f}–{upper:.2f}: {count} samples"
        if accuracy is not None:
            title += f", accuracy {accuracy:.1%}"
            parts.append(
                tag(
                    "rect",
                    {
                        "x": x,
                        "y": bottom - accuracy * plot,
                        "width": width,
                        "height": accuracy * plot,
                        "class": "rel-bar",
                    },
                    tag("title", None, title),
                )
            )
        if accuracy is not None and confidence is not None:
            high, low = max(accuracy, confidence), min(accuracy, confidence)
            parts.append(
                tag(
                    "rect",
                    {
                        "x": x,
                        "y": bottom - high * plot,
                        "width": width,
                        "height": max((high - low) * plot, 0.5),
                        "class": "rel-gap",
                    },
                    tag("title", None, f"{title}, mean confidence {confidence:.1%}"),
                )
            )
        bar = (strip - 8) * count / most if most else 0.0
        parts.append(
            tag(
                "rect",
                {
                    "x": x,
                    "y": bottom + strip - bar,
                    "width": width,
                    "height": bar,
                    "class": "rel-count",
                },
                tag("title", None, f"confidence {lower:.2f}–{upper:.2f}: {count} samples"),
            )
        )
    parts.append(
        tag("rect", {"x": left, "y": top, "width": plot, "height": plot, "class": "frame"})
    )
    parts.append(
        _text(
            left + plot / 2,
            bottom + strip + 32,
            "confidence",
            "axis-title",
            **{"text-anchor": "middle"},
        )
    )
    parts.append(
        _text(
            12.0,
            top + plot / 2,
            "accuracy",
            "axis-title",
            **{
                "text-anchor": "middle",
                "transform": f"rotate(-90 12 {fmt_number(top + plot / 2)})",
            },
        )
    )
    return _svg(left + plot + 12, bottom + strip + 40, caption, "reliability", *parts)


# -------------------------------------------------------------------------------------------
# Distribution bars
# -------------------------------------------------------------------------------------------


def distribution_bars(rows: Sequence[tuple[str, int, int]], *, caption: str) -> Markup:
    """Horizontal bars, one pair per class: true count and predicted count."""
    label_w = _label_width([label for label, _, _ in rows])
    plot, row_h, top = 320.0, 22.0, 26.0
    most = max((max(t, p) for _, t, p in rows), default=0) or 1
    parts: list[str] = [
        tag("rect", {"x": label_w, "y": 6, "width": 10, "height": 10, "class": "dist-true"}),
        _text(label_w + 14, 15, "true", "tick"),
        tag("rect", {"x": label_w + 60, "y": 6, "width": 10, "height": 10, "class": "dist-pred"}),
        _text(label_w + 74, 15, "predicted", "tick"),
    ]
    for position, (label, true_count, pred_count) in enumerate(rows):
        y = top + position * row_h
        parts.append(
            tag(
                "text",
                {"x": label_w - 6, "y": y + 13, "class": "tick", "text-anchor": "end"},
                tag("title", None, label),
                shorten(label),
            )
        )
        for offset, count, css, word in (
            (2.0, true_count, "dist-true", "true"),
            (10.0, pred_count, "dist-pred", "predicted"),
        ):
            parts.append(
                tag(
                    "rect",
                    {
                        "x": label_w,
                        "y": y + offset,
                        "width": max(plot * count / most, 0.5),
                        "height": 8,
                        "class": css,
                    },
                    tag("title", None, f"{label}: {word} {count}"),
                )
            )
        parts.append(_text(label_w + plot + 6, y + 13, f"{true_count} / {pred_count}", "tick"))
    height = top + len(rows) * row_h + 4
    return _svg(label_w + plot + 80, height, caption, "distribution", *parts)
