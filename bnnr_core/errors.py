"""Exceptions whose message is meant for the user.

A :class:`BnnrError` is something the user can fix (a bad path, a broken plugin, an unsafe
checkpoint): the CLI prints its message as one sentence and exits non-zero, without a traceback.
Any other exception is a bug in BNNR or in a plugin.
"""

from __future__ import annotations


class BnnrError(Exception):
    """A problem the user caused or can fix; the message says what is wrong and what to do."""


class PluginLoadError(BnnrError):
    """A plugin failed to load while strict plugin loading was on."""


class UnknownComponentError(BnnrError):
    """A command asked for a component (task, XAI method, ...) that no loaded plugin provides."""
