"""Progress on long steps: a rich bar on a terminal, silence otherwise (pipes, CI, --json)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_enabled: bool | None = None


def set_enabled(value: bool | None) -> None:
    """Force progress on or off; None goes back to 'only when stderr is a terminal'."""
    global _enabled
    _enabled = value


def enabled() -> bool:
    return sys.stderr.isatty() if _enabled is None else _enabled


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    if not enabled():
        yield from items
        return
    from rich.progress import track as rich_track

    yield from rich_track(items, description=description, total=total, console=_console(), transient=True)


@contextlib.contextmanager
def step(description: str):
    """A spinner for a step with no natural count (export, conversion)."""
    if not enabled():
        yield
        return
    with _console().status(description):
        yield


def _console():
    from rich.console import Console

    return Console(stderr=True)


@contextlib.contextmanager
def bar(description: str, total: int | None, unit: str = "count"):
    """A bar advanced by calling the yielded ``update(done, total=None)``; unit 'bytes' shows sizes and speed.
    The callback is a no-op when progress is off, so callers never test for it."""
    if not enabled():
        yield lambda done, total=None: None
        return
    from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TransferSpeedColumn)

    columns = [TextColumn("{task.description}"), BarColumn()]
    columns += [DownloadColumn(), TransferSpeedColumn()] if unit == "bytes" else [MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=_console(), transient=True) as progress_bar:
        task = progress_bar.add_task(description, total=total)

        def update(done: int, total: int | None = None) -> None:
            progress_bar.update(task, completed=done, **({"total": total} if total is not None else {}))

        yield update
