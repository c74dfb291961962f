"""Speed of the data-quality step: the duplicate search at 1k, 10k and 100k images, and every
built-in check on 10,000 PNG files.

* **Duplicate search curve.** Synthetic 32x32 colour images held in memory (the 100k set would
  otherwise need 100,000 files), 1% exact and 1% near copies (±2 grey levels of noise) planted.
  The scan (hashes, thumbnails, statistics) and the ``duplicates`` check are timed separately;
  the check should grow near-linearly (multi-index hashing, no all-pairs comparison).
* **Full checks on files.** 10,000 32x32 PNG files in an image folder (written first, not
  timed), every installed check through :func:`run_data_quality`, thumbnails included; target
  under 15 s. Timed with the chosen number of decoding threads and with one.

    .venv/bin/python benchmarks/bench_data_quality.py [--sizes 1000 10000 100000] [--files 10000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _machine import describe

SIDE = 32


def _linear(size_in: int, size_out: int) -> np.ndarray:
    """``(size_out, size_in)`` linear-interpolation weights."""
    centres = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
    return np.stack(
        [np.interp(centres, np.arange(size_in), np.eye(size_in)[k]) for k in range(size_in)],
        axis=1,
    )


def synthetic(rng: np.random.Generator, count: int, side: int = SIDE) -> np.ndarray:
    """``count`` distinct natural-looking images, uint8 ``(count, 3, side, side)``: a smooth
    random colour field, two sharp rectangles and noise (vectorised; no per-image Python)."""
    grow = _linear(4, side)
    coarse = rng.uniform(0, 255, (count, 4, 4, 3))
    pixels = np.einsum("oh,bhwc,pw->bopc", grow, coarse, grow)
    axis = np.arange(side)
    for _ in range(2):
        low = rng.integers(0, side - 6, (count, 2))
        size = rng.integers(4, side // 2, (count, 2))
        rows = (axis >= low[:, :1]) & (axis < low[:, :1] + size[:, :1])
        cols = (axis >= low[:, 1:]) & (axis < low[:, 1:] + size[:, 1:])
        mask = rows[:, :, None] & cols[:, None, :]
        colour = rng.uniform(0, 255, (count, 1, 1, 3))
        pixels = np.where(mask[..., None], colour, pixels)
    pixels += rng.normal(0, 8, pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8).transpose(0, 3, 1, 2).copy()


def planted(count: int, seed: int = 0) -> np.ndarray:
    """``count`` images of which 1% are exact and 1% near copies of others."""
    rng = np.random.default_rng(seed)
    images = synthetic(rng, count)
    copies = max(1, count // 100)
    sources = rng.choice(count // 2, 2 * copies, replace=False)
    images[count - copies :] = images[sources[:copies]]
    noise = rng.integers(-2, 3, images[sources[copies:]].shape)
    near = np.clip(images[sources[copies:]].astype(np.int16) + noise, 0, 255).astype(np.uint8)
    images[count - 2 * copies : count - copies] = near
    return images


def duplicate_curve(sizes: list[int]) -> list[str]:
    from bnnr_data_quality.duplicates import DuplicatesCheck

    from bnnr_core.analysis.data import SplitSource
    from bnnr_core.analysis.data_quality import build_view

    check = DuplicatesCheck()
    rows = [
        "| images | scan (s) | duplicates check (s) | µs per image (check) | groups found "
        "(exact / near) | planted (exact / near) |",
        "|---:|---:|---:|---:|---|---|",
    ]
    for count in sizes:
        images = planted(count)
        source = SplitSource(
            name="eval",
            labels=np.zeros(count, dtype=np.int64),
            sample_ids=tuple(f"bench:{k}" for k in range(count)),
            arrays=images,
        )
        start = time.perf_counter()
        view = build_view(source, class_names=("one",))
        scanned = time.perf_counter() - start
        start = time.perf_counter()
        issues = check.run(view, config=dict(DuplicatesCheck.defaults))
        checked = time.perf_counter() - start
        groups = [group for issue in issues for group in issue.get("groups", ())]
        exact = sum(group["kind"] == "exact" for group in groups)
        copies = max(1, count // 100)
        rows.append(
            f"| {count:,} | {scanned:.2f} | {checked:.2f} | {1e6 * checked / count:.1f} | "
            f"{exact} / {len(groups) - exact} | {copies} / {copies} |"
        )
    return rows


def write_folder(root: Path, count: int) -> None:
    from PIL import Image

    images = planted(count, seed=1)
    for index, image in enumerate(images):
        folder = root / f"class_{index % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{index:06d}.png")


def full_checks(count: int) -> list[str]:
    from bnnr_core.analysis.data import load_eval_data
    from bnnr_core.analysis.data_quality import DataQualityOptions, run_data_quality
    from bnnr_core.plugins import load_plugins

    work = Path(tempfile.mkdtemp(prefix="bnnr-bench-dq-"))
    try:
        write_folder(work / "data", count)
        host = load_plugins()
        rows = [
            "| files | decoding threads | wall time (s) | issue types | duplicate groups |",
            "|---:|---|---:|---:|---:|",
        ]
        for workers, label in ((0, "auto"), (1, "1")):
            data = load_eval_data(str(work / "data"))
            out = work / f"out_{workers}" / "artifacts"
            start = time.perf_counter()
            result = run_data_quality(
                host=host,
                data=data,
                evaluation=None,
                options=DataQualityOptions(workers=workers),
                artifacts_dir=out,
            )
            elapsed = time.perf_counter() - start
            summary = result.sections["data_quality_summary"]
            rows.append(
                f"| {count:,} | {label} | {elapsed:.2f} | {summary['issue_types']} | "
                f"{summary['duplicate_groups']} |"
            )
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--files", type=int, default=10_000)
    args = parser.parse_args()
    print("Duplicate search (in-memory 32x32 images):\n")
    print("\n".join(duplicate_curve(args.sizes)))
    print(f"\nEvery check on {args.files:,} 32x32 PNG files (target < 15 s):\n")
    print("\n".join(full_checks(args.files)))
    print(f"\n{describe()}")


if __name__ == "__main__":
    main()
