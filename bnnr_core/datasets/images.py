"""Decoding image files into batches, skipping the ones that cannot be read.

:class:`ImageFileDataset` decodes one file with PIL (converted to 1 or 3 channels, resized to a
fixed size); a file that fails yields no image and the reason instead of raising, so one corrupt
file never stops a run. Its items are meant to be batched by :class:`ImageBatchCollator` (what
:func:`iter_image_batches` does): a batch holds the good images as one float tensor, scaled to
``[0, 1]`` and optionally normalised, plus the skipped files and why. Decoding runs in the
``DataLoader``'s worker processes when ``num_workers > 0``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset

#: How an image is brought to the requested size: ``center_crop`` scales it to cover the size
#: and crops the centre (keeps the aspect ratio); ``stretch`` resizes it directly.
RESIZE_MODES = ("center_crop", "stretch")
_PIL_MODES = {1: "L", 3: "RGB"}


@attrs.frozen(kw_only=True)
class SkippedImage:
    """A file that could not be decoded, and why."""

    index: int
    path: Path
    reason: str


@attrs.frozen
class ImageItem:
    """One decoded file: ``image`` is uint8 ``(C, H, W)``, or ``None`` with ``error`` set."""

    image: torch.Tensor | None
    label: int
    index: int
    path: str
    error: str | None


@attrs.frozen(kw_only=True)
class ImageBatch:
    """Decoded images: one batch, or a whole dataset from :func:`decode_images`.

    ``indices`` are positions in the dataset's file list; ``skipped`` the files that could not
    be decoded.
    """

    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    skipped: tuple[SkippedImage, ...] = ()


def decode_image_file(
    path: str | Path, *, channels: int, size: tuple[int, int], resize: str = "center_crop"
) -> np.ndarray:
    """Decode one file to a uint8 array ``(height, width, channels)``.

    EXIF orientation is applied; transparency is dropped. Raises whatever PIL raises for an
    unreadable file (callers that must not fail use :class:`ImageFileDataset`).
    """
    height, width = size
    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened) or opened
        converted = image.convert(_PIL_MODES[channels])
    if converted.size != (width, height):
        if resize == "stretch":
            converted = converted.resize((width, height), Image.Resampling.BILINEAR)
        else:
            converted = ImageOps.fit(converted, (width, height), Image.Resampling.BILINEAR)
    array = np.array(converted, dtype=np.uint8)  # a writable copy: torch wraps it
    return array[:, :, None] if array.ndim == 2 else array


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 200:
        text = text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ImageFileDataset(Dataset[ImageItem]):
    """Image files decoded on access; unreadable files give an item with ``error`` set.

    :param files: image paths.
    :param labels: one class index per file.
    :param channels: 1 (grey) or 3 (RGB); every image is converted.
    :param size: ``(height, width)`` of every image.
    :param resize: one of :data:`RESIZE_MODES`.
    """

    def __init__(
        self,
        files: Sequence[str | Path],
        labels: Sequence[int],
        *,
        channels: int = 3,
        size: tuple[int, int],
        resize: str = "center_crop",
    ) -> None:
        if len(files) != len(labels):
            raise ValueError(f"{len(files)} files but {len(labels)} labels")
        if channels not in _PIL_MODES:
            raise ValueError(f"channels must be 1 or 3, not {channels}")
        if resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, not {resize!r}")
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"size must be (height, width) with positive values; got {size}")
        self.files = [str(path) for path in files]
        self.labels = [int(label) for label in labels]
        self.channels = channels
        self.size = (int(size[0]), int(size[1]))
        self.resize = resize

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> ImageItem:
        path = self.files[index]
        try:
            array = decode_image_file(
                path, channels=self.channels, size=self.size, resize=self.resize
            )
        except Exception as exc:  # any decoder failure is a property of the file, not a bug
            return ImageItem(None, self.labels[index], index, path, _reason(exc))
        image = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
        return ImageItem(image, self.labels[index], index, path, None)


class ImageBatchCollator:
    """``collate_fn`` for :class:`ImageFileDataset`: stacks the good images as float32 in
    ``[0, 1]``, normalised with ``mean``/``std`` when given, and lists the skipped files.

    A plain class (not a closure) so ``DataLoader`` worker processes can receive it.
    """

    def __init__(
        self,
        *,
        channels: int,
        size: tuple[int, int],
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        for name, values in (("mean", mean), ("std", std)):
            if values is not None and len(values) != channels:
                raise ValueError(f"{name} needs {channels} values, got {len(values)}")
        if std is not None and min(std) <= 0:
            raise ValueError("std values must be positive")
        self.channels = channels
        self.size = size
        self.mean = None if mean is None else torch.tensor(mean).view(1, channels, 1, 1)
        self.std = None if std is None else torch.tensor(std).view(1, channels, 1, 1)

    def __call__(self, items: Sequence[ImageItem]) -> ImageBatch:
        good = [item for item in items if item.image is not None]
        skipped = tuple(
            SkippedImage(index=item.index, path=Path(item.path), reason=item.error or "unknown")
            for item in items
            if item.image is None
        )
        if good:
            images = torch.stack([item.image for item in good if item.image is not None])
        else:
            images = torch.empty((0, self.channels, *self.size), dtype=torch.uint8)
        floats = images.to(torch.float32).div_(255.0)
        if self.mean is not None and self.std is not None:
            floats = (floats - self.mean) / self.std
        return ImageBatch(
            images=floats,
            labels=torch.tensor([item.label for item in good], dtype=torch.int64),
            indices=torch.tensor([item.index for item in good], dtype=torch.int64),
            skipped=skipped,
        )


def iter_image_batches(
    dataset: ImageFileDataset,
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Iterator[ImageBatch]:
    """Decode ``dataset`` in order, ``batch_size`` files at a time, in ``num_workers``
    processes (0: in this one). Every file appears in exactly one batch, as an image or as a
    :class:`SkippedImage`."""
    collator = ImageBatchCollator(channels=dataset.channels, size=dataset.size, mean=mean, std=std)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collator,
    )
    yield from loader


def decode_images(
    dataset: ImageFileDataset,
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> ImageBatch:
    """Decode the whole of ``dataset`` into one tensor (mind the memory: N x C x H x W floats)
    and collect the skipped files."""
    batches = list(
        iter_image_batches(
            dataset, batch_size=batch_size, num_workers=num_workers, mean=mean, std=std
        )
    )
    channels, (height, width) = dataset.channels, dataset.size
    if not batches:
        empty = torch.empty((0, channels, height, width))
        none = torch.empty(0, dtype=torch.int64)
        return ImageBatch(images=empty, labels=none, indices=none.clone())
    return ImageBatch(
        images=torch.cat([batch.images for batch in batches]),
        labels=torch.cat([batch.labels for batch in batches]),
        indices=torch.cat([batch.indices for batch in batches]),
        skipped=tuple(skip for batch in batches for skip in batch.skipped),
    )
