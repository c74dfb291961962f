"""Near-linear search for close 64-bit hashes, and connected components of pairs.

:func:`near_pairs` finds every pair of hashes within Hamming distance ``radius`` without
comparing all pairs (multi-index hashing, Norouzi et al., CVPR 2012): the 64 bits are split into
``radius + 1`` bands; two hashes that differ in at most ``radius`` bits agree on at least one
whole band (pigeonhole), so only hashes sharing a band value are compared. With hashes spread
over the bands the work is close to linear in the number of hashes; many images sharing one band
value (very similar data) make it grow towards quadratic within that bucket only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

#: Bits of a hash.
HASH_BITS = 64

_BYTE_COUNTS = np.array([bin(value).count("1") for value in range(256)], dtype=np.uint8)


def popcount(values: np.ndarray) -> np.ndarray:
    """Set bits of each ``uint64`` value (``np.bitwise_count`` when numpy has it)."""
    values = np.ascontiguousarray(values, dtype=np.uint64)
    count = getattr(np, "bitwise_count", None)
    if count is not None:
        return np.asarray(count(values), dtype=np.int64)
    as_bytes = values.view(np.uint8).reshape(*values.shape, 8)
    return _BYTE_COUNTS[as_bytes].sum(axis=-1, dtype=np.int64)


def bands(radius: int) -> list[tuple[int, int]]:
    """``(shift, width)`` of the ``radius + 1`` contiguous bands covering the 64 bits."""
    count = radius + 1
    if not 1 <= count <= HASH_BITS:
        raise ValueError(f"radius must be between 0 and {HASH_BITS - 1}, not {radius}")
    widths = [HASH_BITS // count + (band < HASH_BITS % count) for band in range(count)]
    shifts = np.cumsum([0, *widths[:-1]])
    return [(int(shift), width) for shift, width in zip(shifts, widths, strict=True)]


def _bucket_pairs(keys: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every pair ``(a, b)``, ``a < b``, of positions with equal ``keys``, in batches: batch
    ``d`` pairs each position with the one ``d`` places after it in its bucket."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    sizes = np.diff(np.r_[starts, ordered.size])
    ends = np.repeat(starts + sizes, sizes)
    active = np.flatnonzero(ends - np.arange(ordered.size) > 1)
    offset = 1
    while active.size:
        first, second = order[active], order[active + offset]
        yield np.minimum(first, second), np.maximum(first, second)
        offset += 1
        active = active[ends[active] - active > offset]


def near_pairs(
    hashes: np.ndarray,
    radius: int,
    accept: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Every pair ``(i, j)``, ``i < j``, with ``popcount(hashes[i] ^ hashes[j]) <= radius`` and,
    when given, ``accept(i, j)`` true (a vectorised verification of candidate pairs).

    :returns: two ``int64`` arrays, sorted by ``i`` then ``j``, without repeats.
    """
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    found_i: list[np.ndarray] = []
    found_j: list[np.ndarray] = []
    for shift, width in bands(radius):
        keys = (hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        for first, second in _bucket_pairs(keys):
            close = popcount(hashes[first] ^ hashes[second]) <= radius
            first, second = first[close], second[close]
            if accept is not None and first.size:
                keep = np.asarray(accept(first, second), dtype=bool)
                first, second = first[keep], second[keep]
            found_i.append(first)
            found_j.append(second)
    empty = np.empty(0, dtype=np.int64)
    return unique_pairs(np.concatenate([empty, *found_i]), np.concatenate([empty, *found_j]))


def unique_pairs(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(min, max)`` of each pair, sorted, without repeats and without self-pairs."""
    low = np.minimum(first, second).astype(np.int64)
    high = np.maximum(first, second).astype(np.int64)
    keep = low != high
    stacked = np.unique(np.stack([low[keep], high[keep]], axis=1), axis=0)
    return stacked[:, 0], stacked[:, 1]


def components(count: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Connected component of each of ``count`` nodes linked by the pairs: ``(count,)`` ids, the
    smallest node of each component (vectorised label propagation with pointer jumping)."""
    labels = np.arange(count, dtype=np.int64)
    first = np.asarray(first, dtype=np.int64)
    second = np.asarray(second, dtype=np.int64)
    while first.size:
        smaller = np.minimum(labels[first], labels[second])
        before = labels.copy()
        np.minimum.at(labels, first, smaller)
        np.minimum.at(labels, second, smaller)
        np.minimum.at(labels, before, labels)  # pull each old root down to its new label
        while True:
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels = jumped
        if np.array_equal(labels, before):
            break
    return labels
