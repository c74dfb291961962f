"""The version of the ``bnnr`` distribution (core, facade and built-in plugins ship together)."""

__version__ = "0.1.0"
