"""The bundled demo: a small CNN trained on the bundled ``digits`` in seconds, offline.

Used by ``bnnr demo`` and by the analyze speed benchmark, so both analyze the same model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from bnnr_core.plugins import PluginHost

if TYPE_CHECKING:
    from torch import nn

#: Architecture and training recipe of the demo model.
DEMO_ARCH = "small_cnn"
DEMO_EPOCHS = 3
DEMO_BATCH_SIZE = 64
DEMO_LEARNING_RATE = 1e-2


def train_digits_model(host: PluginHost, *, seed: int = 0, epochs: int = DEMO_EPOCHS) -> nn.Module:
    """Train the built-in ``small_cnn`` on the digits training split (1437 images), seeded:
    the same weights on every run of the same machine and libraries."""
    import torch
    from torch.utils.data import DataLoader

    from bnnr_core.datasets.torchdata import DigitsDataset

    task = host.component("task", "classification").create()
    torch.manual_seed(seed)
    model = host.component("architecture", DEMO_ARCH).create(num_classes=10, in_channels=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=DEMO_LEARNING_RATE)
    loader = DataLoader(
        DigitsDataset("train"),
        batch_size=DEMO_BATCH_SIZE,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    model.train()
    for _epoch in range(epochs):
        for images, labels in loader:
            optimizer.zero_grad()
            task.per_sample_loss(model(images), labels).mean().backward()
            optimizer.step()
    model.eval()
    return model


def save_digits_checkpoint(
    host: PluginHost, path: str | os.PathLike[str], *, seed: int = 0, epochs: int = DEMO_EPOCHS
) -> Path:
    """Train the demo model and save it as a BNNR checkpoint (architecture, class names, input
    size and normalisation included) at ``path``."""
    from bnnr_core.checkpoints import save_checkpoint
    from bnnr_core.datasets.digits import CLASS_NAMES, INPUT_SIZE, MEAN, STD

    model = train_digits_model(host, seed=seed, epochs=epochs)
    return save_checkpoint(
        model,
        path,
        arch=DEMO_ARCH,
        arch_options={"num_classes": 10, "in_channels": 1},
        class_names=list(CLASS_NAMES),
        input_size=INPUT_SIZE,
        mean=MEAN,
        std=STD,
    )


#: Epochs of the multi-label demo model (2000 tiles of two or three digits).
MULTILABEL_EPOCHS = 6


def train_multidigits_model(
    host: PluginHost, *, seed: int = 0, epochs: int = MULTILABEL_EPOCHS
) -> nn.Module:
    """Train ``small_cnn`` with 10 sigmoid outputs on the bundled multi-label ``multidigits``
    training split (tiles holding two or three digits), seeded."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from bnnr_core.datasets.multidigits import MEAN, STD, load_multidigits

    split = load_multidigits("train")
    images = (torch.from_numpy(split.images).float() / 255.0 - MEAN[0]) / STD[0]
    dataset = TensorDataset(images, torch.from_numpy(split.labels).float())
    task = host.component("task", "multilabel").create()
    torch.manual_seed(seed)
    model = host.component("architecture", DEMO_ARCH).create(num_classes=10, in_channels=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=DEMO_LEARNING_RATE)
    loader = DataLoader(
        dataset,
        batch_size=DEMO_BATCH_SIZE,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    model.train()
    for _epoch in range(epochs):
        for batch, targets in loader:
            optimizer.zero_grad()
            task.per_sample_loss(model(batch), targets).mean().backward()
            optimizer.step()
    model.eval()
    return model


def save_multidigits_checkpoint(
    host: PluginHost,
    path: str | os.PathLike[str],
    *,
    seed: int = 0,
    epochs: int = MULTILABEL_EPOCHS,
) -> Path:
    """Train the multi-label demo model and save it as a BNNR checkpoint (task
    ``multilabel``)."""
    from bnnr_core.checkpoints import save_checkpoint
    from bnnr_core.datasets.multidigits import INPUT_SIZE, MEAN, STD, load_multidigits

    model = train_multidigits_model(host, seed=seed, epochs=epochs)
    return save_checkpoint(
        model,
        path,
        arch=DEMO_ARCH,
        arch_options={"num_classes": 10, "in_channels": 1},
        class_names=list(load_multidigits("eval").class_names),
        task="multilabel",
        input_size=INPUT_SIZE,
        mean=MEAN,
        std=STD,
    )
