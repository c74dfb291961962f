"""Reading a report document leniently and formatting its values for the HTML page.

Every reader accepts anything (a report from an older BNNR, a third-party plugin, a hand-edited
file): a value of the wrong type reads as absent. Formatting is deterministic text. The image
helpers find the image paths of an entry (saliency examples, data-quality thumbnails) and hand
them to :class:`bnnr_export_html.images.ImageEmbedder`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from bnnr_export_html.images import EmbeddedImage, ImageEmbedder

#: Longest list of sample ids or indices shown in one line.
INDEX_LIST_CAP = 20

#: Labels of the usual image keys of a saliency example.
PATH_LABELS = {
    "image_path": "image",
    "overlay_path": "saliency",
    "overlay_true_path": "saliency, true class",
}
#: Keys whose value is a list of image paths (data-quality thumbnails).
PATH_LISTS = ("thumbnail_paths", "image_paths")
#: Severity and status words with a colour of their own (``.sev-<word>`` in the CSS).
SEVERITIES = {"critical", "high", "medium", "low", "warning", "info", "ok", "error"}
STATUSES = {"ok", "partial", "disabled", "skipped", "failed"}
#: Metrics shown as percentages; the others with three decimals.
PERCENT_METRICS = {
    "accuracy",
    "balanced_accuracy",
    "f1_macro",
    "f1_micro",
    "f1_samples",
    "f1_weighted",
    "precision_macro",
    "recall_macro",
    "top5_accuracy",
    "subset_accuracy",
}
#: Display names of metrics (and of the ``support`` column of fold tables).
METRIC_LABELS = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "f1_macro": "Macro F1",
    "precision_macro": "Macro precision",
    "recall_macro": "Macro recall",
    "top5_accuracy": "Top-5 accuracy",
    "subset_accuracy": "Subset accuracy",
    "f1_samples": "Sample F1",
    "cohen_kappa": "Cohen's kappa",
    "mcc": "MCC",
    "loss": "Loss",
    "ece": "ECE",
    "support": "Support",
}

# -------------------------------------------------------------------------------------------
# Lenient readers and formatting
# -------------------------------------------------------------------------------------------


def as_dict(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a dictionary, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` as a list if it is a list or tuple, else an empty list."""
    return list(value) if isinstance(value, list | tuple) else []


def as_number(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` (booleans, strings and NaN are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def as_int(value: Any) -> int | None:
    """``value`` as an integer when it is a whole number, else ``None``."""
    number = as_number(value)
    return int(number) if number is not None and number == int(number) else None


def as_text(value: Any) -> str:
    """``value`` as display text: ``""`` for ``None``, lists joined with commas."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(as_text(item) for item in value)
    return str(value)


def pct(value: Any, digits: int = 1) -> str:
    """``0.9472`` as ``"94.7%"``; ``"n/a"`` for a missing value."""
    number = as_number(value)
    return "n/a" if number is None else f"{number * 100:.{digits}f}%"


def dec(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals (integers as they are); ``"n/a"`` when missing."""
    number = as_number(value)
    if number is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{number:.{digits}f}"


def metric_text(name: str, value: Any) -> str:
    """A metric as the report shows it: a percentage for rates, else three decimals."""
    return pct(value) if name in PERCENT_METRICS else dec(value)


def severity_class(value: Any) -> str:
    """The CSS class of a severity or status word (an unknown word gets a neutral colour)."""
    word = as_text(value).lower()
    return f"sev-{word}" if word in SEVERITIES | STATUSES else "sev-unknown"


def anchor(prefix: str, identifier: Any) -> str:
    """An HTML id made of safe characters only."""
    return f"{prefix}-{re.sub(r'[^A-Za-z0-9_-]', '-', as_text(identifier))}"


def sort_value(value: Any) -> str:
    """The ``data-v`` attribute the sorting script reads: the number, or ``""`` if none."""
    number = as_number(value)
    return "" if number is None else repr(number)


class ClassNames:
    """Class ids (``"3"``) to display labels (``"cat (3)"``, or ``"3"`` when the name is the id)."""

    def __init__(self, report: Mapping[str, Any]) -> None:
        self.names: dict[str, str] = {}
        confusion = as_dict(report.get("confusion"))
        for label, name in zip(
            as_list(confusion.get("labels")), as_list(confusion.get("class_names")), strict=False
        ):
            self.names[str(label)] = as_text(name)
        for key, entry in as_dict(report.get("per_class_accuracy")).items():
            self._add(str(key), as_dict(entry).get("class_name"))
        for entry in as_list(report.get("class_diagnostics")):
            self._add(as_text(as_dict(entry).get("class_id")), as_dict(entry).get("class_name"))

    def _add(self, key: str, name: Any) -> None:
        if key and isinstance(name, str) and key not in self.names:
            self.names[key] = name

    def name(self, class_id: Any) -> str:
        """The class name, or the id when there is none."""
        key = as_text(class_id)
        return self.names.get(key) or key

    def label(self, class_id: Any) -> str:
        """``"name (id)"``, or just the id when the name is the id."""
        key = as_text(class_id)
        name = self.names.get(key)
        return f"{name} ({key})" if name and name != key else key


# -------------------------------------------------------------------------------------------
# Images
# -------------------------------------------------------------------------------------------


def is_path_key(key: str) -> bool:
    """Whether a key names one image path (``overlay_path``, ``mean_overlay_correct_a``)."""
    return key.endswith("_path") or key.startswith("mean_overlay")


def labelled_paths(entry: Mapping[str, Any]) -> dict[str, str]:
    """Distinct image paths of an entry's path keys, each with a short label: the image
    first, then its saliency overlays, then any other path key in name order."""
    keys = sorted(k for k in entry if is_path_key(k) and isinstance(entry[k], str) and entry[k])
    keys.sort(key=lambda k: (k != "image_path", k != "overlay_path"))
    labelled: dict[str, str] = {}
    for key in keys:
        labelled.setdefault(entry[key], PATH_LABELS.get(key, key.removesuffix("_path")))
    return {path: label.replace("_", " ") for path, label in labelled.items()}


def path_values(entry: Mapping[str, Any]) -> list[str]:
    """Distinct image paths of an entry: those of :func:`_labelled_paths`, then the lists
    ``thumbnail_paths`` and ``image_paths``."""
    paths = list(labelled_paths(entry))
    for key in PATH_LISTS:
        paths.extend(p for p in as_list(entry.get(key)) if isinstance(p, str))
    return list(dict.fromkeys(p for p in paths if p))


def faithfulness_facts(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Numbers that say how faithful a saliency map is: deletion/insertion AUCs (also those of
    random maps) and a ``faithful`` verdict, from the entry or its ``faithfulness`` or
    ``components`` part."""
    found: dict[str, str] = {}
    for part in (as_dict(entry.get("components")), as_dict(entry.get("faithfulness")), entry):
        for key, value in part.items():
            if key == "faithful" and isinstance(value, bool):
                found[key] = "yes" if value else "no"
            elif key.endswith("_auc") and as_number(value) is not None:
                found[key] = dec(value)
    order = sorted(found, key=lambda key: (key != "faithful", key))
    return [(key.replace("_", " "), found[key]) for key in order]


def _example_caption(entry: Mapping[str, Any], names: ClassNames) -> list[str]:
    lines = []
    true, pred = entry.get("true_label"), entry.get("pred_label")
    if true is not None and pred is not None:
        verdict = "correct" if as_text(true) == as_text(pred) else f"predicted {names.label(pred)}"
        lines.append(f"true {names.label(true)}, {verdict}")
    elif entry.get("target_label") is not None:
        lines.append(f"explained label {names.label(entry.get('target_label'))}")
    if as_number(entry.get("confidence")) is not None:
        lines.append(f"confidence {pct(entry.get('confidence'))}")
    if as_number(entry.get("loss")) is not None:
        lines.append(f"loss {dec(entry.get('loss'))}")
    for key in ("description", "note", "sample_id"):
        if isinstance(entry.get(key), str) and entry[key]:
            lines.append(entry[key])
    return lines


def make_figure(
    entry: Mapping[str, Any], embedder: ImageEmbedder, names: ClassNames, alt: str
) -> dict[str, Any]:
    """One example of a gallery: its images (labelled: image, saliency, ...), caption lines
    and faithfulness numbers; ``alt`` says what the example is, for screen readers."""
    caption = _example_caption(entry, names)
    description = f"{alt}: {'; '.join(caption)}" if caption else alt
    labelled = labelled_paths(entry) or {"": ""}
    return {
        "images": [
            (label, embedder.embed(path, f"{description} ({label})" if label else description))
            for path, label in labelled.items()
        ],
        "caption": caption,
        "faithfulness": faithfulness_facts(entry),
    }


def _images_in(value: Any) -> int:
    """How many images a path, a report entry or a list of entries would show."""
    if isinstance(value, str):
        return 1 if value else 0
    if isinstance(value, Mapping):
        nested = (
            _images_in(v)
            for k, v in value.items()
            if k not in PATH_LISTS and isinstance(v, Mapping | list | tuple)
        )
        return len(path_values(value)) + sum(nested)
    if isinstance(value, list | tuple):
        return sum(_images_in(v) for v in value if isinstance(v, Mapping | list | tuple))
    return 0


def capped(items: Sequence[Any], cap: int, embedder: ImageEmbedder) -> tuple[list[Any], int]:
    """The first ``cap`` items and how many were left out; the images of the items left out
    are counted by ``embedder``."""
    embedder.note_left_out(sum(_images_in(item) for item in items[cap:]))
    return list(items[:cap]), max(len(items) - cap, 0)


def make_thumbnails(
    entry: Mapping[str, Any], embedder: ImageEmbedder, names: ClassNames, alt: str, cap: int
) -> tuple[list[tuple[str, EmbeddedImage]], int]:
    """The data-quality thumbnails of ``entry`` with a caption each (sample id, and the given
    and suggested labels of a suspected label error), and how many were left out."""
    paths, left_out = capped(path_values(entry), cap, embedder)
    ids = as_list(entry.get("sample_ids")) or as_list(entry.get("indices"))
    details = as_list(entry.get("details"))
    shown = []
    for k, path in enumerate(paths):
        caption = as_text(ids[k]) if k < len(ids) else f"image {k + 1}"
        detail = as_dict(details[k]) if k < len(details) else {}
        if detail.get("given") is not None and detail.get("suggested") is not None:
            caption += (
                f": labelled {names.label(detail['given'])}, "
                f"model says {names.label(detail['suggested'])}"
            )
        shown.append((caption, embedder.embed(path, f"{alt}, {caption}")))
    return shown, left_out


def sample_list(entry: Mapping[str, Any]) -> str:
    """The sample ids (or indices) of a data-quality entry, at most :data:`INDEX_LIST_CAP`."""
    ids = as_list(entry.get("sample_ids")) or as_list(entry.get("indices"))
    more = " …" if len(ids) > INDEX_LIST_CAP else ""
    return as_text(ids[:INDEX_LIST_CAP]) + more
