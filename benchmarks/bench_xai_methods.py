"""Throughput of the built-in saliency methods (plugin ``xai``), in images per second.

Each method, with its default options, explains batches of 32 random 224x224 images for an
untrained torchvision ResNet-18 (``weights=None``, 1000 classes) on the CPU, built through the
plugin registry as ``bnnr analyze`` builds it. One warm-up batch, then ``--batches`` timed ones;
a method whose warm-up batch takes longer than ``--slow-s`` seconds is timed on one batch only
(the table says so), which keeps the whole run to minutes on a small machine. The CPU time of
the process (all threads) is shown next to the wall time: on an otherwise idle machine it is
about the wall time times the number of torch threads, and less when other work took the cores.

    .venv/bin/python benchmarks/bench_xai_methods.py
"""

from __future__ import annotations

import argparse
import time

from _machine import describe

METHODS = ("gradcam", "saliency", "smoothgrad", "integrated_gradients", "opticam")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batches", type=int, default=2, help="timed batches per method")
    parser.add_argument("--slow-s", type=float, default=60.0)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    args = parser.parse_args()

    import torch
    import torchvision

    from bnnr_core.plugins import load_plugins

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=1000)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch_size, 3, args.size, args.size, generator=generator)
    targets = torch.randint(0, 1000, (args.batch_size,), generator=generator)
    host = load_plugins()

    print("| method | options | images/s | s per batch | CPU s per batch | timed batches |")
    print("|---|---|---:|---:|---:|---:|")
    for name in args.methods:
        method = host.component("xai_method", name).create()
        start = time.perf_counter()
        method.explain(model, images, targets)
        warm_up = time.perf_counter() - start
        batches = 1 if warm_up > args.slow_s else args.batches
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(batches):
            method.explain(model, images, targets)
        per_batch = (time.perf_counter() - start) / batches
        cpu_per_batch = (time.process_time() - cpu_start) / batches
        description = method.describe()
        options = ", ".join(f"{key}={value}" for key, value in description["options"].items())
        if description["target_layer"]:
            options += f"; layer {description['target_layer']}"
        note = " (warm-up over the limit)" if batches < args.batches else ""
        print(
            f"| {name} | {options or '-'} | {args.batch_size / per_batch:.2f} | "
            f"{per_batch:.2f} | {cpu_per_batch:.2f} | {batches}{note} |",
            flush=True,
        )
    print(
        f"\nResNet-18 (untrained), batch {args.batch_size} at {args.size}x{args.size}, CPU, "
        f"{torch.get_num_threads()} torch threads, 1 warm-up batch; {describe()}"
    )


if __name__ == "__main__":
    main()
