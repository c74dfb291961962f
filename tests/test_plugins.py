"""Plugin discovery, isolation of broken plugins, strict mode, allow/deny lists, the facade."""

from __future__ import annotations

import logging
import subprocess
import sys
import types
from typing import Any

import pluggy
import pytest

from bnnr_core import hookimpl, hookspecs
from bnnr_core.components import COMPONENT_KINDS, REGISTRATION_HOOKS
from bnnr_core.errors import PluginLoadError, UnknownComponentError
from bnnr_core.events import Event
from bnnr_core.hooks import BnnrHooks
from bnnr_core.plugins import load_plugins
from bnnr_core.testing import fake_entry_point, lazy

BUILTINS = {
    "classification",
    "multilabel",
    "json_exporter",
    "html_exporter",
    "models",
    "failures",
    "data_quality",
    "xai",
}


def _plugin(name: str, **functions: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    for attribute, function in functions.items():
        setattr(module, attribute, function)
    return module


@hookimpl
def _register_two_xai(register: Any) -> None:
    register("ok_saliency", lambda: "built", description="a test method")
    register("ok_other", lambda: "other")


@hookimpl
def _register_raises(register: Any) -> None:
    register("never_seen", lambda: None)
    raise RuntimeError("boom while registering")


GOOD = _plugin("good", bnnr_register_xai_methods=_register_two_xai)


def _entry_points(*extra: Any) -> list[Any]:
    return [fake_entry_point("good", GOOD, distribution="bnnr-good", version="2.0"), *extra]


def test_builtin_plugins_load_through_the_real_entry_point_group() -> None:
    host = load_plugins(environ={})
    by_name = {record.name: record for record in host.records}
    assert set(by_name) >= BUILTINS
    for name in BUILTINS:
        record = by_name[name]
        assert record.status == "ok", record.error
        assert record.builtin is True
        assert record.distribution == "bnnr"
    assert "classification" in host.available("task")
    assert "multilabel" in host.available("task")
    assert host.component("exporter", "json").plugin == "json_exporter"


def test_components_carry_their_plugin_and_version() -> None:
    host = load_plugins(entry_points=_entry_points(), environ={})
    component = host.component("xai_method", "ok_saliency")
    assert component.plugin == "good"
    assert component.plugin_version == "2.0"
    assert component.description == "a test method"
    assert component.create() == "built"
    record = host.record("good")
    assert record.provides == {"xai_method": ("ok_saliency", "ok_other")}
    assert record.hooks == ("bnnr_register_xai_methods",)
    assert record.to_json()["provides"] == {"xai_method": ["ok_saliency", "ok_other"]}


def test_import_error_is_recorded_and_other_plugins_still_load() -> None:
    broken = fake_entry_point("broken", ImportError("No module named 'missing_dep'"))
    host = load_plugins(entry_points=_entry_points(broken), environ={})
    record = host.record("broken")
    assert record.status == "failed"
    assert record.error == "ImportError: No module named 'missing_dep'"
    assert record.distribution == "bnnr-example"
    assert host.record("good").status == "ok"
    assert "ok_saliency" in host.available("xai_method")


def test_exception_raised_while_importing_is_recorded() -> None:
    @lazy
    def import_module() -> Any:
        raise ZeroDivisionError("division by zero at import")

    host = load_plugins(entry_points=[fake_entry_point("crashy", import_module)], environ={})
    assert host.record("crashy").status == "failed"
    assert "ZeroDivisionError" in (host.record("crashy").error or "")
    assert "crashy" in host.tracebacks


def test_error_while_registering_components_drops_the_plugin_entirely() -> None:
    bad = _plugin("bad", bnnr_register_tasks=_register_raises)
    host = load_plugins(entry_points=_entry_points(fake_entry_point("bad", bad)), environ={})
    record = host.record("bad")
    assert record.status == "failed"
    assert record.error == "RuntimeError: boom while registering"
    assert "never_seen" not in host.available("task")
    assert not host.manager.has_plugin("bad")
    assert host.record("good").status == "ok"


def test_invalid_component_name_fails_the_plugin() -> None:
    @hookimpl
    def register_bad_name(register: Any) -> None:
        register("Has Spaces", lambda: None)

    plugin = _plugin("badname", bnnr_register_exporters=register_bad_name)
    host = load_plugins(entry_points=[fake_entry_point("badname", plugin)], environ={})
    assert host.record("badname").status == "failed"
    assert "'Has Spaces' is not valid" in (host.record("badname").error or "")


def test_misspelled_hook_is_a_failure_not_a_silent_no_op() -> None:
    @hookimpl
    def bnnr_register_xai_method(register: Any) -> None:  # missing the final "s"
        register("x", lambda: None)

    plugin = _plugin("typo", bnnr_register_xai_method=bnnr_register_xai_method)
    host = load_plugins(entry_points=[fake_entry_point("typo", plugin)], environ={})
    record = host.record("typo")
    assert record.status == "failed"
    assert "bnnr_register_xai_method" in (record.error or "")
    assert not host.manager.has_plugin("typo")


def test_hookimpl_with_an_argument_the_spec_lacks_fails_validation() -> None:
    @hookimpl
    def bnnr_register_tasks(register: Any, unknown_argument: Any) -> None:
        pass

    plugin = _plugin("wrongargs", bnnr_register_tasks=bnnr_register_tasks)
    host = load_plugins(entry_points=[fake_entry_point("wrongargs", plugin)], environ={})
    record = host.record("wrongargs")
    assert record.status == "failed"
    assert "unknown_argument" in (record.error or "")
    assert not host.manager.has_plugin("wrongargs")


def test_duplicate_component_names_keep_the_first_and_warn() -> None:
    twin = _plugin("twin", bnnr_register_xai_methods=_register_two_xai)
    host = load_plugins(entry_points=_entry_points(fake_entry_point("twin", twin)), environ={})
    assert host.component("xai_method", "ok_saliency").plugin == "good"
    record = host.record("twin")
    assert record.status == "ok"
    assert record.provides == {}
    assert any("already provided by plugin 'good'" in w for w in record.warnings)


def test_plugin_without_hooks_gets_a_warning() -> None:
    host = load_plugins(entry_points=[fake_entry_point("empty", _plugin("empty"))], environ={})
    assert host.record("empty").status == "ok"
    assert any("implements no bnnr hook" in w for w in host.record("empty").warnings)


def test_two_plugins_with_one_name_second_is_failed() -> None:
    other = _plugin("other", bnnr_register_tasks=_register_raises)
    host = load_plugins(
        entry_points=_entry_points(fake_entry_point("good", other, distribution="bnnr-clone")),
        environ={},
    )
    statuses = [r.status for r in host.records if r.name == "good"]
    assert statuses == ["ok", "failed"]


def test_strict_mode_by_argument_and_by_environment() -> None:
    broken = fake_entry_point("broken", ImportError("no module named x"))
    with pytest.raises(PluginLoadError, match=r"plugin 'broken' .* failed to load: ImportError"):
        load_plugins(entry_points=_entry_points(broken), strict=True, environ={})
    with pytest.raises(PluginLoadError):
        load_plugins(entry_points=_entry_points(broken), environ={"BNNR_STRICT_PLUGINS": "1"})
    host = load_plugins(entry_points=_entry_points(broken), environ={"BNNR_STRICT_PLUGINS": "0"})
    assert host.record("broken").status == "failed"


def test_allow_list_loads_only_named_plugins_by_plugin_or_distribution_name() -> None:
    second = fake_entry_point("second", _plugin("second"), distribution="bnnr-second")
    host = load_plugins(
        entry_points=_entry_points(second), environ={"BNNR_LOAD_PLUGINS": "bnnr-second"}
    )
    assert host.record("second").status == "ok"
    assert host.record("good").status == "disabled"
    assert host.record("good").reason == "not listed in BNNR_LOAD_PLUGINS"
    assert host.available("xai_method") == []

    host = load_plugins(entry_points=_entry_points(second), allow=["good"], environ={})
    assert host.record("good").status == "ok"
    assert host.record("second").status == "disabled"


def test_empty_allow_list_loads_nothing() -> None:
    host = load_plugins(entry_points=_entry_points(), environ={"BNNR_LOAD_PLUGINS": ""})
    assert [r.status for r in host.records] == ["disabled"]


def test_deny_list_disables_without_importing() -> None:
    imported = []

    @lazy
    def tracked() -> Any:
        imported.append(True)
        return _plugin("tracked")

    entry = fake_entry_point("tracked", tracked)
    host = load_plugins(entry_points=[entry], environ={"BNNR_DISABLE_PLUGINS": " other , tracked"})
    assert host.record("tracked").status == "disabled"
    assert host.record("tracked").reason == "listed in BNNR_DISABLE_PLUGINS"
    assert imported == []


def test_deny_list_of_a_builtin_disables_its_features() -> None:
    host = load_plugins(environ={"BNNR_DISABLE_PLUGINS": "multilabel"})
    assert host.record("multilabel").status == "disabled"
    assert "multilabel" not in host.available("task")
    with pytest.raises(UnknownComponentError, match="no task named 'multilabel'"):
        host.component("task", "multilabel")


def test_unknown_component_error_names_choices_and_failures() -> None:
    broken = fake_entry_point("broken", ImportError("x"))
    host = load_plugins(entry_points=_entry_points(broken), environ={})
    with pytest.raises(UnknownComponentError) as info:
        host.component("xai_method", "gradcam")
    message = str(info.value)
    assert "available: ok_other, ok_saliency" in message
    assert "plugins that failed to load: broken" in message


def test_register_temp_plugin_fixture_registers_and_cleans_up(
    bnnr_host: Any, register_temp_plugin: Any
) -> None:
    record = register_temp_plugin(GOOD, name="temp")
    assert record.status == "ok"
    assert bnnr_host.component("xai_method", "ok_saliency").plugin == "temp"
    assert bnnr_host.records[0].name == "temp"


def test_bnnr_host_fixture_starts_empty(bnnr_host: Any) -> None:
    assert bnnr_host.records == []
    assert all(bnnr_host.available(kind) == [] for kind in COMPONENT_KINDS)


def test_unregister_removes_components(bnnr_host: Any) -> None:
    bnnr_host.register(GOOD, "good")
    bnnr_host.unregister("good")
    assert bnnr_host.available("xai_method") == []
    assert not bnnr_host.manager.has_plugin("good")


def test_facade_has_a_typed_method_for_every_hookspec() -> None:
    spec_names = {
        name
        for name in dir(hookspecs)
        if name.startswith("bnnr_") and callable(getattr(hookspecs, name))
    }
    assert set(REGISTRATION_HOOKS.values()) | {"bnnr_on_event"} == spec_names
    for name in spec_names:
        assert callable(getattr(BnnrHooks, name.removeprefix("bnnr_")))


def _event(sequence: int) -> Event:
    return Event(
        schema_version="2.1",
        sequence=sequence,
        run_id="run_test",
        timestamp="2026-01-01T00:00:00+00:00",
        type="epoch_end",
        payload={"epoch": sequence},
    )


def test_failing_observer_is_isolated_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    received: list[int] = []

    class Recorder:
        @hookimpl
        def bnnr_on_event(self, event: Event) -> None:
            received.append(event.sequence)

    class Broken:
        calls = 0

        @hookimpl
        def bnnr_on_event(self, event: Event) -> None:
            Broken.calls += 1
            raise ValueError("tracker offline")

    host = load_plugins(autoload=False)
    host.register(Recorder(), "recorder")
    host.register(Broken(), "broken_observer")
    with caplog.at_level(logging.ERROR, logger="bnnr"):
        for sequence in (1, 2, 3):
            host.hooks.on_event(event=_event(sequence))
    assert received == [1, 2, 3]
    assert Broken.calls == 1
    assert "broken_observer" in caplog.text
    assert "tracker offline" in caplog.text


def test_specs_are_valid_for_pluggy() -> None:
    manager = pluggy.PluginManager("bnnr")
    manager.add_hookspecs(hookspecs)
    for name in [*REGISTRATION_HOOKS.values(), "bnnr_on_event"]:
        assert getattr(manager.hook, name).spec is not None


def test_event_log_dispatches_to_observer_plugins_after_writing(tmp_path: Any) -> None:
    from bnnr_core.events import EventLog, read_events

    seen: list[tuple[int, int]] = []
    log_path = tmp_path / "events.jsonl"

    class LineCounter:
        @hookimpl
        def bnnr_on_event(self, event: Event) -> None:
            # The hook promises the line is on disk before observers run.
            seen.append((event.sequence, len(read_events(log_path))))

    host = load_plugins(autoload=False)
    host.register(LineCounter(), "line_counter")
    with EventLog(log_path, "run_x", observer=host.event_observer()) as log:
        log.emit("run_started", {"run_name": "x"})
        log.emit("pipeline_complete", {})
    assert seen == [(1, 1), (2, 2)]


@pytest.mark.parametrize(
    "module", ["bnnr_classification", "bnnr_multilabel", "bnnr_models", "bnnr_export_json"]
)
def test_loading_a_builtin_plugin_imports_neither_torch_nor_numpy(module: str) -> None:
    # Registration runs for every command; it must stay cheap (docs/plugins.md, "Rules").
    code = (
        "import sys, importlib\n"
        "from bnnr_core.plugins import load_plugins\n"
        f"plugin = importlib.import_module({module!r})\n"
        f"record = load_plugins(autoload=False).register(plugin, {module!r})\n"
        "assert record.status == 'ok' and record.provides, record\n"
        "heavy = [name for name in ('torch', 'numpy') if name in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
