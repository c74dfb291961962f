"""Facts about the machine a benchmark ran on, printed under each table."""

from __future__ import annotations

import os
import platform
from importlib import metadata


def describe() -> str:
    """One line: CPU count, Python, platform and the BNNR version."""
    return (
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} "
        f"{platform.machine()}, bnnr {metadata.version('bnnr')}"
    )
