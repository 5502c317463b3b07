"""Ctrl-C at safe points while paramiko works.

Python raises KeyboardInterrupt in the main thread between any two bytecodes, also inside paramiko between a
lock's acquire and its try: the lock stays held, the connection's reader thread blocks on it, and every later
step on that connection hangs (killing the command on the device, releasing the device lock). Inside
``deferred_interrupt`` a Ctrl-C only sets a flag; the caller's loop checks it where no paramiko lock is held
and raises KeyboardInterrupt itself."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def deferred_interrupt() -> Iterator[Callable[[], None]]:
    """Yields check(): raises KeyboardInterrupt once Ctrl-C was pressed. Outside the main thread, or when
    someone else handles SIGINT, Ctrl-C keeps its usual way and check() does nothing."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield lambda: None
        return
    pressed: list[int] = []
    raised: list[int] = []

    def check() -> None:
        if pressed and not raised:
            raised.append(1)
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, lambda *_: pressed.append(1))
    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed and not raised:  # pressed as the step finished: still an interrupt
        raise KeyboardInterrupt
