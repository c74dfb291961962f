"""What kind of file a model file is, judged from its bytes (never from its name)."""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
from pathlib import Path

from bnnr_core.errors import BnnrError

#: A TorchScript archive (``torch.jit.save``).
TORCHSCRIPT = "torchscript"
#: A ``torch.export`` program (``torch.export.save``, usually ``.pt2``).
TORCH_EXPORT = "torch_export"
#: A ``torch.save`` zip archive (state dict, checkpoint dict or pickled module).
TORCH_ZIP = "torch_zip"
#: A ``torch.save`` file in the pre-1.6 non-zip format.
TORCH_LEGACY = "torch_legacy"

_HASH_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of the file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sniff_container(path: Path) -> str:
    """One of :data:`TORCHSCRIPT`, :data:`TORCH_EXPORT`, :data:`TORCH_ZIP`, :data:`TORCH_LEGACY`.

    :raises BnnrError: when the file is damaged or not a PyTorch file at all.
    """
    with path.open("rb") as handle:
        head = handle.read(64)
    if head.startswith(b"PK"):
        return _sniff_zip(path)
    # torch.save's legacy format starts with a pickled magic number (protocol 2 opcode).
    if head.startswith(b"\x80"):
        return TORCH_LEGACY
    if _looks_like_safetensors(path, head):
        raise BnnrError(
            f"{path} is a safetensors file, which BNNR cannot read yet; load it with "
            "safetensors.torch.load_file and save the result with torch.save(state_dict, path)"
        )
    raise BnnrError(
        f"{path} is not a PyTorch model file (not a torch.save, TorchScript or torch.export "
        "archive); check that --model points at the right file"
    )


def _sniff_zip(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise BnnrError(
            f"{path} is a damaged or truncated archive ({exc}); copy or save the model again"
        ) from exc
    # Every archive torch writes keeps its records under one top-level folder.
    inner = {name.split("/", 1)[1] for name in names if "/" in name}
    if "archive_format" in inner or any(name.startswith("models/") for name in inner):
        return TORCH_EXPORT
    if "constants.pkl" in inner or any(name.startswith("code/") for name in inner):
        return TORCHSCRIPT
    if "data.pkl" in inner:
        return TORCH_ZIP
    raise BnnrError(
        f"{path} is a zip archive but not a PyTorch one (no data.pkl, code/ or models/ inside); "
        "pass the model file itself"
    )


def _looks_like_safetensors(path: Path, head: bytes) -> bool:
    # safetensors: an 8-byte little-endian header length, then a JSON object.
    if len(head) < 10 or head[8:9] != b"{":
        return False
    (header_length,) = struct.unpack("<Q", head[:8])
    if header_length > path.stat().st_size:
        return False
    with path.open("rb") as handle:
        handle.seek(8)
        try:
            json.loads(handle.read(min(header_length, 1 << 24)))
        except ValueError:
            return False
    return True
