"""A typed facade over the ``bnnr`` hooks.

The core never writes ``pm.hook.bnnr_xxx(...)`` by hand: it calls the methods below, which pass
keyword arguments with typed signatures, so a type checker catches any drift between the specs in
:mod:`bnnr_core.hookspecs` and their callers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

from bnnr_core.components import REGISTRATION_HOOKS, RegisterFn

if TYPE_CHECKING:
    from bnnr_core.events import Event

logger = logging.getLogger("bnnr")


class BnnrHooks:
    """Calls the hooks of one plugin manager."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self._manager = manager
        self._failed_observers: set[str] = set()

    # -- registration hooks: always called for ONE plugin, so components keep their provenance --

    def _one_plugin(self, hook_name: str, plugin: object) -> pluggy.HookCaller:
        others = [p for p in self._manager.get_plugins() if p is not plugin]
        return self._manager.subset_hook_caller(hook_name, remove_plugins=others)

    def register_tasks(self, *, register: RegisterFn, plugin: object) -> None:
        self._one_plugin("bnnr_register_tasks", plugin)(register=register)

    def register_augmentations(self, *, register: RegisterFn, plugin: object) -> None:
        self._one_plugin("bnnr_register_augmentations", plugin)(register=register)

    def register_xai_methods(self, *, register: RegisterFn, plugin: object) -> None:
        self._one_plugin("bnnr_register_xai_methods", plugin)(register=register)

    def register_data_quality_checks(self, *, register: RegisterFn, plugin: object) -> None:
        self._one_plugin("bnnr_register_data_quality_checks", plugin)(register=register)

    def register_failure_detectors(self, *, register: RegisterFn, plugin: object) -> None:
        self._one_plugin("bnnr_register_failure_detectors", plugin)(register=register)

    def register_exporters(self, *, register: RegisterFn, plugin: object) -> None:
        self._one_plugin("bnnr_register_exporters", plugin)(register=register)

    def register_architectures(self, *, register: RegisterFn, plugin: object) -> None:
        self._one_plugin("bnnr_register_architectures", plugin)(register=register)

    def registration_call(self, kind: str) -> Callable[..., None]:
        """The typed method that runs the registration hook of component ``kind``."""
        method: Callable[..., None] = getattr(self, REGISTRATION_HOOKS[kind].removeprefix("bnnr_"))
        return method

    # -- observers --------------------------------------------------------------------------

    def on_event(self, *, event: Event) -> None:
        """Give ``event`` to every observer; one observer's failure never reaches the run.

        An observer that raises is logged and receives no further events from this facade.
        """
        for impl in self._manager.hook.bnnr_on_event.get_hookimpls():
            if impl.plugin_name in self._failed_observers:
                continue
            kwargs: dict[str, Any] = {"event": event}
            try:
                impl.function(**{name: kwargs[name] for name in impl.argnames})
            except Exception:
                self._failed_observers.add(impl.plugin_name)
                logger.exception(
                    "event observer of plugin %r failed on event %s #%s; it receives no further "
                    "events of this run",
                    impl.plugin_name,
                    event.type,
                    event.sequence,
                )
