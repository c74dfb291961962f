"""bnnr_core: the minimal core of BNNR.

It knows hooks, schemas, runs and orchestration, and no algorithm: tasks, augmentations, XAI
methods, data-quality checks, failure detectors and exporters all come from plugins, loaded
through the ``bnnr`` entry-point group. Importing this package has no side effects and does not
import torch.
"""

from bnnr_core._version import __version__
from bnnr_core.markers import hookimpl, hookspec

__all__ = ["__version__", "hookimpl", "hookspec"]
