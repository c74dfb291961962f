"""How the analyze engine reports progress; the CLI prints it, the Python API ignores it."""

from __future__ import annotations

from collections.abc import Callable


class Progress:
    """Receives stage and batch progress; the default does nothing (the CLI prints)."""

    def stage(self, name: str) -> None:
        """A stage starts."""

    def batches(self, total: int, label: str = "running inference") -> Callable[[int], None]:
        """A loop over ``total`` batches starts (``label`` says what it does); the returned
        callable advances it by a number of batches."""
        return lambda _n: None

    def done(self) -> None:
        """Inference finished."""
