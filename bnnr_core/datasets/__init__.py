"""Data sets: the bundled ``digits`` and image folders.

* :mod:`bnnr_core.datasets.digits`: ``load_digits(split)`` (numpy only).
* :mod:`bnnr_core.datasets.torchdata`: :class:`DigitsDataset`, a torch ``Dataset`` of it.
* :mod:`bnnr_core.datasets.torchvision_sets`: ``load_torchvision_dataset(name, data_dir)`` for
  MNIST, Fashion-MNIST and CIFAR-10 from local files (downloads only when asked).
* :mod:`bnnr_core.datasets.imagefolder`: ``resolve_image_folder(path)``, the layout of an image
  folder (classes, files per split), without decoding anything.
* :mod:`bnnr_core.datasets.images`: :class:`ImageFileDataset`, ``iter_image_batches`` and
  ``decode_images``, which decode image files with PIL and skip unreadable ones, recording why.
* :mod:`bnnr_core.datasets.manifest`: ``read_manifest(path)``, multi-label manifests (CSV
  ``path,labels`` or JSON lines).
* :mod:`bnnr_core.datasets.multidigits`: ``load_multidigits(split)``, the bundled multi-label
  demo (tiles of two or three digits), and ``write_multidigits_manifest(folder)``.

Names are imported on first use, so ``import bnnr_core.datasets`` imports neither torch nor PIL.
"""

from __future__ import annotations

from bnnr_core.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "DigitsSplit": "bnnr_core.datasets.digits",
    "load_digits": "bnnr_core.datasets.digits",
    "DigitsDataset": "bnnr_core.datasets.torchdata",
    "load_torchvision_dataset": "bnnr_core.datasets.torchvision_sets",
    "TorchvisionSplit": "bnnr_core.datasets.torchvision_sets",
    "TORCHVISION_DATASETS": "bnnr_core.datasets.torchvision_sets",
    "ImageFolderLayout": "bnnr_core.datasets.imagefolder",
    "ImageSplit": "bnnr_core.datasets.imagefolder",
    "resolve_image_folder": "bnnr_core.datasets.imagefolder",
    "IMAGE_EXTENSIONS": "bnnr_core.datasets.imagefolder",
    "ImageFileDataset": "bnnr_core.datasets.images",
    "ImageBatch": "bnnr_core.datasets.images",
    "ImageBatchCollator": "bnnr_core.datasets.images",
    "ImageItem": "bnnr_core.datasets.images",
    "decode_image_file": "bnnr_core.datasets.images",
    "SkippedImage": "bnnr_core.datasets.images",
    "iter_image_batches": "bnnr_core.datasets.images",
    "decode_images": "bnnr_core.datasets.images",
    "read_manifest": "bnnr_core.datasets.manifest",
    "Manifest": "bnnr_core.datasets.manifest",
    "ManifestSplit": "bnnr_core.datasets.manifest",
    "load_multidigits": "bnnr_core.datasets.multidigits",
    "MultiDigitsSplit": "bnnr_core.datasets.multidigits",
    "write_multidigits_manifest": "bnnr_core.datasets.multidigits",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
