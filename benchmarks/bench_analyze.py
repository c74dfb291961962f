"""Wall time of ``bnnr analyze --no-xai --no-data-quality`` against its floor.

The floor is what any analysis must pay: start Python, import torch, load the model and run one
forward pass over the evaluation images. The target is analyze <= 1.5x the floor, on the bundled
``digits`` evaluation split (360 images) with the demo ``small_cnn`` trained on the digits
training split. Each measurement is a fresh process; the script prints the median of N runs.

    .venv/bin/python benchmarks/bench_analyze.py --repeats 7
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from _machine import describe, median_seconds

#: Start Python, import torch, load the checkpoint's weights into the same architecture and run
#: one forward pass over the 360 evaluation images: the work no analysis can avoid.
FLOOR = """
import sys
import numpy as np
import torch
from bnnr_core.datasets.digits import load_digits
from bnnr_models.small_cnn import SmallCNN

checkpoint = torch.load(sys.argv[1], weights_only=True)
model = SmallCNN(num_classes=10, in_channels=1)
model.load_state_dict(checkpoint["state_dict"])
images = torch.from_numpy(load_digits("eval").images[:, None]).float().div(255.0)
with torch.inference_mode():
    model.eval()(images).softmax(1)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    from bnnr_core.demo import save_digits_checkpoint
    from bnnr_core.plugins import load_plugins

    work = Path(tempfile.mkdtemp(prefix="bnnr-bench-"))
    try:
        checkpoint = save_digits_checkpoint(load_plugins(), work / "digits_small_cnn.pt")
        floor = median_seconds([sys.executable, "-c", FLOOR, str(checkpoint)], args.repeats)
        analyze = median_seconds(
            [
                sys.executable,
                "-m",
                "bnnr",
                "analyze",
                "--quiet",
                "--no-summary",
                "--no-xai",
                "--no-data-quality",
                "--model",
                str(checkpoint),
                "--data",
                "digits",
                "--output",
                str(work / "out"),
            ],
            args.repeats,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| run | median wall time (s) |")
    print("|---|---:|")
    print(f"| floor: python + import torch + load + one forward (360 digits) | {floor:.2f} |")
    print(f"| bnnr analyze --no-xai --no-data-quality (digits) | {analyze:.2f} |")
    print(f"\nratio analyze / floor: {analyze / floor:.2f}x (target <= 1.5x)")
    print(f"\n{args.repeats} runs each; {describe()}")


if __name__ == "__main__":
    main()
