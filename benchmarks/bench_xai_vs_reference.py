"""Cost of XAI in analyze: BNNR against the reference package (BNNR 0.8.0 from PyPI).

Both analyze the same model (the demo ``small_cnn`` trained on the digits training split) on the
same 360 digits evaluation images, on the CPU, in-process (start-up excluded), with data quality
off: once without saliency and once with each package's default saliency. The figure of merit is
the ratio XAI / no-XAI of each package (target for BNNR: at most 3x). The reference runs in its
own virtual environment:

    python3 -m venv benchmarks/.reference-venv
    benchmarks/.reference-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 bnnr==0.8.0
    .venv/bin/python benchmarks/bench_xai_vs_reference.py --repeats 3

Also prints the wall time of the two ``bnnr analyze`` command lines (fresh processes).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import describe, median_seconds

REPO = Path(__file__).resolve().parents[1]

#: Runs in the reference's environment: loads BNNR's small_cnn definition by file path (it only
#: needs torch), the plain state dict and the digits arrays, and times ``analyze_model``.
REFERENCE = r"""
import importlib.util, json, sys, tempfile, time
import numpy as np, torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from bnnr.adapter import SimpleTorchAdapter
from bnnr.analyze import analyze_model

source, weights, arrays, repeats = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
spec = importlib.util.spec_from_file_location("small_cnn", source)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
model = module.SmallCNN(num_classes=10, in_channels=1)
model.load_state_dict(torch.load(weights, weights_only=True))
data = np.load(arrays)
dataset = TensorDataset(torch.from_numpy(data["images"]), torch.from_numpy(data["labels"]))
optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
adapter = SimpleTorchAdapter(model, nn.CrossEntropyLoss(), optimizer, device="cpu")
times = {}
for label, xai in (("no_xai", False), ("xai", True)):
    samples = []
    for _ in range(repeats):
        out = tempfile.mkdtemp()
        start = time.perf_counter()
        analyze_model(adapter, DataLoader(dataset, batch_size=64), device="cpu", output_dir=out,
                      run_data_quality=False, xai_enabled=xai)
        samples.append(time.perf_counter() - start)
    times[label] = samples
print(json.dumps(times))
"""


def _ours(checkpoint: Path, repeats: int) -> dict[str, list[float]]:
    import bnnr

    host = bnnr.load_plugins()
    bnnr.analyze(checkpoint, "digits", host=host, xai=False, data_quality=False)  # warm-up
    times: dict[str, list[float]] = {}
    for label, xai in (("no_xai", False), ("xai", True)):
        samples = []
        for _ in range(repeats):
            out = Path(tempfile.mkdtemp()) / "out"
            start = time.perf_counter()
            bnnr.analyze(checkpoint, "digits", host=host, output=out, xai=xai, data_quality=False)
            samples.append(time.perf_counter() - start)
            shutil.rmtree(out.parent, ignore_errors=True)
        times[label] = samples
    return times


def _cli_wall(checkpoint: Path, work: Path, extra: list[str]) -> float:
    command = [
        sys.executable,
        "-m",
        "bnnr",
        "analyze",
        "--quiet",
        "--no-summary",
        "--no-data-quality",
        "--model",
        str(checkpoint),
        "--data",
        "digits",
        "--output",
        str(work / "cli"),
        *extra,
    ]
    return median_seconds(command, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--reference-python",
        default=str(REPO / "benchmarks" / ".reference-venv" / "bin" / "python"),
        help="Python of a virtual environment with bnnr==0.8.0 installed.",
    )
    args = parser.parse_args()

    import numpy as np
    import torch

    from bnnr_core.datasets.digits import MEAN, STD, load_digits
    from bnnr_core.demo import save_digits_checkpoint
    from bnnr_core.plugins import load_plugins

    work = Path(tempfile.mkdtemp(prefix="bnnr-bench-xai-"))
    try:
        checkpoint = save_digits_checkpoint(load_plugins(), work / "digits_small_cnn.pt")
        torch.save(torch.load(checkpoint, weights_only=False)["state_dict"], work / "weights.pt")
        split = load_digits("eval")
        images = (split.images[:, None].astype(np.float32) / 255.0 - MEAN[0]) / STD[0]
        np.savez(work / "digits.npz", images=images, labels=split.labels)

        ours = _ours(checkpoint, args.repeats)
        reference_run = subprocess.run(
            [
                args.reference_python,
                "-I",
                "-c",
                REFERENCE,
                str(REPO / "plugins" / "bnnr_models" / "small_cnn.py"),
                str(work / "weights.pt"),
                str(work / "digits.npz"),
                str(args.repeats),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        reference = json.loads(reference_run.stdout.strip().splitlines()[-1])
        wall_no_xai = _cli_wall(checkpoint, work, ["--no-xai"])
        wall_xai = _cli_wall(checkpoint, work, [])
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def median(samples: list[float]) -> float:
        return statistics.median(samples)

    print("| package | analyze, no XAI (s) | analyze, XAI (s) | XAI / no XAI |")
    print("|---|---:|---:|---:|")
    for name, times in (("BNNR (this repository)", ours), ("BNNR 0.8.0 (PyPI)", reference)):
        base, full = median(times["no_xai"]), median(times["xai"])
        print(f"| {name} | {base:.2f} | {full:.2f} | {full / base:.1f}x |")
    print(
        "\n`bnnr analyze --no-data-quality` wall time, fresh process: "
        f"--no-xai {wall_no_xai:.2f} s, with XAI {wall_xai:.2f} s "
        f"({wall_xai / wall_no_xai:.1f}x)."
    )
    print(f"\nIn-process medians of {args.repeats} runs; {describe()}")


if __name__ == "__main__":
    main()
