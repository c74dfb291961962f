"""Building an untrained model from an architecture name.

``arch`` is either a name registered through ``bnnr_register_architectures`` (``small_cnn``,
``resnet18``, ...) or ``package.module:factory`` for a user's own code.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from bnnr_core.errors import BnnrError, UnknownComponentError
from bnnr_core.plugins import PluginHost


def build_architecture(
    arch: str,
    *,
    host: PluginHost,
    num_classes: int,
    in_channels: int,
    options: Mapping[str, Any],
) -> nn.Module:
    """An untrained model of architecture ``arch``.

    Registered factories receive ``num_classes``, ``in_channels`` and ``options``; a
    ``package.module:factory`` receives those of them its signature accepts (``in_channels``
    only when it names it).

    :raises BnnrError: unknown name, unimportable factory, or a factory that rejects the
        arguments or returns something other than an ``nn.Module``.
    """
    if ":" in arch:
        factory = _import_factory(arch)
        kwargs = _accepted_kwargs(factory, num_classes, in_channels, options)
    else:
        try:
            component = host.component("architecture", arch)
        except UnknownComponentError as exc:
            choices = ", ".join(host.available("architecture")) or "none (no plugin provides one)"
            raise UnknownComponentError(
                f"unknown architecture {arch!r}; pass --arch with one of: {choices}, or "
                "package.module:factory for your own model"
            ) from exc
        factory = component.factory
        kwargs = {"num_classes": num_classes, "in_channels": in_channels, **options}
    try:
        model = factory(**kwargs)
    except (TypeError, ValueError) as exc:
        raise BnnrError(
            f"architecture {arch!r} could not be built with {_show(kwargs)} ({exc}); check "
            "--arch and its options"
        ) from exc
    if not isinstance(model, nn.Module):
        raise BnnrError(
            f"architecture {arch!r} returned a {type(model).__name__}, not a torch.nn.Module; "
            "point --arch at a function that builds the model"
        )
    return model


def _import_factory(arch: str) -> Callable[..., Any]:
    module_name, _, attribute = arch.partition(":")
    if not module_name or not attribute:
        raise BnnrError(f"--arch {arch!r} must look like package.module:factory")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BnnrError(
            f"cannot import module {module_name!r} named by --arch {arch!r} ({exc}); install it "
            "or put it on PYTHONPATH"
        ) from exc
    factory: Any = module
    for part in attribute.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise BnnrError(f"module {module_name!r} has no {attribute!r}; check --arch {arch!r}")
    if not callable(factory):
        raise BnnrError(f"--arch {arch!r} names a {type(factory).__name__}, not a function")
    return factory


def _accepted_kwargs(
    factory: Callable[..., Any], num_classes: int, in_channels: int, options: Mapping[str, Any]
) -> dict[str, Any]:
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # some builtins and C extensions have no signature
        return {"num_classes": num_classes, **options}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    kwargs: dict[str, Any] = {}
    if "num_classes" in parameters or takes_any:
        kwargs["num_classes"] = num_classes
    # Only when named: many factories (torchvision's) pass **kwargs on to a model class that
    # would reject an unknown in_channels.
    if "in_channels" in parameters:
        kwargs["in_channels"] = in_channels
    kwargs.update(options)
    return kwargs


def _show(kwargs: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in kwargs.items()) or "no arguments"
