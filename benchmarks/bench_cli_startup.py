"""Wall time of the light CLI commands, compared with a bare ``import torch``.

The point of the lazy CLI is that inspecting an installation never pays for torch: this measures
each command as a fresh process (median of N runs) and checks torch stayed unimported.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from _machine import describe, median_seconds

COMMANDS: dict[str, list[str]] = {
    "python -c pass (interpreter floor)": [sys.executable, "-c", "pass"],
    "bnnr --help": [sys.executable, "-m", "bnnr", "--help"],
    "bnnr version": [sys.executable, "-m", "bnnr", "version"],
    "bnnr plugins list": [sys.executable, "-m", "bnnr", "plugins", "list"],
    "python -c 'import torch' (for comparison)": [sys.executable, "-c", "import torch"],
}

TORCH_PROBE = (
    "import sys\n"
    "from bnnr_core.cli import main\n"
    "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
    "sys.stderr.write('torch imported: %s' % ('torch' in sys.modules))\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print("| command | median wall time (ms) |")
    print("|---|---:|")
    for label, command in COMMANDS.items():
        print(f"| {label} | {1000 * median_seconds(command, args.repeats):.0f} |")
    for argv in (["--help"], ["version"], ["plugins", "list"]):
        probe = subprocess.run(
            [sys.executable, "-c", TORCH_PROBE, *argv], capture_output=True, text=True, check=True
        )
        print(f"\n`bnnr {' '.join(argv)}`: {probe.stderr.strip()}", end="")
    print(f"\n\n{args.repeats} runs each; {describe()}")


if __name__ == "__main__":
    main()
