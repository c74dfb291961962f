"""Every hook a BNNR plugin can implement.

Conventions (the same as pytest's ``hookspec.py``):

* Every hook name starts with ``bnnr_``. Implementations are marked with
  ``@bnnr_core.hookimpl`` and may accept *fewer* arguments than the spec lists; the core always
  calls hooks with keyword arguments, so new arguments can be added to a spec without breaking
  existing plugins. Do not rely on default values of implementation arguments: pluggy never
  fills them in.
* Collections (tasks, augmentations, XAI methods, data-quality checks, failure detectors,
  exporters) use a ``register`` callback: the hook calls ``register(name, factory, ...)`` once per
  component it provides. The core calls the hook of each plugin separately, so every component is
  stamped with the plugin that provided it, and one plugin's failure cannot hide another's
  components. See :class:`bnnr_core.components.RegisterFn` for the callback's signature and
  :mod:`bnnr_core.protocols` for what each kind's factory must return.
* Registration hooks run while plugins are loaded, for every ``bnnr`` command, including
  ``bnnr --help`` when a command needs the plugin set. They must be cheap: no torch import, no
  file or network access. Import heavy libraries inside the factory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bnnr_core.markers import hookspec

if TYPE_CHECKING:
    from bnnr_core.components import RegisterFn
    from bnnr_core.events import Event


# -------------------------------------------------------------------------------------------
# Components
# -------------------------------------------------------------------------------------------


@hookspec
def bnnr_register_tasks(register: RegisterFn) -> None:
    """Register task paths (e.g. ``classification``, ``multilabel``).

    A task owns loss, probabilities, decoding and metrics for one kind of label; its factory is
    called with no arguments and returns an object satisfying :class:`bnnr_core.protocols.Task`.
    Analyze and training pick the task by name (``--task``).

    :param register: ``register(name, factory, *, description="", **metadata)``.
    :returns: nothing; return values are ignored.

    Called once per plugin when plugins are loaded.
    """


@hookspec
def bnnr_register_augmentations(register: RegisterFn) -> None:
    """Register augmentations the branch search may try.

    The factory is called with the augmentation's options as keyword arguments (from the training
    configuration) and returns a :class:`bnnr_core.protocols.Augmentation`.

    :param register: ``register(name, factory, *, description="", **metadata)``.
    :returns: nothing; return values are ignored.

    Called once per plugin when plugins are loaded.
    """


@hookspec
def bnnr_register_xai_methods(register: RegisterFn) -> None:
    """Register saliency (XAI) methods, selectable with ``--xai-method NAME``.

    The factory is called with the method's options as keyword arguments and returns a
    :class:`bnnr_core.protocols.XaiMethod`.

    :param register: ``register(name, factory, *, description="", **metadata)``.
    :returns: nothing; return values are ignored.

    Called once per plugin when plugins are loaded.
    """


@hookspec
def bnnr_register_data_quality_checks(register: RegisterFn) -> None:
    """Register data-quality checks (duplicates, leakage, broken or odd images, label errors).

    The factory is called with no arguments and returns a
    :class:`bnnr_core.protocols.DataQualityCheck`; its thresholds arrive through ``config``.

    :param register: ``register(name, factory, *, description="", **metadata)``.
    :returns: nothing; return values are ignored.

    Called once per plugin when plugins are loaded.
    """


@hookspec
def bnnr_register_failure_detectors(register: RegisterFn) -> None:
    """Register failure-pattern detectors run over an evaluation (e.g. confused pairs).

    The factory is called with no arguments and returns a
    :class:`bnnr_core.protocols.FailureDetector`.

    :param register: ``register(name, factory, *, description="", **metadata)``.
    :returns: nothing; return values are ignored.

    Called once per plugin when plugins are loaded.
    """


@hookspec
def bnnr_register_exporters(register: RegisterFn) -> None:
    """Register exporters that write a report document as files (JSON, HTML, ...).

    The factory is called with no arguments and returns a :class:`bnnr_core.protocols.Exporter`.
    Conventional metadata: ``files`` (a list of the file names it writes).

    :param register: ``register(name, factory, *, description="", **metadata)``.
    :returns: nothing; return values are ignored.

    Called once per plugin when plugins are loaded.
    """


@hookspec
def bnnr_register_architectures(register: RegisterFn) -> None:
    """Register model architectures, selectable with ``--arch NAME`` (e.g. to load a state dict).

    The factory is called with ``num_classes`` and ``in_channels`` (and any further options from
    a checkpoint's architecture spec) as keyword arguments and returns an untrained
    ``torch.nn.Module``. BNNR checkpoints record the architecture name and options, so a model
    saved by ``bnnr train`` or ``bnnr.save_checkpoint`` is rebuilt through this hook.

    :param register: ``register(name, factory, *, description="", **metadata)``.
    :returns: nothing; return values are ignored.

    Called once per plugin when plugins are loaded.
    """


# -------------------------------------------------------------------------------------------
# Observers
# -------------------------------------------------------------------------------------------


@hookspec
def bnnr_on_event(event: Event) -> None:
    """Observe an event of a run (stream it to an experiment tracker, a chat, a console...).

    Called once per event, in ``sequence`` order, in the thread that emitted it, *after* the event
    line was written to ``events.jsonl``. ``event.payload`` must not be modified. An exception
    raised here is logged to the run's ``run.log`` and that observer receives no further events
    of the run; the run itself goes on.

    :param event: the :class:`bnnr_core.events.Event` just written.
    :returns: nothing; return values are ignored.
    """
