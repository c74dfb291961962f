"""Pytest fixtures for writing and testing BNNR plugins.

Installed with BNNR and loaded by pytest automatically (entry point ``pytest11``), so a plugin's
test suite can use these fixtures without any set-up:

``bnnr_host``
    A fresh :class:`~bnnr_core.plugins.PluginHost` with autoload off: no installed plugin is
    loaded, so a test sees only what it registers.
``register_temp_plugin``
    ``register_temp_plugin(plugin, name=None)`` registers a plugin object (a module or an
    instance with ``@bnnr_core.hookimpl`` methods) into ``bnnr_host`` through the same path entry
    points use, returns its :class:`~bnnr_core.plugins.PluginRecord`, and unregisters it when
    the test ends.
``tiny_model`` / ``tiny_dataset``
    A small deterministic CNN for 1x8x8 images with 3 classes, and a matching
    ``torch.utils.data.TensorDataset`` of 48 images (16 per class). torch is imported only when
    these fixtures are used.

:func:`fake_entry_point` builds an entry-point stand-in for testing discovery with
``load_plugins(entry_points=[...])``.

This module must stay cheap to import: pytest imports it in every test session of every
project that has BNNR installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs
import pytest

from bnnr_core.plugins import PluginHost, PluginRecord, load_plugins

if TYPE_CHECKING:
    import torch
    from torch.utils.data import TensorDataset

TINY_IMAGE_SHAPE = (1, 8, 8)
TINY_NUM_CLASSES = 3


@attrs.define
class FakeDistribution:
    """The part of ``importlib.metadata.Distribution`` the plugin loader reads."""

    name: str
    version: str

    @property
    def metadata(self) -> dict[str, str]:
        return {"Name": self.name}


@attrs.define
class FakeEntryPoint:
    """An entry point whose ``load()`` returns ``target`` (or raises it, if it is an exception)."""

    name: str
    target: Any
    dist: FakeDistribution | None = None
    value: str = ""

    def load(self) -> Any:
        if isinstance(self.target, BaseException):
            raise self.target
        if callable(self.target) and getattr(self.target, "_bnnr_lazy", False):
            return self.target()
        return self.target


def fake_entry_point(
    name: str,
    target: Any,
    *,
    distribution: str = "bnnr-example",
    version: str = "1.0.0",
    value: str | None = None,
) -> FakeEntryPoint:
    """An entry point of group ``bnnr`` for :func:`bnnr_core.plugins.load_plugins`.

    ``target`` is what ``load()`` returns; pass an exception instance to simulate a plugin that
    fails to import, or a zero-argument function decorated with :func:`lazy` to run code at load.
    """
    return FakeEntryPoint(
        name=name,
        target=target,
        dist=FakeDistribution(distribution, version),
        value=value or f"{distribution.replace('-', '_')}:{name}",
    )


def lazy(function: Callable[[], Any]) -> Callable[[], Any]:
    """Mark ``function`` so a :class:`FakeEntryPoint` calls it at ``load()`` time."""
    function._bnnr_lazy = True  # type: ignore[attr-defined]
    return function


@pytest.fixture
def bnnr_host() -> PluginHost:
    """A fresh plugin host with no plugin loaded (autoload off)."""
    return load_plugins(autoload=False, strict=False)


@pytest.fixture
def register_temp_plugin(bnnr_host: PluginHost) -> Iterator[Callable[..., PluginRecord]]:
    """Register plugins into ``bnnr_host`` for one test; they are removed afterwards."""
    names: list[str] = []

    def register(plugin: object, name: str | None = None, **facts: Any) -> PluginRecord:
        plugin_name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        names.append(plugin_name)
        return bnnr_host.register(plugin, plugin_name, **facts)

    try:
        yield register
    finally:
        for plugin_name in reversed(names):
            bnnr_host.unregister(plugin_name)


def make_tiny_model(seed: int = 0) -> torch.nn.Module:
    """A small deterministic CNN: ``(N, 1, 8, 8)`` images to 3 logits."""
    import torch
    from torch import nn

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = nn.Sequential(
            nn.Conv2d(1, 4, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(16, TINY_NUM_CLASSES),
        )
    finally:
        torch.random.set_rng_state(generator_state)
    return model.eval()


def make_tiny_dataset(per_class: int = 16, seed: int = 0) -> TensorDataset:
    """``per_class`` images of each of 3 classes; class ``k`` is brightest in band ``k``."""
    import torch
    from torch.utils.data import TensorDataset

    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(TINY_NUM_CLASSES).repeat_interleave(per_class)
    images = 0.1 * torch.rand((len(labels), *TINY_IMAGE_SHAPE), generator=generator)
    for class_index in range(TINY_NUM_CLASSES):
        rows = slice(class_index * 3, class_index * 3 + 2)
        images[labels == class_index, :, rows, :] += 0.8
    return TensorDataset(images, labels)


@pytest.fixture
def tiny_model() -> torch.nn.Module:
    """:func:`make_tiny_model` with seed 0."""
    return make_tiny_model()


@pytest.fixture
def tiny_dataset() -> TensorDataset:
    """:func:`make_tiny_dataset` with 16 images per class."""
    return make_tiny_dataset()
