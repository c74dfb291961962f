"""Components: the named things plugins contribute through the ``bnnr_register_*`` hooks.

A plugin never hands the core a finished object. It calls ``register(name, factory, ...)`` and the
core records a :class:`Component` stamped with the plugin's name and version, so every artifact can
say which plugin produced what. Factories are called only when a command needs the component,
which keeps registration cheap: ``bnnr plugins list`` never imports torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs

#: Component kinds, in the order ``bnnr plugins list`` shows them. Each kind has one
#: registration hook named ``bnnr_register_<kind>s`` (see :data:`REGISTRATION_HOOKS`).
COMPONENT_KINDS: tuple[str, ...] = (
    "task",
    "augmentation",
    "xai_method",
    "data_quality_check",
    "failure_detector",
    "exporter",
    "architecture",
)

#: Registration hook name for each component kind.
REGISTRATION_HOOKS: Mapping[str, str] = {kind: f"bnnr_register_{kind}s" for kind in COMPONENT_KINDS}

_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_.\-]*$")


class RegisterFn(Protocol):
    """The callable a ``bnnr_register_*`` hook receives.

    ``register(name, factory, description="", **metadata)``: ``name`` is lower-case
    (letters, digits, ``_``, ``-``, ``.``), unique within its kind; ``factory`` is called with
    keyword arguments when a command needs the component; ``metadata`` holds JSON-friendly
    facts a host may use without building the component (e.g. an exporter's file names).
    """

    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        description: str = "",
        **metadata: Any,
    ) -> None: ...


@attrs.frozen(kw_only=True)
class Component:
    """One registered component and its provenance."""

    kind: str
    name: str
    factory: Callable[..., Any] = attrs.field(eq=False, repr=False)
    description: str = ""
    plugin: str
    plugin_version: str
    metadata: Mapping[str, Any] = attrs.field(factory=dict)

    def create(self, **kwargs: Any) -> Any:
        """Build the component by calling its factory with ``kwargs``."""
        return self.factory(**kwargs)

    @property
    def provenance(self) -> dict[str, str]:
        """``{"plugin": ..., "plugin_version": ...}``, for artifacts."""
        return {"plugin": self.plugin, "plugin_version": self.plugin_version}


class ComponentRegistrationError(ValueError):
    """A plugin called ``register`` with arguments the core cannot accept."""


def validate_registration(kind: str, name: object, factory: object) -> str:
    """Check one ``register`` call's arguments; return the name or raise with the reason."""
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise ComponentRegistrationError(
            f"{kind} name {name!r} is not valid: use lower-case letters, digits, '_', '-' or '.', "
            "starting with a letter"
        )
    if not callable(factory):
        raise ComponentRegistrationError(f"{kind} {name!r}: factory {factory!r} is not callable")
    return name
