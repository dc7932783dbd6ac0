"""Progress bars and log lines on stderr (rich ships with typer), so stdout carries only results."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as _RichProgress

_console = Console(stderr=True)


def log(message: str) -> None:
    """One line of information on stderr."""
    _console.print(message, highlight=False, markup=False, soft_wrap=True)


class Progress:
    """A progress bar with frames per second; a no-op when disabled or stderr is not a terminal-like sink.

    Use as a context manager and call `advance(n)` per n frames done; total may be 0 when unknown.
    """

    def __init__(self, label: str, total: int, enabled: bool = True):
        self.enabled = enabled and sys.stderr is not None
        self._bar = _RichProgress(
            TextColumn(f"{label:>7s}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[fps]:>6.1f} fps"), TimeRemainingColumn(),
            console=_console, transient=False, disable=not self.enabled)
        self._task = self._bar.add_task(label, total=total or None, fps=0.0)

    def __enter__(self) -> "Progress":
        self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self._bar.stop()

    def advance(self, n: int) -> None:
        self._bar.advance(self._task, n)
        task = self._bar.tasks[0]
        self._bar.update(self._task, fps=task.completed / task.elapsed if task.elapsed else 0.0)
