"""Loading models: every format a user is likely to have, safely.

:func:`load_model` detects the format from the file's bytes and returns a :class:`LoadedModel`
(see its docstring for the detection order). Saving goes through
:func:`bnnr_core.checkpoints.save_checkpoint`.

Submodules: :mod:`~bnnr_core.modelio.files` (sniffing, hashing),
:mod:`~bnnr_core.modelio.safeload` (safe and trusted unpickling),
:mod:`~bnnr_core.modelio.statedict` (finding and fitting state dicts),
:mod:`~bnnr_core.modelio.architectures` (building a model by name),
:mod:`~bnnr_core.modelio.programs` (TorchScript and ``torch.export``).
"""

from bnnr_core.modelio.loader import MODEL_FORMATS, LoadedModel, load_model, resolve_device

__all__ = ["MODEL_FORMATS", "LoadedModel", "load_model", "resolve_device"]
