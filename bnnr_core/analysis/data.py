"""The evaluation data of an analysis: where ``--data`` points, turned into batches.

``--data`` is one of

* ``digits``: the bundled evaluation split (360 images, 8x8 grey), offline, always available;
* ``mnist``, ``fashion_mnist``, ``cifar10``: the official test split through torchvision, from
  ``--data-dir`` (downloaded only with ``download=True``);
* a folder: an ImageFolder tree, or a root holding ``train/`` and ``val/`` (``valid/``,
  ``validation/``, ``test/``) split folders (see :mod:`bnnr_core.datasets.imagefolder`).

Images are brought to the model's input (channels, size, normalisation) the same way for every
source, and every batch carries the dataset positions of its images, so a file that cannot be
decoded is skipped and reported instead of shifting every later sample.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from bnnr_core.errors import BnnrError

if TYPE_CHECKING:
    import torch

    from bnnr_core.datasets.images import SkippedImage

#: Names ``--data`` accepts besides a folder.
DATASET_NAMES = ("digits", "mnist", "fashion_mnist", "cifar10")
#: Multi-label data names ``--data`` accepts besides a manifest file.
MULTILABEL_NAMES = ("multidigits",)

#: Image side used for an image folder when neither the checkpoint nor ``--image-size`` says.
DEFAULT_FOLDER_SIDE = 224

Batches = Iterator[tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]]


@attrs.frozen(kw_only=True)
class InputSpec:
    """How images are fed to the model: ``channels``, ``size`` (height, width), normalisation.

    ``source`` says where each fact came from, for the report (``checkpoint``, ``flags``,
    ``data``, ``default``).
    """

    channels: int
    size: tuple[int, int]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    source: dict[str, str] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True, eq=False)
class SplitSource:
    """The raw images of one split, as files or as an array, for checks that read pixels as
    stored (data quality) rather than as the model sees them."""

    #: ``eval``, ``val``, ``train``, ...
    name: str
    #: ``(N,)`` class index of every sample.
    labels: np.ndarray
    sample_ids: tuple[str, ...]
    #: Image files (image folders), or ``None``.
    files: tuple[Path, ...] | None = None
    #: uint8 ``(N, C, H, W)`` images (array data sets), or ``None``.
    arrays: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@attrs.frozen(kw_only=True, eq=False)
class EvalData:
    """The evaluation set: labels, ids and a way to iterate over its images in batches."""

    #: ``digits``, ``mnist``, ``fashion_mnist``, ``cifar10`` or ``image_folder``.
    source: str
    #: What the user passed (a name or a path).
    location: str
    #: The evaluated split (``eval``, ``val``, ``.`` for a plain ImageFolder tree, ...).
    split: str
    class_names: tuple[str, ...]
    #: ``(N,)`` class index of every sample, in dataset order.
    labels: np.ndarray
    #: One id per sample: the path relative to the data root, or ``<source>:<split>:<index>``.
    sample_ids: tuple[str, ...]
    #: Channels and ``(height, width)`` of the images as stored (``None`` for files: each file
    #: has its own).
    native_channels: int | None
    native_size: tuple[int, int] | None
    #: Size of the training split, when the data has one (kept for cross-split checks).
    train_samples: int | None = None
    #: Folders next to the evaluated split that are not used.
    ignored_folders: tuple[str, ...] = ()
    #: What reading the data found that a user may want to know (rows skipped, ...).
    notes: tuple[str, ...] = ()
    _iterate: Callable[[InputSpec, int, int], Batches] = attrs.field(repr=False, alias="iterate")
    #: The evaluated split's raw images.
    raw: SplitSource = attrs.field(repr=False)
    #: Loads the training split's raw images on demand (``None`` when there is none).
    _train: Callable[[], SplitSource | None] = attrs.field(
        repr=False, alias="train", default=lambda: None
    )
    #: Files that could not be decoded; filled while iterating.
    skipped: list[SkippedImage] = attrs.field(factory=list)

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    def batches(self, spec: InputSpec, *, batch_size: int, workers: int = 0) -> Batches:
        """Yield ``(images, labels, indices)`` with images shaped and normalised per ``spec``."""
        self.skipped.clear()
        return self._iterate(spec, batch_size, workers)

    def images(self, indices: Sequence[int] | np.ndarray, spec: InputSpec) -> torch.Tensor:
        """The images at dataset positions ``indices``, as the model sees them (``spec``).

        For the few images a later step needs again (saliency maps); positions must be images
        that decoded before (the rows of an evaluation).
        """
        import torch

        positions = [int(i) for i in np.asarray(indices).reshape(-1)]
        if not positions:
            return torch.empty((0, spec.channels, *spec.size))
        if self.raw.arrays is not None:
            chunk = torch.from_numpy(np.ascontiguousarray(self.raw.arrays[positions]))
            return _fit(chunk.to(torch.float32).div_(255.0), spec)
        from bnnr_core.datasets.images import ImageBatchCollator, ImageFileDataset

        files = self.raw.files or ()
        dataset = ImageFileDataset(
            [files[i] for i in positions],
            [0] * len(positions),  # labels are not needed to fetch images
            channels=spec.channels,
            size=spec.size,
        )
        batch = ImageBatchCollator(
            channels=spec.channels, size=spec.size, mean=spec.mean, std=spec.std
        )([dataset[i] for i in range(len(dataset))])
        if batch.skipped:
            raise BnnrError(
                f"{batch.skipped[0].path} can no longer be read ({batch.skipped[0].reason})"
            )
        return batch.images

    def train_source(self) -> SplitSource | None:
        """The training split's raw images, loaded now; ``None`` when the data has none or it
        cannot be read (it is only used for cross-split checks)."""
        try:
            return self._train()
        except BnnrError:
            return None


def load_eval_data(
    data: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    multilabel: bool = False,
    label_names: Sequence[str] | None = None,
) -> EvalData:
    """Resolve ``--data`` without decoding any image yet.

    Single-label: a folder, ``digits``, ``mnist``, ``fashion_mnist`` or ``cifar10``.
    Multi-label (``multilabel=True``): a manifest file (CSV ``path,labels`` or JSON lines, see
    :mod:`bnnr_core.datasets.manifest`; ``label_names`` fixes the label order) or
    ``multidigits``, the bundled multi-label demo.

    :raises BnnrError: an unknown name that is not a folder either, a data set whose files are
        missing, an empty folder or one with a single class, data of the other task kind.
    """
    text = str(data).strip()
    path = Path(text).expanduser()
    name = text.lower().replace("-", "_")
    if multilabel:
        if path.is_file():
            return _manifest(path, label_names)
        if name in MULTILABEL_NAMES:
            if label_names:
                raise BnnrError(
                    f"--labels names the labels of a manifest; {name} has its own label names"
                )
            return _multidigits()
        if path.is_dir() or name in DATASET_NAMES:
            raise BnnrError(
                f"--data {text} has one label per image; multi-label analysis needs a manifest "
                "(CSV path,labels or JSON lines) or multidigits"
            )
        raise BnnrError(
            f"--data {text} is neither a manifest file nor a known data set; pass a CSV "
            f"(path,labels) or JSON-lines manifest, or one of: {', '.join(MULTILABEL_NAMES)}"
        )
    if path.is_dir():
        return _image_folder(path)
    if name == "digits":
        return _digits()
    if name in DATASET_NAMES:
        return _torchvision(name, data_dir, download)
    from bnnr_core.datasets.manifest import looks_like_manifest

    if name in MULTILABEL_NAMES or (path.is_file() and looks_like_manifest(path)):
        raise BnnrError(f"--data {text} is multi-label data; analyze it with --task multilabel")
    if path.exists():
        raise BnnrError(
            f"--data {text} is a file; pass a folder of class sub-folders or one of: "
            f"{', '.join(DATASET_NAMES)}"
        )
    raise BnnrError(
        f"--data {text} is neither an existing folder nor a known data set; pass a folder of "
        f"class sub-folders or one of: {', '.join(DATASET_NAMES)}"
    )


def _require_classes(class_names: Sequence[str], labels: np.ndarray, where: str) -> None:
    if labels.ndim == 2:
        if len(class_names) < 2 or not labels.any():
            raise BnnrError(
                f"{where} needs at least two labels and one image with a label; it has "
                f"{len(class_names)} label(s) and {int(labels.any(axis=1).sum())} labelled images"
            )
        return
    present = np.unique(labels)
    if present.size < 2:
        only = class_names[int(present[0])] if present.size else "none"
        raise BnnrError(
            f"{where} holds images of one class only ({only}); an analysis needs at least two "
            "classes with images"
        )


def _digits() -> EvalData:
    from bnnr_core.datasets.digits import load_digits

    split = load_digits("eval")
    train = load_digits("train")

    def train_split() -> SplitSource:
        return _array_source("digits", "train", train.images[:, None], train.labels)

    return _arrays(
        "digits",
        "digits",
        "eval",
        split.images[:, None],  # (N, 1, 8, 8)
        split.labels,
        split.class_names,
        len(train.labels),
        train_split,
    )


def _torchvision(name: str, data_dir: str | os.PathLike[str] | None, download: bool) -> EvalData:
    from bnnr_core.datasets.torchvision_sets import load_torchvision_dataset

    root = Path(data_dir) if data_dir is not None else Path("data")
    split = load_torchvision_dataset(name, root, split="eval", download=download)

    def train_split() -> SplitSource:
        train = load_torchvision_dataset(name, root, split="train", download=False)
        return _array_source(name, "train", train.images, train.labels)

    return _arrays(
        name, name, "eval", split.images, split.labels, split.class_names, None, train_split
    )


def _arrays(
    source: str,
    location: str,
    split: str,
    images: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    train_samples: int | None,
    train: Callable[[], SplitSource | None],
) -> EvalData:
    labels = np.asarray(labels, dtype=np.int64)
    _require_classes(class_names, labels, f"the {source} evaluation split")
    native_channels, native_size = (
        int(images.shape[1]),
        (int(images.shape[2]), int(images.shape[3])),
    )

    def iterate(spec: InputSpec, batch_size: int, workers: int) -> Batches:
        import torch

        for start in range(0, images.shape[0], batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
            batch = _fit(chunk.to(torch.float32).div_(255.0), spec)
            stop = start + chunk.shape[0]
            yield (
                batch,
                torch.from_numpy(labels[start:stop]),
                torch.arange(start, stop, dtype=torch.int64),
            )

    raw = _array_source(source, split, images, labels)
    return EvalData(
        source=source,
        location=location,
        split=split,
        class_names=tuple(class_names),
        labels=labels,
        sample_ids=raw.sample_ids,
        native_channels=native_channels,
        native_size=native_size,
        train_samples=train_samples,
        iterate=iterate,
        raw=raw,
        train=train,
    )


def _array_source(source: str, split: str, images: np.ndarray, labels: np.ndarray) -> SplitSource:
    labels = np.asarray(labels, dtype=np.int64)
    return SplitSource(
        name=split,
        labels=labels,
        sample_ids=tuple(f"{source}:{split}:{index}" for index in range(labels.shape[0])),
        arrays=images,
    )


def _fit(images: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """Float images in ``[0, 1]`` brought to ``spec``: channels, size, normalisation."""
    import torch.nn.functional as F

    channels = images.shape[1]
    if channels != spec.channels:
        if channels == 1:
            images = images.expand(-1, spec.channels, -1, -1)
        elif spec.channels == 1:
            # ITU-R BT.601 luma, what PIL's convert("L") uses for files.
            weights = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images * weights).sum(dim=1, keepdim=True)
        else:  # pragma: no cover - check_input_spec rejects this before any batch
            raise BnnrError(f"cannot turn {channels}-channel images into {spec.channels}")
    if tuple(images.shape[-2:]) != spec.size:
        images = F.interpolate(images, size=spec.size, mode="bilinear", align_corners=False)
    if spec.mean is not None and spec.std is not None:
        mean = images.new_tensor(spec.mean).view(1, -1, 1, 1)
        std = images.new_tensor(spec.std).view(1, -1, 1, 1)
        images = (images - mean) / std
    return images.contiguous()


def _image_folder(path: Path) -> EvalData:
    from bnnr_core.datasets.imagefolder import resolve_image_folder

    layout = resolve_image_folder(path)

    def file_source(image_split: Any) -> SplitSource:
        return SplitSource(
            name=image_split.name,
            labels=np.asarray(image_split.labels, dtype=np.int64),
            sample_ids=tuple(_relative(file, layout.root) for file in image_split.files),
            files=tuple(image_split.files),
        )

    train_split = layout.train_split
    return _files(
        "image_folder",
        path,
        file_source(layout.eval_split),
        layout.class_names,
        (lambda: file_source(train_split)) if train_split is not None else (lambda: None),
        train_samples=len(train_split) if train_split is not None else None,
        ignored_folders=layout.ignored_folders,
        where=str(layout.eval_split.root),
    )


def _files(
    source: str,
    location: Path,
    raw: SplitSource,
    class_names: Sequence[str],
    train: Callable[[], SplitSource | None],
    *,
    train_samples: int | None,
    where: str,
    ignored_folders: tuple[str, ...] = (),
    notes: tuple[str, ...] = (),
) -> EvalData:
    """Evaluation data read from image files; labels (class indices or multi-hot rows) are
    looked up by file position, so a file that cannot be decoded never shifts the others."""
    labels = np.asarray(raw.labels, dtype=np.int64)
    _require_classes(class_names, labels, where)
    files = raw.files or ()
    skipped: list[Any] = []

    def iterate(spec: InputSpec, batch_size: int, workers: int) -> Batches:
        import torch

        from bnnr_core.datasets.images import ImageFileDataset, iter_image_batches

        # Decoding carries a placeholder class index; the labels come from ``labels``.
        dataset = ImageFileDataset(files, [0] * len(files), channels=spec.channels, size=spec.size)
        for batch in iter_image_batches(
            dataset, batch_size=batch_size, num_workers=workers, mean=spec.mean, std=spec.std
        ):
            skipped.extend(batch.skipped)
            if batch.images.shape[0]:
                rows = torch.from_numpy(labels[batch.indices.numpy()])
                yield batch.images, rows, batch.indices

    return EvalData(
        source=source,
        location=str(location),
        split=raw.name,
        class_names=tuple(class_names),
        labels=labels,
        sample_ids=raw.sample_ids,
        native_channels=None,
        native_size=None,
        train_samples=train_samples,
        ignored_folders=ignored_folders,
        notes=notes,
        iterate=iterate,
        raw=raw,
        train=train,
        skipped=skipped,
    )


def _relative(file: Path, root: Path) -> str:
    try:
        return file.relative_to(root).as_posix()
    except ValueError:
        return file.as_posix()


def input_spec(
    data: EvalData,
    *,
    model_channels: int | None,
    model_input_size: tuple[int, int, int] | None,
    model_mean: Sequence[float] | None,
    model_std: Sequence[float] | None,
    image_size: tuple[int, int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> InputSpec:
    """Decide channels, size and normalisation: the checkpoint first, then the flags, then the
    data itself; an image folder with none of these is read at
    :data:`DEFAULT_FOLDER_SIDE` pixels.

    :raises BnnrError: for flags that contradict each other or the model.
    """
    source: dict[str, str] = {}
    norm_mean: tuple[float, ...] | None
    norm_std: tuple[float, ...] | None
    if model_input_size is not None:
        channels, height, width = model_input_size
        size = (height, width)
        source["channels"] = source["size"] = "checkpoint"
        if image_size is not None and tuple(image_size) != size:
            raise BnnrError(
                f"--image-size {image_size[0]}x{image_size[1]} contradicts the checkpoint, which "
                f"was trained on {height}x{width} images; drop --image-size"
            )
    else:
        channels = model_channels or data.native_channels or 3
        source["channels"] = (
            "checkpoint" if model_channels else "data" if data.native_channels else "default"
        )
        if image_size is not None:
            size, source["size"] = (int(image_size[0]), int(image_size[1])), "flags"
        elif data.native_size is not None:
            size, source["size"] = data.native_size, "data"
        else:
            size, source["size"] = (DEFAULT_FOLDER_SIDE, DEFAULT_FOLDER_SIDE), "default"
    if data.native_channels is not None and data.native_channels not in (1, channels):
        raise BnnrError(
            f"the model takes {channels}-channel images but {data.location} has "
            f"{data.native_channels}-channel images; use a model trained on this data"
        )
    if (mean is None) != (std is None):
        raise BnnrError("give both --mean and --std, or neither")
    if model_mean is not None and model_std is not None:
        if mean is not None and (
            tuple(mean) != tuple(model_mean) or tuple(std or ()) != tuple(model_std)
        ):
            raise BnnrError(
                "--mean/--std contradict the normalisation stored in the checkpoint; drop them"
            )
        norm_mean, norm_std, source["normalisation"] = (
            tuple(model_mean),
            tuple(model_std),
            "checkpoint",
        )
    elif mean is not None and std is not None:
        norm_mean, norm_std, source["normalisation"] = tuple(mean), tuple(std), "flags"
    else:
        norm_mean = norm_std = None
        source["normalisation"] = "none"
    for name, values in (("mean", norm_mean), ("std", norm_std)):
        if values is not None and len(values) not in (1, channels):
            raise BnnrError(
                f"--{name} needs 1 or {channels} values (one per channel), got {len(values)}"
            )
    if norm_std is not None and min(norm_std) <= 0:
        raise BnnrError("--std values must be positive")
    if norm_mean is not None and norm_std is not None and len(norm_mean) == 1 and channels > 1:
        norm_mean, norm_std = norm_mean * channels, norm_std * channels
    return InputSpec(channels=channels, size=size, mean=norm_mean, std=norm_std, source=source)


def _multidigits() -> EvalData:
    from bnnr_core.datasets.multidigits import load_multidigits

    split = load_multidigits("eval")

    def train_split() -> SplitSource:
        train = load_multidigits("train")
        return _array_source("multidigits", "train", train.images, train.labels)

    return _arrays(
        "multidigits",
        "multidigits",
        "eval",
        split.images,
        split.labels,
        split.class_names,
        None,
        train_split,
    )


def _manifest(path: Path, label_names: Sequence[str] | None) -> EvalData:
    from bnnr_core.datasets.manifest import read_manifest

    manifest = read_manifest(path, label_names=label_names)

    def file_source(manifest_split: Any) -> SplitSource:
        return SplitSource(
            name=manifest_split.name,
            labels=np.asarray(manifest_split.labels, dtype=np.int64),
            sample_ids=tuple(manifest_split.sample_ids),
            files=tuple(manifest_split.files),
        )

    train = manifest.train_split
    return _files(
        "manifest",
        path,
        file_source(manifest.eval_split),
        manifest.class_names,
        (lambda: file_source(train)) if train is not None else (lambda: None),
        train_samples=len(train.files) if train is not None else None,
        where=str(path),
        notes=tuple(manifest.notes),
    )
