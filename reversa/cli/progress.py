"""Progress of long commands (bench, demos): a rich display on a terminal, silence elsewhere.

The display is drawn only when both stdout and stderr are terminals and the
command was not asked for ``--json``: piped or machine-read output gets nothing
extra, not even a final frame (the display is transient).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

__all__ = ["Phases", "interactive", "phases"]


def interactive(json_out: bool) -> bool:
    """Whether a live display may be drawn: a person is watching, nothing parses the output."""
    return not json_out and sys.stdout.isatty() and sys.stderr.isatty()


class Phases:
    """Successive phases of a command, each a progress bar (or a spinner without a total).

    Built by :func:`phases`; when disabled every method is a no-op, so callers
    report progress unconditionally.
    """

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._current: TaskID | None = None
        self._total = 1

    def start(self, description: str, total: int | None = None) -> Callable[[], None]:
        """Finish the current phase, start the next; returns a callable advancing it by one."""
        progress = self._progress
        if progress is None:
            return _nothing
        self.done()
        task = progress.add_task(description, total=total)
        self._current, self._total = task, total or 1
        return lambda: progress.advance(task)

    def done(self) -> None:
        """Mark the current phase complete."""
        if self._progress is not None and self._current is not None:
            self._progress.update(self._current, total=self._total, completed=self._total)
            self._current = None


def _nothing() -> None:
    return None


class _Count(ProgressColumn):
    """``done/total`` when the phase has a total; nothing for an open-ended one."""

    def render(self, task: Task) -> Text:
        """The count, or an empty cell."""
        if task.total is None:
            return Text("")
        return Text(f"{task.completed:.0f}/{task.total:.0f}", style="progress.download")


@contextlib.contextmanager
def phases(enabled: bool, console: Console) -> Iterator[Phases]:
    """A transient progress display on ``console`` while the block runs (if ``enabled``)."""
    if not enabled:
        yield Phases(None)
        return
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                        _Count(), TimeElapsedColumn(), console=console,
                        transient=True)
    with progress:
        yield Phases(progress)
