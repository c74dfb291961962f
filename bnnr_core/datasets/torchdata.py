"""torch ``Dataset`` of the bundled ``digits`` data set."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from bnnr_core.datasets import digits


class DigitsDataset(Dataset[tuple[torch.Tensor, int]]):
    """One split of ``digits`` as float tensors ``(1, 8, 8)`` and integer labels.

    Pixels are scaled to ``[0, 1]`` and, when ``normalize`` is true (the default), normalised
    with :data:`bnnr_core.datasets.digits.MEAN` / :data:`~bnnr_core.datasets.digits.STD` (the
    training split's statistics). The whole split is one tensor (``images``, ``(N, 1, 8, 8)``),
    so batched code can use it without a ``DataLoader``.
    """

    def __init__(self, split: str = "eval", *, normalize: bool = True) -> None:
        arrays = digits.load_digits(split)
        images = torch.from_numpy(arrays.images).to(torch.float32).div_(255.0).unsqueeze(1)
        if normalize:
            images = (images - digits.MEAN[0]) / digits.STD[0]
        self.split = split
        self.images = images
        self.labels = torch.from_numpy(arrays.labels)
        self.class_names = arrays.class_names
        self.mean: tuple[float, ...] = digits.MEAN if normalize else (0.0,)
        self.std: tuple[float, ...] = digits.STD if normalize else (1.0,)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])
