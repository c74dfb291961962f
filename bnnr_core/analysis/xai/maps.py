"""Computing maps: explaining keys in batches and measuring every map."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from bnnr_core.analysis import saliency as sal
from bnnr_core.analysis.xai.options import XaiOptions

if TYPE_CHECKING:
    import torch
    from torch import nn

    from bnnr_core.analysis.data import InputSpec
    from bnnr_core.analysis.evaluation import Evaluation


class _MapStore:
    """Statistics and faithfulness curves of every ``(row, class)`` key, plus the uint8 maps and
    display images of the keys that get an overlay."""

    def __init__(self, keys: np.ndarray, render: set[tuple[int, int]], steps: int) -> None:
        self.keys = keys
        self.index = {(int(row), int(cls)): i for i, (row, cls) in enumerate(keys)}
        self.render = render
        self.stats = {key: np.full(len(keys), np.nan) for key in sal.STAT_KEYS}
        self.curves = np.full((len(keys), 4, steps + 1), np.nan)
        self.done = np.zeros(len(keys), dtype=bool)
        self.maps: dict[tuple[int, int], np.ndarray] = {}
        self.images: dict[int, np.ndarray] = {}

    def pending(self) -> np.ndarray:
        return self.keys[~self.done]

    def record(
        self,
        keys: np.ndarray,
        stats: Mapping[str, np.ndarray],
        curves: np.ndarray,
        maps: Callable[[], np.ndarray],
        images: Callable[[], np.ndarray],
    ) -> None:
        positions = np.array([self.index[(int(r), int(c))] for r, c in keys], dtype=np.int64)
        for name, values in stats.items():
            self.stats[name][positions] = values
        self.curves[positions] = curves
        self.done[positions] = True
        wanted = [i for i, (r, c) in enumerate(keys) if (int(r), int(c)) in self.render]
        if wanted:
            map_array, image_array = maps(), images()
            for i in wanted:
                row, cls = int(keys[i][0]), int(keys[i][1])
                self.maps[(row, cls)] = map_array[i]
                self.images.setdefault(row, image_array[i])

    def merge(self, other: _MapStore) -> None:
        """Take over ``other``'s finished keys (a calibration run of the chosen method)."""
        for i in np.flatnonzero(other.done):
            key = (int(other.keys[i][0]), int(other.keys[i][1]))
            position = self.index.get(key)
            if position is None:
                continue
            for name in sal.STAT_KEYS:
                self.stats[name][position] = other.stats[name][i]
            self.curves[position] = other.curves[i]
            self.done[position] = True
        self.maps.update({k: v for k, v in other.maps.items() if k in self.render})
        for row, image in other.images.items():
            self.images.setdefault(row, image)

    def position(self, row: int, cls: int) -> int | None:
        position = self.index.get((int(row), int(cls)))
        if position is None or not self.done[position]:
            return None
        return position


class _MethodFailed(Exception):
    """The method failed on the first batch of a run (nothing was computed with it)."""


@attrs.define
class _Runner:
    """Explains keys in batches and measures every map."""

    model: nn.Module
    evaluation: Evaluation
    fetch_images: Callable[[np.ndarray], torch.Tensor]
    spec: InputSpec
    options: XaiOptions
    #: How faithfulness scores the explained class (:data:`~bnnr_core.analysis.saliency.SCORES`).
    score: str = "softmax"
    calls: int = 0

    def positions(self, rows: np.ndarray) -> np.ndarray:
        indices = self.evaluation.dataset_indices
        return rows if indices is None else np.asarray(indices)[rows]

    def run(
        self, method: Any, keys: np.ndarray, store: _MapStore, *, strict_first: bool
    ) -> list[str]:
        """Explain ``keys`` into ``store``; return one message per failed batch.

        :raises _MethodFailed: ``strict_first`` and the method fails on the first batch.
        """
        import torch

        from bnnr_core.inference import model_device

        device = model_device(self.model)
        size = max(1, int(self.options.batch_size))
        errors: list[str] = []
        name = getattr(method, "name", "method")
        for start in range(0, len(keys), size):
            batch = keys[start : start + size]
            rows, inverse = np.unique(batch[:, 0], return_inverse=True)
            try:
                images = self.fetch_images(self.positions(rows))
            except Exception as exc:
                errors.append(f"images of rows {rows[0]}..{rows[-1]} could not be read: {exc}")
                continue
            images = images[torch.as_tensor(inverse.reshape(-1))].to(device)
            targets = torch.as_tensor(batch[:, 1], device=device)
            try:
                self.calls += 1
                maps = _checked_maps(method.explain(self.model, images, targets), images)
            except Exception as exc:
                message = f"{name} failed on {len(batch)} maps: {type(exc).__name__}: {exc}"
                if strict_first and start == 0:
                    raise _MethodFailed(message) from exc
                errors.append(message)
                continue
            try:
                stats = {
                    key: value.cpu().numpy() for key, value in sal.map_statistics(maps).items()
                }
                tie = torch.as_tensor(
                    sal.tie_keys(self.options.seed, batch[:, 0], maps.shape[1] * maps.shape[2]),
                    device=device,
                )
                curves = (
                    sal.faithfulness_curves(
                        self.model,
                        images,
                        maps,
                        targets,
                        tie,
                        steps=self.options.faithfulness_steps,
                        score=self.score,
                    )
                    .cpu()
                    .numpy()
                )
            except Exception as exc:
                errors.append(
                    f"measuring {len(batch)} {name} maps failed: {type(exc).__name__}: {exc}"
                )
                continue
            store.record(
                batch,
                stats,
                curves,
                maps=functools.partial(sal.map_to_uint8, maps),
                images=functools.partial(sal.display_images, images, self.spec.mean, self.spec.std),
            )
        return errors


def _checked_maps(maps: Any, images: torch.Tensor) -> torch.Tensor:
    """A method's output as ``(N, H, W)`` float maps in ``[0, 1]`` at the input resolution."""
    import torch
    import torch.nn.functional as F

    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"explain returned {type(maps).__name__}, not a tensor")
    if maps.ndim == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    count, _, height, width = images.shape
    if maps.ndim != 3 or maps.shape[0] != count:
        raise ValueError(f"explain returned maps of shape {tuple(maps.shape)} for {count} images")
    maps = torch.nan_to_num(maps.detach().float().to(images.device), nan=0.0)
    if tuple(maps.shape[1:]) != (height, width):
        maps = F.interpolate(
            maps[:, None], size=(height, width), mode="bilinear", align_corners=False
        )[:, 0]
    return maps.clamp(0.0, 1.0)


@contextmanager
def _model_guard(model: nn.Module) -> Iterator[None]:
    """Eval mode for the block; afterwards every module's mode, every parameter's
    ``requires_grad`` and ``.grad`` are what they were."""
    from bnnr_core.inference import evaluation_mode

    parameters = list(model.parameters())
    flags = [parameter.requires_grad for parameter in parameters]
    grads = [parameter.grad for parameter in parameters]
    try:
        with evaluation_mode(model):
            yield
    finally:
        for parameter, flag, grad in zip(parameters, flags, grads, strict=True):
            parameter.requires_grad_(flag)
            parameter.grad = grad


def _margins(store: _MapStore, positions: np.ndarray) -> tuple[float, float]:
    """Mean deletion and insertion margins over random of the maps at ``positions``."""
    auc = sal.curve_auc(store.curves[positions])
    deletion = np.nanmean(auc[:, 2] - auc[:, 0]) if positions.size else np.nan
    insertion = np.nanmean(auc[:, 1] - auc[:, 3]) if positions.size else np.nan
    return float(deletion), float(insertion)


def _num(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None
