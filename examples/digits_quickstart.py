"""Train, save, reload and evaluate a small CNN on the bundled digits data, with BNNR's API.

Run it with ``.venv/bin/python examples/digits_quickstart.py [OUTPUT_DIR]`` (``make demo`` runs
``bnnr demo``, which does the same and then analyzes the model).
Fully offline and seeded: the same numbers on every run of the same machine and libraries.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

import bnnr
from bnnr_core.datasets.digits import MEAN, STD
from bnnr_core.datasets.torchdata import DigitsDataset


def main(output_dir: Path) -> dict[str, float | None]:
    host = bnnr.load_plugins()
    task = host.component("task", "classification").create()
    train, evaluation = DigitsDataset("train"), DigitsDataset("eval")
    class_names = [str(digit) for digit in range(10)]

    torch.manual_seed(0)
    model = host.component("architecture", "small_cnn").create(num_classes=10, in_channels=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loader = DataLoader(
        train, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    model.train()
    for _epoch in range(3):
        for images, labels in loader:
            optimizer.zero_grad()
            task.per_sample_loss(model(images), labels).mean().backward()
            optimizer.step()

    checkpoint = bnnr.save_checkpoint(
        model,
        output_dir / "digits_small_cnn.pt",
        arch="small_cnn",
        arch_options={"num_classes": 10, "in_channels": 1},
        class_names=class_names,
        input_size=(1, 8, 8),
        mean=MEAN,
        std=STD,
    )
    loaded = bnnr.load_model(checkpoint, host=host)
    predictions = bnnr.run_inference(loaded.model, DataLoader(evaluation, batch_size=128), task)
    metrics = task.compute_metrics(
        predictions.probabilities, predictions.targets, num_classes=len(class_names)
    )
    print(f"checkpoint: {checkpoint} ({loaded.format} format, sha256 {loaded.sha256[:12]}...)")
    print(f"evaluated {predictions.num_samples} held-out digits:")
    for name in ("accuracy", "balanced_accuracy", "f1_macro", "loss", "ece"):
        value = metrics[name]
        print(f"  {name:18} {value:.4f}" if value is not None else f"  {name:18} n/a")
    return metrics


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("demo_output"))
