"""Discovering, loading and describing plugins.

Every plugin, built-in or third-party, is found through the ``bnnr`` entry-point group and loaded
the same way: import, register with pluggy, validate its hooks, collect the components it
registers. Each plugin is loaded on its own; one that fails is recorded (``status="failed"``,
with the error) and skipped, so every command keeps working. ``BNNR_STRICT_PLUGINS=1`` makes such
a failure fatal instead.

Environment switches (read when :func:`load_plugins` runs, never at import):

* ``BNNR_LOAD_PLUGINS``: comma-separated allow-list of plugin or distribution names; when set
  (even to an empty string) only those are loaded, the others are listed as ``disabled``.
* ``BNNR_DISABLE_PLUGINS``: comma-separated deny-list, same names.
* ``BNNR_STRICT_PLUGINS``: ``1``/``true``/``yes`` turns a plugin failure into an error.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import pluggy

from bnnr_core import hookspecs
from bnnr_core._version import __version__
from bnnr_core.components import (
    COMPONENT_KINDS,
    Component,
    ComponentRegistrationError,
    validate_registration,
)
from bnnr_core.errors import PluginLoadError, UnknownComponentError
from bnnr_core.hooks import BnnrHooks
from bnnr_core.markers import PROJECT_NAME

if TYPE_CHECKING:
    from bnnr_core.events import Event

ENTRY_POINT_GROUP = "bnnr"
BUILTIN_DISTRIBUTION = "bnnr"
ENV_LOAD = "BNNR_LOAD_PLUGINS"
ENV_DISABLE = "BNNR_DISABLE_PLUGINS"
ENV_STRICT = "BNNR_STRICT_PLUGINS"

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_DISABLED = "disabled"


class EntryPointLike(Protocol):
    """What :func:`load_plugins` needs of an entry point (``importlib.metadata.EntryPoint``)."""

    @property
    def name(self) -> str: ...

    @property
    def value(self) -> str: ...

    def load(self) -> Any: ...


@attrs.frozen(kw_only=True)
class PluginRecord:
    """One plugin as ``bnnr plugins list`` shows it."""

    name: str
    version: str | None = None
    distribution: str | None = None
    builtin: bool = False
    module: str | None = None
    hooks: tuple[str, ...] = ()
    provides: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    status: str = STATUS_OK
    error: str | None = None
    reason: str | None = None
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The JSON object of ``bnnr plugins list --json``."""
        return {
            "name": self.name,
            "version": self.version,
            "distribution": self.distribution,
            "builtin": self.builtin,
            "module": self.module,
            "hooks": list(self.hooks),
            "provides": {kind: list(names) for kind, names in self.provides.items()},
            "status": self.status,
            "error": self.error,
            "reason": self.reason,
            "warnings": list(self.warnings),
        }


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _name_list(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def _normalise_dist(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _error_text(exc: BaseException, limit: int = 400) -> str:
    # One line for the table: multi-line messages (pluggy's validation errors) are joined.
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _traceback_tail(exc: BaseException, lines: int = 6) -> str:
    formatted = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return "".join(formatted[-lines:])


def make_plugin_manager() -> pluggy.PluginManager:
    """A pluggy manager with BNNR's hookspecs and nothing registered."""
    manager = pluggy.PluginManager(PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    return manager


@attrs.define
class PluginHost:
    """The loaded plugin set of one command: the pluggy manager, records and components."""

    manager: pluggy.PluginManager
    strict: bool = False
    records: list[PluginRecord] = attrs.field(factory=list)
    components: dict[str, dict[str, Component]] = attrs.field(
        factory=lambda: {kind: {} for kind in COMPONENT_KINDS}
    )
    hooks: BnnrHooks = attrs.field(init=False)
    tracebacks: dict[str, str] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        self.hooks = BnnrHooks(self.manager)

    # -- queries ------------------------------------------------------------------------------

    def record(self, name: str) -> PluginRecord:
        """The record of plugin ``name``; :class:`KeyError` when there is none."""
        for record in self.records:
            if record.name == name:
                return record
        raise KeyError(name)

    def available(self, kind: str) -> list[str]:
        """Sorted names of the components of ``kind`` the loaded plugins provide."""
        return sorted(self.components[kind])

    def component(self, kind: str, name: str) -> Component:
        """The component ``name`` of ``kind``, or a :class:`UnknownComponentError` that lists
        the available names and the plugins that failed to load."""
        try:
            return self.components[kind][name]
        except KeyError:
            pass
        label = kind.replace("_", " ")
        choices = ", ".join(self.available(kind)) or "none"
        failed = [r.name for r in self.records if r.status == STATUS_FAILED]
        hint = f" (plugins that failed to load: {', '.join(failed)})" if failed else ""
        raise UnknownComponentError(
            f"no {label} named {name!r} is provided by the loaded plugins; "
            f"available: {choices}{hint}. Run 'bnnr plugins list' to see every plugin."
        ) from None

    def event_observer(self) -> Callable[[Event], None]:
        """A callable for :class:`bnnr_core.events.EventLog` that dispatches ``bnnr_on_event``."""

        def observe(event: Event) -> None:
            self.hooks.on_event(event=event)

        return observe

    # -- loading ------------------------------------------------------------------------------

    def register(
        self,
        plugin: object,
        name: str,
        *,
        version: str | None = None,
        distribution: str | None = None,
        builtin: bool = False,
        module: str | None = None,
    ) -> PluginRecord:
        """Register one plugin object (a module or an instance) and collect its components.

        A failure is recorded (and raised as :class:`PluginLoadError` when the host is strict);
        the host is left as it was before the call.
        """
        if version is None:
            version = str(getattr(plugin, "__version__", "")) or None
        base: dict[str, Any] = {
            "name": name,
            "version": version,
            "distribution": distribution,
            "builtin": builtin,
            "module": module,
        }
        if self.manager.has_plugin(name) or any(r.name == name for r in self.records):
            return self._fail(
                base,
                f"a plugin named {name!r} is already loaded; the second one is skipped",
                None,
            )
        try:
            self.manager.register(plugin, name=name)
        except Exception as exc:
            # Older pluggy releases can leave a plugin half-registered after a failed validation.
            if self.manager.has_plugin(name):
                self.manager.unregister(name=name)
            return self._fail(base, _error_text(exc), exc)
        try:
            self._check_hooks(plugin)
            provided, warnings = self._collect_components(plugin, name, version)
        except Exception as exc:
            self.manager.unregister(plugin)
            return self._fail(base, _error_text(exc), exc)
        hook_names = sorted(caller.name for caller in (self.manager.get_hookcallers(plugin) or []))
        provides = {kind: tuple(names) for kind, names in provided.items() if names}
        if not hook_names:
            warnings.append("implements no bnnr hook (is @bnnr_core.hookimpl missing?)")
        record = PluginRecord(
            **base, hooks=tuple(hook_names), provides=provides, warnings=tuple(warnings)
        )
        self.records.append(record)
        return record

    def unregister(self, name: str) -> None:
        """Remove plugin ``name``, its record and its components."""
        plugin = self.manager.get_plugin(name)
        if plugin is not None:
            self.manager.unregister(plugin)
        self.records = [r for r in self.records if r.name != name]
        for by_name in self.components.values():
            for component_name in [n for n, c in by_name.items() if c.plugin == name]:
                del by_name[component_name]

    def disable(self, entry_point: EntryPointLike, reason: str, **facts: Any) -> None:
        self.records.append(
            PluginRecord(
                name=entry_point.name,
                module=entry_point.value,
                status=STATUS_DISABLED,
                reason=reason,
                **facts,
            )
        )

    def _fail(self, base: dict[str, Any], error: str, exc: BaseException | None) -> PluginRecord:
        record = PluginRecord(**base, status=STATUS_FAILED, error=error)
        self.records.append(record)
        if exc is not None:
            self.tracebacks[record.name] = _traceback_tail(exc)
        if self.strict:
            origin = (
                f" (from {record.distribution} {record.version})" if record.distribution else ""
            )
            raise PluginLoadError(
                f"plugin {record.name!r}{origin} failed to load: {error}. Unset "
                f"{ENV_STRICT} to skip broken plugins, or set {ENV_DISABLE}={record.name}."
            ) from exc
        return record

    def _check_hooks(self, plugin: object) -> None:
        # pluggy validates argument names against a spec at registration, but an implementation
        # of a hook that has no spec (a misspelling) would silently never run.
        for caller in self.manager.get_hookcallers(plugin) or []:
            if caller.spec is None:
                raise ComponentRegistrationError(
                    f"implements {caller.name!r}, which is not a bnnr hook (misspelled?); "
                    "see docs/plugins.md for the hook list"
                )

    def _collect_components(
        self, plugin: object, plugin_name: str, version: str | None
    ) -> tuple[dict[str, list[str]], list[str]]:
        collected: list[Component] = []
        for kind in COMPONENT_KINDS:

            def register(
                name: str,
                factory: Any,
                *,
                description: str = "",
                _kind: str = kind,
                **metadata: Any,
            ) -> None:
                validate_registration(_kind, name, factory)
                collected.append(
                    Component(
                        kind=_kind,
                        name=name,
                        factory=factory,
                        description=description,
                        plugin=plugin_name,
                        plugin_version=version or "unknown",
                        metadata=dict(metadata),
                    )
                )

            self.hooks.registration_call(kind)(register=register, plugin=plugin)

        provided: dict[str, list[str]] = {kind: [] for kind in COMPONENT_KINDS}
        warnings: list[str] = []
        for component in collected:
            existing = self.components[component.kind].get(component.name)
            if existing is not None:
                warnings.append(
                    f"{component.kind} {component.name!r} is already provided by plugin "
                    f"{existing.plugin!r}; this plugin's one is ignored"
                )
                continue
            self.components[component.kind][component.name] = component
            provided[component.kind].append(component.name)
        return provided, warnings


def _entry_point_distribution(entry_point: EntryPointLike) -> tuple[str | None, str | None]:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return None, None
    try:
        return dist.metadata["Name"], dist.version
    except Exception:  # a broken METADATA file must not stop discovery
        return getattr(dist, "name", None), None


def discover_entry_points() -> list[EntryPointLike]:
    """The entry points of the ``bnnr`` group, built-ins first, then by name."""
    found = list(metadata.entry_points(group=ENTRY_POINT_GROUP))

    def order(entry_point: EntryPointLike) -> tuple[bool, str]:
        dist_name, _ = _entry_point_distribution(entry_point)
        builtin = dist_name is not None and _normalise_dist(dist_name) == BUILTIN_DISTRIBUTION
        return (not builtin, entry_point.name)

    return sorted(found, key=order)


def load_plugins(
    *,
    autoload: bool = True,
    strict: bool | None = None,
    allow: Iterable[str] | None = None,
    deny: Iterable[str] | None = None,
    entry_points: Sequence[EntryPointLike] | None = None,
    environ: Mapping[str, str] | None = None,
) -> PluginHost:
    """Load the plugin set and return the :class:`PluginHost`.

    :param autoload: discover entry points; ``False`` gives an empty host (for tests and
        embedding), to which plugins can be added with :meth:`PluginHost.register`.
    :param strict: raise :class:`PluginLoadError` on the first failure; default from
        ``BNNR_STRICT_PLUGINS``.
    :param allow: only these plugin or distribution names; default from ``BNNR_LOAD_PLUGINS``.
    :param deny: never these names; default from ``BNNR_DISABLE_PLUGINS``.
    :param entry_points: use these instead of the installed ones (tests).
    :param environ: the environment to read switches from (default ``os.environ``).
    """
    env = os.environ if environ is None else environ
    if strict is None:
        strict = _truthy(env.get(ENV_STRICT))
    allowed = frozenset(allow) if allow is not None else _name_list(env.get(ENV_LOAD))
    denied = (
        frozenset(deny) if deny is not None else (_name_list(env.get(ENV_DISABLE)) or frozenset())
    )

    host = PluginHost(manager=make_plugin_manager(), strict=strict)
    if not autoload:
        return host
    candidates = list(entry_points) if entry_points is not None else discover_entry_points()
    for entry_point in candidates:
        _load_entry_point(host, entry_point, allowed, denied)
    return host


def _load_entry_point(
    host: PluginHost,
    entry_point: EntryPointLike,
    allowed: frozenset[str] | None,
    denied: frozenset[str],
) -> None:
    dist_name, dist_version = _entry_point_distribution(entry_point)
    builtin = dist_name is not None and _normalise_dist(dist_name) == BUILTIN_DISTRIBUTION
    if builtin and dist_version is None:
        dist_version = __version__
    facts: dict[str, Any] = {
        "version": dist_version,
        "distribution": dist_name,
        "builtin": builtin,
    }
    names = {entry_point.name}
    if dist_name:
        names |= {dist_name, _normalise_dist(dist_name)}
    if names & denied:
        host.disable(entry_point, f"listed in {ENV_DISABLE}", **facts)
        return
    if allowed is not None and not names & allowed:
        host.disable(entry_point, f"not listed in {ENV_LOAD}", **facts)
        return
    try:
        plugin = entry_point.load()
    except Exception as exc:
        host._fail(
            {"name": entry_point.name, "module": entry_point.value, **facts},
            _error_text(exc),
            exc,
        )
        return
    host.register(plugin, entry_point.name, module=entry_point.value, **facts)
