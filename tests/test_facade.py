"""``import bnnr``: every public name resolves, and importing the facade stays cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest

import bnnr
import bnnr_core.datasets


@pytest.mark.parametrize("package", [bnnr, bnnr_core.datasets])
def test_every_exported_name_resolves(package: object) -> None:
    for name in package.__all__:  # type: ignore[attr-defined]
        assert getattr(package, name) is not None, name
    assert set(package.__all__) <= set(dir(package))  # type: ignore[attr-defined]


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        bnnr.nope  # noqa: B018


def test_facade_reexports_the_core_objects() -> None:
    from bnnr_core.checkpoints import save_checkpoint
    from bnnr_core.events import EventLog
    from bnnr_core.plugins import load_plugins

    assert bnnr.load_plugins is load_plugins
    assert bnnr.EventLog is EventLog
    assert bnnr.save_checkpoint is save_checkpoint


def test_importing_bnnr_does_not_import_torch() -> None:
    code = "import sys, bnnr, bnnr_core.datasets; print('torch' in sys.modules)"
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "False"
