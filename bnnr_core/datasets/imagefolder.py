"""The layout of an image folder: which split to evaluate, its classes and files.

Two layouts are accepted:

* an ImageFolder tree, ``root/<class>/<image>`` (images may sit in nested folders of a class):
  the whole tree is the evaluation set;
* a root holding split folders, ``root/{train,val,...}/<class>/<image>``: the first of
  ``val``, ``valid``, ``validation``, ``test`` is evaluated, and ``train`` (when present) is
  kept for cross-split checks. All splits must hold the same class folders.

Nothing is decoded here (see :mod:`bnnr_core.datasets.images`); hidden files and folders and
files without an image extension are ignored. Files are sorted, so the order is deterministic.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from bnnr_core.errors import BnnrError

#: File extensions read as images (compared in lower case).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
#: Folder names taken as the evaluation split, in order of preference.
EVAL_SPLIT_NAMES = ("val", "valid", "validation", "test")
TRAIN_SPLIT_NAME = "train"
_SPLIT_NAMES = frozenset((*EVAL_SPLIT_NAMES, TRAIN_SPLIT_NAME))


@attrs.frozen(kw_only=True)
class ImageSplit:
    """The image files of one split and their class indices (into the layout's class names)."""

    name: str
    root: Path
    files: tuple[Path, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.files)


@attrs.frozen(kw_only=True)
class ImageFolderLayout:
    """What :func:`resolve_image_folder` found."""

    root: Path
    #: Class folder names, sorted; a label is an index into this tuple.
    class_names: tuple[str, ...]
    #: The split to evaluate (``name`` is ``"."`` for a plain ImageFolder tree).
    eval_split: ImageSplit
    train_split: ImageSplit | None = None
    #: Folders of the root that are not used: a second evaluation split (``test`` when ``val``
    #: is evaluated) or folders that are not splits next to split folders.
    ignored_folders: tuple[str, ...] = ()


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(
        (child for child in folder.iterdir() if child.is_dir() and not child.name.startswith(".")),
        key=lambda child: child.name,
    )


def _image_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for directory, subdirs, names in os.walk(folder):
        subdirs[:] = sorted(name for name in subdirs if not name.startswith("."))
        found.extend(
            Path(directory, name)
            for name in sorted(names)
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
        )
    return found


def _class_folders(split_root: Path) -> dict[str, Path]:
    return {child.name: child for child in _visible_dirs(split_root)}


def _scan_split(name: str, split_root: Path, class_names: tuple[str, ...]) -> ImageSplit:
    files: list[Path] = []
    labels: list[int] = []
    for label, class_name in enumerate(class_names):
        class_files = _image_files(split_root / class_name)
        files.extend(class_files)
        labels.extend([label] * len(class_files))
    return ImageSplit(name=name, root=split_root, files=tuple(files), labels=tuple(labels))


def _check_classes(root: Path, where: str, classes: dict[str, Path]) -> tuple[str, ...]:
    if not classes:
        loose = [p.name for p in root.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS][:1]
        if loose:
            raise BnnrError(
                f"{where} holds images but no class sub-folders; put each class's images in a "
                "sub-folder named after the class"
            )
        raise BnnrError(
            f"{where} is empty (no class sub-folders); it must hold one sub-folder of images "
            "per class"
        )
    if len(classes) == 1:
        (only,) = classes
        raise BnnrError(
            f"{where} has only one class folder ({only!r}); classification needs at least two "
            "classes, one sub-folder each"
        )
    return tuple(sorted(classes))


def _differences(names: list[str], sets: list[set[str]]) -> str:
    union = set().union(*sets)
    parts = []
    for name, classes in zip(names, sets, strict=True):
        missing = sorted(union - classes)
        if missing:
            parts.append(f"{name}/ lacks {', '.join(missing)}")
    return "; ".join(parts)


def resolve_image_folder(path: str | os.PathLike[str]) -> ImageFolderLayout:
    """Find the evaluation split (and the training split, if any) of an image folder.

    :raises BnnrError: for a missing path, a file, an empty folder, a folder with one class,
        split folders without an evaluation split, or splits whose classes differ.
    """
    root = Path(path)
    if not root.exists():
        raise BnnrError(
            f"data folder {root} does not exist; pass a folder with one sub-folder per class, "
            "or one holding train/ and val/"
        )
    if not root.is_dir():
        raise BnnrError(
            f"{root} is a file, not a folder; pass the folder that holds one sub-folder of "
            "images per class"
        )
    children = _class_folders(root)
    split_folders = {name.lower(): folder for name, folder in children.items()}
    if _SPLIT_NAMES & set(split_folders):
        return _resolve_splits(root, split_folders, children)
    class_names = _check_classes(root, str(root), children)
    split = _scan_split(".", root, class_names)
    _require_images(split, class_names)
    return ImageFolderLayout(root=root, class_names=class_names, eval_split=split)


def _resolve_splits(
    root: Path, split_folders: dict[str, Path], children: dict[str, Path]
) -> ImageFolderLayout:
    eval_names = [name for name in EVAL_SPLIT_NAMES if name in split_folders]
    if not eval_names:
        raise BnnrError(
            f"{root} has a train/ folder but no evaluation split; add val/ (or valid/, "
            "validation/, test/), or pass a folder of class sub-folders to evaluate"
        )
    eval_name = eval_names[0]
    used = [eval_name]
    if TRAIN_SPLIT_NAME in split_folders:
        used.append(TRAIN_SPLIT_NAME)
    class_sets = []
    for name in used:
        folder = split_folders[name]
        classes = _check_classes(folder, str(folder), _class_folders(folder))
        class_sets.append(set(classes))
    if len(class_sets) == 2 and class_sets[0] != class_sets[1]:
        raise BnnrError(
            f"the splits of {root} have different class folders "
            f"({_differences(used, class_sets)}); give every split the same class folders"
        )
    class_names = tuple(sorted(class_sets[0]))
    eval_split = _scan_split(eval_name, split_folders[eval_name], class_names)
    _require_images(eval_split, class_names)
    train_split = None
    if TRAIN_SPLIT_NAME in split_folders:
        train_split = _scan_split(TRAIN_SPLIT_NAME, split_folders[TRAIN_SPLIT_NAME], class_names)
    return ImageFolderLayout(
        root=root,
        class_names=class_names,
        eval_split=eval_split,
        train_split=train_split,
        ignored_folders=tuple(
            name for name, folder in children.items() if folder.name.lower() not in used
        ),
    )


def _require_images(split: ImageSplit, class_names: tuple[str, ...]) -> None:
    if not split.files:
        extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise BnnrError(
            f"the class folders of {split.root} ({', '.join(class_names[:5])}"
            f"{', ...' if len(class_names) > 5 else ''}) hold no image files ({extensions})"
        )
