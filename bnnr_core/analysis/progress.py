"""How the analyze engine reports progress; the CLI prints it, the Python API ignores it."""

from __future__ import annotations

from collections.abc import Callable


class Progress:
    """Receives stage and batch progress; the default does nothing (the CLI prints)."""

    def stage(self, name: str) -> None:
        """A stage starts."""

    def batches(self, total: int) -> Callable[[int], None]:
        """Inference over ``total`` batches starts; the returned callable advances it."""
        return lambda _n: None

    def done(self) -> None:
        """Inference finished."""
