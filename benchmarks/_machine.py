"""Facts about the machine a benchmark ran on, printed under each table, and the timing helper
the benchmarks share."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from importlib import metadata


def describe() -> str:
    """One line: CPU count, Python, platform and the BNNR version."""
    return (
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} "
        f"{platform.machine()}, bnnr {metadata.version('bnnr')}"
    )


def median_seconds(command: list[str], repeats: int) -> float:
    """Median wall time of ``repeats`` fresh runs of ``command``, after one untimed run that
    warms the page cache."""
    subprocess.run(command, capture_output=True, check=True)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)
