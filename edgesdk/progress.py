"""Progress on long steps: a rich bar on a terminal, silence otherwise (pipes, CI, --json)."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_enabled: bool | None = None
# A thread's own sink (fleets: one line per device): (description, done, total) instead of a bar of its own.
Sink = Callable[[str, "int | None", "int | None"], None]
_local = threading.local()


@contextlib.contextmanager
def reporting_to(sink: Sink):
    """In this thread, steps and bars report to ``sink`` rather than drawing (rich draws one live display)."""
    _local.sink = sink
    try:
        yield
    finally:
        _local.sink = None


def _sink() -> Sink | None:
    return getattr(_local, "sink", None)


def set_enabled(value: bool | None) -> None:
    """Force progress on or off; None goes back to 'only when stderr is a terminal'."""
    global _enabled
    _enabled = value


def enabled() -> bool:
    return sys.stderr.isatty() if _enabled is None else _enabled


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    sink = _sink()
    if sink is not None:
        for done, item in enumerate(items):
            sink(description, done, total)
            yield item
        return
    if not enabled():
        yield from items
        return
    from rich.progress import track as rich_track

    yield from rich_track(items, description=description, total=total, console=_console(), transient=True)


@contextlib.contextmanager
def step(description: str):
    """A spinner for a step with no natural count (export, conversion)."""
    sink = _sink()
    if sink is not None:
        sink(description, None, None)
        yield
        return
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
    sink = _sink()
    if sink is not None:
        sink(description, 0, total)
        yield lambda done, new_total=None: sink(description, done, new_total or total)
        return
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
