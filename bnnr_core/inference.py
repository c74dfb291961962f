"""One batched inference pass whose results every later analysis step reuses.

:func:`run_inference` runs the model once over a data loader under ``torch.inference_mode`` and
keeps, for every sample: logits, probabilities, the target, the per-sample loss (from the task
plugin) and the penultimate-layer embedding (the input of the model's last ``nn.Linear``, when
the model exposes one). Nothing is computed per image in Python; metrics are computed afterwards
over the whole set, never as means of per-batch values.

The caller's model is not changed: its train/eval mode is restored afterwards, its parameters
and buffers stay where they are, and batches go to the model's own device.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import numpy as np
    import torch

    from bnnr_core.protocols import Task


@attrs.frozen(kw_only=True)
class Predictions:
    """Per-sample results of one pass, as numpy arrays in dataset order."""

    logits: np.ndarray
    probabilities: np.ndarray
    targets: np.ndarray
    per_sample_loss: np.ndarray
    #: ``(N, D)`` penultimate features, or ``None`` (see :attr:`embedding_note`).
    embeddings: np.ndarray | None
    #: Why there are no embeddings, when there are none.
    embedding_note: str | None = None

    @property
    def num_samples(self) -> int:
        return int(self.logits.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.logits.shape[1])


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with neither)."""
    import torch

    for parameter in model.parameters():
        return parameter.device
    for buffer in model.buffers():
        return buffer.device
    return torch.device("cpu")


def last_linear_layer(model: torch.nn.Module) -> torch.nn.Module | None:
    """The last ``nn.Linear`` registered in ``model`` (the classifier head of common CNNs)."""
    from torch import nn

    found = None
    try:
        modules = list(model.modules())
    except Exception:  # scripted or exported modules may not enumerate like eager ones
        return None
    for module in modules:
        if isinstance(module, nn.Linear):
            found = module
    return found


@contextmanager
def evaluation_mode(model: torch.nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode for the block and restore each submodule's mode after."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _split_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, (list, tuple)) and len(batch) >= 2:
        return batch[0], batch[1]
    raise TypeError(
        "each batch must be (images, targets) or (images, targets, ...); got "
        f"{type(batch).__name__}"
    )


def run_inference(
    model: torch.nn.Module,
    batches: Iterable[Any],
    task: Task,
    *,
    capture_embeddings: bool = True,
) -> Predictions:
    """Run ``model`` once over ``batches`` and return every sample's results.

    :param model: any ``nn.Module`` (eager, TorchScript or an exported program's module).
    :param batches: an iterable of ``(images, targets[, ...])``, e.g. a ``DataLoader``.
    :param task: the task plugin that defines probabilities and per-sample loss.
    :param capture_embeddings: record the input of the last ``nn.Linear`` as the embedding.
    """
    import numpy as np
    import torch

    device = model_device(model)
    layer = last_linear_layer(model) if capture_embeddings else None
    captured: list[torch.Tensor] = []
    handle = None
    note: str | None = None
    if not capture_embeddings:
        note = "embeddings were not requested"
    elif layer is None:
        note = "the model has no nn.Linear head whose input could be recorded"
    else:

        def record_input(_module: torch.nn.Module, inputs: tuple[Any, ...]) -> None:
            captured.append(inputs[0].detach().flatten(1).float().cpu())

        handle = layer.register_forward_pre_hook(record_input)

    logits_parts: list[torch.Tensor] = []
    target_parts: list[torch.Tensor] = []
    loss_parts: list[torch.Tensor] = []
    try:
        with torch.inference_mode(), evaluation_mode(model):
            for batch in batches:
                images, targets = _split_batch(batch)
                images = images.to(device, non_blocking=True)
                targets = targets.to(device, non_blocking=True)
                logits = model(images)
                if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
                    raise TypeError(
                        "the model must return a (batch, classes) tensor of logits; got "
                        f"{getattr(logits, 'shape', type(logits).__name__)}"
                    )
                loss_parts.append(task.per_sample_loss(logits, targets).float().cpu())
                logits_parts.append(logits.float().cpu())
                target_parts.append(targets.cpu())
    finally:
        if handle is not None:
            handle.remove()

    if not logits_parts:
        raise ValueError("the data yielded no batches; there is nothing to evaluate")
    logits_all = torch.cat(logits_parts)
    probabilities = task.probabilities(logits_all).numpy()
    embeddings = None
    if captured and sum(len(part) for part in captured) == len(logits_all):
        embeddings = torch.cat(captured).numpy()
    elif handle is not None:
        note = "the model's last nn.Linear did not run once per sample; embeddings skipped"
    return Predictions(
        logits=logits_all.numpy(),
        probabilities=np.asarray(probabilities),
        targets=torch.cat(target_parts).numpy(),
        per_sample_loss=torch.cat(loss_parts).numpy(),
        embeddings=embeddings,
        embedding_note=note,
    )
