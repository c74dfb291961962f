"""The pluggy marker pair for the ``bnnr`` project.

Plugins import :data:`hookimpl` (re-exported as ``bnnr_core.hookimpl``); the specs in
:mod:`bnnr_core.hookspecs` use :data:`hookspec`.
"""

import pluggy

PROJECT_NAME = "bnnr"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
