"""Embedding report images (saliency overlays, data-quality thumbnails) as base64 data URIs.

Paths in ``analysis_report.json`` are relative to the analysis output folder (the
*artifact root*). A path is embedded only when it resolves to a readable image file inside that
folder: anything else (missing, unreadable, outside the folder) becomes a placeholder, so the HTML
never points at the disk. Images are downscaled to at most :data:`MAX_SIDE` pixels and re-encoded,
which bounds the size of the report; a total byte budget stops embedding when it is reached.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path, PurePosixPath
from typing import Any

import attrs

#: Largest side of an embedded image, in pixels.
MAX_SIDE = 256
#: Above this many bytes a PNG is re-encoded as JPEG when that is smaller (photographs).
PNG_SOFT_LIMIT = 48_000
#: Total bytes of embedded image data per report; later images become placeholders.
TOTAL_BUDGET = 8_000_000


@attrs.frozen
class EmbeddedImage:
    """One image slot of the report: a data URI, or ``None`` with the reason it is missing."""

    src: str | None
    alt: str
    path: str
    problem: str = ""


@attrs.define
class ImageEmbedder:
    """Turns report paths into :class:`EmbeddedImage` values and counts what it did.

    :param root: the artifact root; ``None`` embeds nothing (every image is a placeholder).
    """

    root: Path | None
    budget: int = TOTAL_BUDGET
    embedded: int = 0
    embedded_bytes: int = 0
    missing: int = 0
    left_out: int = 0
    _cache: dict[Path, str] = attrs.field(factory=dict)

    def embed(self, value: Any, alt: str) -> EmbeddedImage:
        """The image at report path ``value`` (a string), described by ``alt``."""
        path_text = value if isinstance(value, str) else ""
        located = self._locate(path_text)
        if located is None:
            self.missing += 1
            reason = "no image folder was given" if self.root is None else "file not found"
            return EmbeddedImage(None, alt, path_text, reason)
        src = self._cache.get(located)
        if src is None:
            try:
                src = encode_image(located)
            except Exception as exc:  # any undecodable file is only a placeholder
                self.missing += 1
                return EmbeddedImage(None, alt, path_text, f"unreadable ({type(exc).__name__})")
            self._cache[located] = src
        if self.embedded_bytes + len(src) > self.budget:
            self.left_out += 1
            return EmbeddedImage(None, alt, path_text, "left out: the report's size budget")
        self.embedded_bytes += len(src)
        self.embedded += 1
        return EmbeddedImage(src, alt, path_text)

    def note_left_out(self, count: int) -> None:
        """Count images a section did not show because of its cap."""
        self.left_out += count

    def _locate(self, path_text: str) -> Path | None:
        if self.root is None or not path_text.strip():
            return None
        root = self.root.resolve()
        candidate = Path(path_text)
        if candidate.is_absolute():
            return _inside(candidate, root)
        # BNNR 0.7 wrote some paths relative to the working directory ("out/artifacts/x.png"):
        # try the path, then ever shorter tails of it, always inside the root.
        parts = PurePosixPath(path_text.replace(os.sep, "/")).parts
        for start in range(len(parts)):
            found = _inside(root.joinpath(*parts[start:]), root)
            if found is not None:
                return found
        return None


def _inside(path: Path, root: Path) -> Path | None:
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):
        return None
    if resolved.is_file() and resolved.is_relative_to(root):
        return resolved
    return None


def encode_image(path: Path) -> str:
    """``path`` downscaled to at most :data:`MAX_SIDE` pixels, as a PNG or JPEG data URI."""
    from PIL import Image

    with Image.open(path) as opened:
        opened.load()
        image = opened.convert("RGBA" if "A" in opened.getbands() else "RGB")
    if max(image.size) > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return pil_data_uri(image)


def pil_data_uri(image: Any) -> str:
    """A Pillow image as a data URI: PNG, or JPEG when the PNG is large and JPEG smaller."""
    png = io.BytesIO()
    image.save(png, format="PNG", optimize=True)
    data, mime = png.getvalue(), "image/png"
    if len(data) > PNG_SOFT_LIMIT and image.mode == "RGB":
        jpeg = io.BytesIO()
        image.save(jpeg, format="JPEG", quality=85)
        if jpeg.tell() < len(data):
            data, mime = jpeg.getvalue(), "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
