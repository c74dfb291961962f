"""The CLI skeleton: help for every command, version, plugins list, error handling, lazy imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from bnnr_core._version import __version__
from bnnr_core.cli import BnnrGroup, cli
from bnnr_core.errors import BnnrError
from bnnr_core.testing import fake_entry_point

REPO = Path(__file__).resolve().parents[1]


def _all_command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    ctx = click.Context(group)
    paths = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths.extend(_all_command_paths(command, (*prefix, name)))
    return paths


def test_help_of_every_command_renders() -> None:
    runner = CliRunner()
    paths = _all_command_paths(cli)
    assert ("plugins", "list") in paths and ("version",) in paths
    for path in [(), *paths]:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage: " in result.output


def test_version_lists_libraries_and_plugins_from_metadata() -> None:
    result = CliRunner().invoke(cli, ["version"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"bnnr {__version__}"
    assert f"torch {metadata.version('torch')}" in lines
    assert f"torchvision {metadata.version('torchvision')}" in lines
    assert "classification-" in lines[-1] and "multilabel-" in lines[-1]


def test_version_json() -> None:
    result = CliRunner().invoke(cli, ["version", "--json"])
    document = json.loads(result.output)
    assert document["bnnr"] == __version__
    assert document["libraries"]["torch"] == metadata.version("torch")
    assert document["plugins"]["classification"]["status"] == "ok"


def test_dash_dash_version_flag() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_plugins_list_table_shows_every_builtin_ok() -> None:
    result = CliRunner().invoke(cli, ["plugins", "list"], env={"BNNR_DISABLE_PLUGINS": None})
    assert result.exit_code == 0, result.output
    rows = {
        line.split()[0]: line.split() for line in result.output.splitlines()[1:] if line.strip()
    }
    for name in ("classification", "multilabel", "json_exporter"):
        assert rows[name][1] == __version__
        assert rows[name][2] == "ok"
        assert rows[name][3] == "yes"
    assert "task: classification" in result.output
    # long lists are shortened in the table (never in --json)
    assert "architecture: small_cnn, " in result.output
    assert " more)" in result.output
    assert result.output.splitlines()[0].split() == [
        "NAME",
        "VERSION",
        "STATUS",
        "BUILTIN",
        "PROVIDES",
    ]


def test_plugins_list_json_fields() -> None:
    result = CliRunner().invoke(cli, ["plugins", "list", "--json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.output)
    required = {
        "name",
        "version",
        "distribution",
        "builtin",
        "hooks",
        "provides",
        "status",
        "error",
    }
    for item in listing:
        assert required <= set(item)
    by_name = {item["name"]: item for item in listing}
    assert by_name["classification"]["provides"] == {"task": ["classification"]}
    assert by_name["classification"]["hooks"] == ["bnnr_register_tasks"]
    assert by_name["json_exporter"]["provides"] == {"exporter": ["json"]}


def test_plugins_list_hook_filter() -> None:
    result = CliRunner().invoke(
        cli, ["plugins", "list", "--json", "--hook", "bnnr_register_exporters"]
    )
    names = [item["name"] for item in json.loads(result.output)]
    assert names == ["html_exporter", "json_exporter"]


@pytest.fixture
def with_broken_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    from bnnr_core import plugins as plugin_module

    real = plugin_module.discover_entry_points

    def discover() -> list[Any]:
        broken = fake_entry_point("broken_one", ImportError("No module named 'nope'"))
        return [*real(), broken]

    monkeypatch.setattr(plugin_module, "discover_entry_points", discover)


@pytest.mark.usefixtures("with_broken_plugin")
def test_broken_plugin_does_not_break_plugins_list() -> None:
    result = CliRunner().invoke(cli, ["plugins", "list"])
    assert result.exit_code == 0, result.output
    assert "broken_one" in result.output
    assert "error: ImportError: No module named 'nope'" in result.output
    assert "1 failed" in result.output
    version = CliRunner().invoke(cli, ["version"])
    assert version.exit_code == 0
    assert "broken_one-1.0.0 (failed)" in version.output


@pytest.mark.usefixtures("with_broken_plugin")
def test_strict_plugins_flag_turns_a_broken_plugin_into_one_sentence() -> None:
    for args, env in (
        (["--strict-plugins", "plugins", "list"], {}),
        (["plugins", "list"], {"BNNR_STRICT_PLUGINS": "1"}),
    ):
        result = CliRunner().invoke(cli, args, env=env)
        assert result.exit_code == 2
        assert "Traceback" not in result.output
        assert result.output.startswith("Error: plugin 'broken_one'")
        assert result.output.count("\n") == 1


def _group_with(command: click.Command) -> click.Group:
    @click.group(cls=BnnrGroup)
    @click.option("--debug", is_flag=True)
    def root(debug: bool) -> None:
        pass

    root.add_command(command)
    return root


def test_user_error_is_one_sentence_and_non_zero() -> None:
    @click.command()
    def fails() -> None:
        raise BnnrError("the file x.pt does not exist; pass --model with a checkpoint")

    result = CliRunner().invoke(_group_with(fails), ["fails"])
    assert result.exit_code == 2
    assert result.output == "Error: the file x.pt does not exist; pass --model with a checkpoint\n"


def test_internal_error_is_reported_without_traceback_unless_debug() -> None:
    @click.command()
    def crashes() -> None:
        raise KeyError("oops")

    group = _group_with(crashes)
    result = CliRunner().invoke(group, ["crashes"])
    assert result.exit_code == 3
    assert "unexpected internal error (KeyError: 'oops')" in result.output
    assert "--debug" in result.output
    assert "Traceback" not in result.output
    debug = CliRunner().invoke(group, ["--debug", "crashes"])
    assert isinstance(debug.exception, KeyError)


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["frobnicate"])
    assert result.exit_code == 2
    assert "No such command 'frobnicate'" in result.output


PROBE = textwrap.dedent(
    """
    import sys
    from bnnr_core.cli import main
    try:
        main(sys.argv[1:])
    except SystemExit as exit:
        code = exit.code or 0
    print("TORCH_IMPORTED=" + str("torch" in sys.modules), file=sys.stderr)
    sys.exit(code)
    """
)


@pytest.mark.parametrize(
    "args", [["--help"], ["version"], ["plugins", "list"], ["plugins", "list", "--json"]]
)
def test_light_commands_do_not_import_torch(args: list[str]) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "TORCH_IMPORTED=False" in completed.stderr


def test_python_dash_m_bnnr_and_console_script() -> None:
    module = subprocess.run(
        [sys.executable, "-m", "bnnr", "plugins", "list", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert module.returncode == 0, module.stderr
    assert {item["name"] for item in json.loads(module.stdout)} >= {"classification", "multilabel"}
    script = Path(sys.executable).with_name("bnnr")
    console = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert console.returncode == 0
    assert "plugins" in console.stdout


def _write_distribution(
    site: Path, dist: str, entry_points: dict[str, str], files: dict[str, str]
) -> None:
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    lines = ["[bnnr]", *(f"{name} = {target}" for name, target in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for relative, source in files.items():
        path = site / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))


def test_real_third_party_distribution_is_discovered_and_a_broken_one_is_isolated(
    tmp_path: Path,
) -> None:
    _write_distribution(
        tmp_path,
        "bnnr-hello",
        {"hello": "bnnr_hello"},
        {
            "bnnr_hello/__init__.py": """
                from bnnr_core import hookimpl

                @hookimpl
                def bnnr_register_xai_methods(register):
                    register("hello_map", lambda: None, description="says hello")
            """
        },
    )
    _write_distribution(
        tmp_path,
        "bnnr-broken",
        {"broken": "bnnr_broken_plugin"},
        {"bnnr_broken_plugin/__init__.py": "import a_module_that_does_not_exist\n"},
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("BNNR_LOAD_PLUGINS", None)
    env.pop("BNNR_DISABLE_PLUGINS", None)
    env.pop("BNNR_STRICT_PLUGINS", None)
    completed = subprocess.run(
        [sys.executable, "-m", "bnnr", "plugins", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    by_name = {item["name"]: item for item in json.loads(completed.stdout)}
    assert by_name["hello"] == {
        **by_name["hello"],
        "status": "ok",
        "version": "1.2.3",
        "distribution": "bnnr-hello",
        "builtin": False,
        "provides": {"xai_method": ["hello_map"]},
        "hooks": ["bnnr_register_xai_methods"],
    }
    assert by_name["broken"]["status"] == "failed"
    assert "a_module_that_does_not_exist" in by_name["broken"]["error"]
    assert by_name["classification"]["status"] == "ok"

    strict = subprocess.run(
        [sys.executable, "-m", "bnnr", "plugins", "list"],
        capture_output=True,
        text=True,
        env={**env, "BNNR_STRICT_PLUGINS": "1"},
        check=False,
    )
    assert strict.returncode == 2
    assert "Traceback" not in strict.stderr
    assert "plugin 'broken' (from bnnr-broken 1.2.3) failed to load" in strict.stderr
