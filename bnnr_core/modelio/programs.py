"""Loading self-describing model programs: TorchScript archives and ``torch.export`` programs.

Both carry their architecture, so they need no ``--arch``; neither carries class names.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from bnnr_core.errors import BnnrError

# Position of the ``training`` argument of the aten ops whose behaviour depends on train/eval.
_TRAINING_ARGUMENT = {
    "aten.dropout.default": 2,
    "aten.feature_dropout.default": 2,
    "aten.alpha_dropout.default": 2,
    "aten.batch_norm.default": 5,
    "aten.native_batch_norm.default": 5,
    "aten._native_batch_norm_legit_functional.default": 5,
}


def load_torchscript(path: Path, device: torch.device) -> nn.Module:
    """``torch.jit.load`` onto ``device``, in eval mode."""
    try:
        with warnings.catch_warnings():
            # torch marks torch.jit deprecated; the user's archive is still worth loading.
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location=device)
    except Exception as exc:
        raise BnnrError(
            f"{path} looks like a TorchScript archive but could not be loaded "
            f"({type(exc).__name__}); it is probably damaged, so export it again"
        ) from exc
    return module.eval()


class ExportedProgramModule(nn.Module):
    """Holds the ``ExportedProgram.module()`` of a program that cannot be unflattened.

    Its graph runs with the train/eval behaviour it was exported with, and the graph module
    refuses ``train()``/``eval()``; this wrapper accepts both (they only set the flag), so callers
    can treat it like any model.
    """

    def __init__(self, program_module: nn.Module) -> None:
        super().__init__()
        self.program = program_module

    def train(self, mode: bool = True) -> ExportedProgramModule:
        self.training = mode
        return self

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.program(*args)


class StaticBatchModule(nn.Module):
    """Runs a program exported with a fixed batch size on batches of any size.

    A batch is cut into chunks of ``batch_size`` images; the last chunk is padded with zeros,
    and the padded rows are dropped from the output, so every image gets exactly the output the
    program computes for it.
    """

    def __init__(self, program_module: nn.Module, batch_size: int) -> None:
        super().__init__()
        self.program = program_module
        self.batch_size = batch_size

    def train(self, mode: bool = True) -> StaticBatchModule:
        self.training = mode
        self.program.train(mode)
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        outputs = []
        for chunk in images.split(self.batch_size):
            rows = chunk.shape[0]
            if rows < self.batch_size:
                padding = chunk.new_zeros((self.batch_size - rows, *chunk.shape[1:]))
                chunk = torch.cat([chunk, padding])
            outputs.append(self.program(chunk)[:rows])
        return torch.cat(outputs)


def static_batch_size(program: torch.export.ExportedProgram) -> int | None:
    """The batch size a program was exported with, when its first input's batch dimension is
    static (``None`` when it is dynamic or the program takes no tensor)."""
    user_inputs = set(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op != "placeholder" or node.name not in user_inputs:
            continue
        value = node.meta.get("val")
        shape = getattr(value, "shape", None)
        if shape is None or len(shape) == 0:
            return None
        first = shape[0]
        return int(first) if isinstance(first, int) else None
    return None


def load_exported_program(path: Path, device: torch.device) -> tuple[nn.Module, list[str]]:
    """``torch.export.load``; returns the program as a module (on ``device``) and notes.

    The module is ``torch.export.unflatten(program)``, which keeps the original submodule
    hierarchy (so embedding and saliency hooks can find layers by name); programs that cannot be
    unflattened are wrapped in :class:`ExportedProgramModule`.
    """
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise BnnrError(
            f"{path} looks like a torch.export program but could not be loaded "
            f"({type(exc).__name__}: {str(exc)[:120]}); it may be damaged or need a newer torch"
        ) from exc
    notes = []
    if exported_in_training_mode(program):
        notes.append(
            "the torch.export program was exported in training mode, so dropout and batch norm "
            "behave as in training; export it after model.eval() for reproducible predictions"
        )
    if device.type != "cpu":
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, device)
    module: nn.Module
    try:
        module = torch.export.unflatten(program)
    except Exception:
        module = ExportedProgramModule(program.module())
    batch_size = static_batch_size(program)
    if batch_size is not None:
        module = StaticBatchModule(module, batch_size)
        notes.append(
            f"the torch.export program has a fixed batch size of {batch_size}; batches are cut "
            f"and zero-padded to {batch_size} images (export with dynamic_shapes to avoid this)"
        )
    return module.eval(), notes


def exported_in_training_mode(program: torch.export.ExportedProgram) -> bool:
    """Whether the program's graph contains dropout or batch norm in training mode."""
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        position = _TRAINING_ARGUMENT.get(str(node.target))
        if position is not None and len(node.args) > position and node.args[position] is True:
            return True
    return False
