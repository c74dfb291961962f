"""Documentation contracts: every hook documented with its exact signature, every command in
docs/cli.md, the README's first commands, and the plugin guide's example actually works."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path
from typing import Any

import click

from bnnr_core import hookspecs
from bnnr_core.cli import cli

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def _hookspecs() -> dict[str, Any]:
    return {
        name: function
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("bnnr_") and hasattr(function, "bnnr_spec")
    }


def test_every_hookspec_is_documented_with_its_exact_signature() -> None:
    text = (DOCS / "plugins.md").read_text()
    specs = _hookspecs()
    assert len(specs) >= 7
    for name, function in specs.items():
        arguments = ", ".join(inspect.signature(function).parameters)
        heading = f"### `{name}({arguments})`"
        assert heading in text, f"docs/plugins.md lacks the heading {heading}"


def test_docs_do_not_document_hooks_that_do_not_exist() -> None:
    text = (DOCS / "plugins.md").read_text()
    documented = set(re.findall(r"^### `(bnnr_\w+)\(", text, flags=re.MULTILINE))
    assert documented == set(_hookspecs())


def test_every_hookspec_has_a_docstring_saying_when_it_is_called() -> None:
    for name, function in _hookspecs().items():
        doc = inspect.getdoc(function) or ""
        assert ":param" in doc and ":returns:" in doc, name
        assert "Called" in doc, name


def _command_paths(group: click.Group, prefix: str = "bnnr") -> list[str]:
    ctx = click.Context(group)
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            found.extend(_command_paths(command, path))
        else:
            found.append(path)
    return found


def test_every_command_is_documented_in_cli_md() -> None:
    text = (DOCS / "cli.md").read_text()
    for path in _command_paths(cli):
        assert f"`{path}" in text, f"docs/cli.md does not document {path}"


def test_readme_opens_with_the_two_setup_commands() -> None:
    text = (REPO / "README.md").read_text()
    first_screen = "\n".join(text.splitlines()[:30])
    assert "make demo" in first_screen
    assert "make test" in first_screen
    assert first_screen.index("make demo") < first_screen.index("make test")


def test_changelog_exists_and_has_an_unreleased_or_versioned_entry() -> None:
    text = (REPO / "CHANGELOG.md").read_text()
    assert re.search(r"^## \[(Unreleased|\d+\.\d+\.\d+)\]", text, flags=re.MULTILINE)


def test_plugin_guide_example_runs(
    tmp_path: Path, bnnr_host: Any, tiny_model: Any, tiny_dataset: Any
) -> None:
    """The two Python blocks of the guide's first example, written out and used as a plugin."""
    text = (DOCS / "plugins.md").read_text()
    blocks = re.findall(r"```python\n(# bnnr_edges/[\w.]+\n.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 2
    package = tmp_path / "bnnr_edges"
    package.mkdir()
    for block in blocks:
        filename = block.splitlines()[0].removeprefix("# bnnr_edges/")
        (package / filename).write_text(block)
    sys.path.insert(0, str(tmp_path))
    try:
        import bnnr_edges

        record = bnnr_host.register(bnnr_edges, "edges")
        assert record.status == "ok", record.error
        assert record.provides == {"xai_method": ("edges",)}
        method = bnnr_host.component("xai_method", "edges").create()
        images, labels = tiny_dataset.tensors
        maps = method.explain(tiny_model, images[:4], labels[:4])
        assert tuple(maps.shape) == (4, 8, 8)
        assert float(maps.min()) >= 0.0
        assert float(maps.max()) == 1.0
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "bnnr_edges" or m.startswith("bnnr_edges.")]:
            del sys.modules[name]


def test_the_analyze_config_example_names_real_options_and_thresholds() -> None:
    import yaml

    from bnnr_core.analysis.data_quality import validate_config
    from bnnr_core.plugins import load_plugins

    text = (DOCS / "configuration.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    document = yaml.safe_load(block)
    command = cli.get_command(click.Context(cli), "analyze")
    assert command is not None
    names = {p.name for p in command.params} | {"model", "bootstrap"}
    for key in document:
        if key != "data_quality":
            assert key.replace("-", "_") in names, key
    thresholds = validate_config(load_plugins(), document["data_quality"])
    assert thresholds["duplicates"]["hash_distance"] == 2
    assert thresholds["image_properties"]["dark"] == 0.25
