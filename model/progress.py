"""Progress bars for long jobs (rich), or nothing when no progress object is given."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def make_progress(disable: bool = False) -> Progress:
    return Progress(
        TextColumn("{task.description:<20}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=disable,
    )


@contextmanager
def task_bar(progress: Progress | None, description: str, total: int) -> Iterator[Callable[[], None]]:
    """Yields a tick() that advances one step; a no-op without a Progress."""
    if progress is None:
        yield lambda: None
        return
    task = progress.add_task(description, total=total)
    yield lambda: progress.advance(task)
    progress.update(task, completed=total)
