"""Transports: one interface to run commands and move files on a device, over SSH or on this machine.

    run(argv, timeout) -> Completed(exit_code, stdout, stderr)    argv is a list, never a shell string
    put(local, remote, progress) / get(remote, local) / close()

This module holds the interface and the local transport; the SSH one (every argument through
shlex.join, commands killed on the device when they run too long, host keys verified) is ssh.py."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import (
    DeviceTimeoutError,
)
from .inventory import Device

ProgressCallback = Callable[[int, int], None]  # (bytes done, bytes total) of one file
LineCallback = Callable[[str], None]

KILL_GRACE_S = 3  # after TERM, how long a timed-out command gets before KILL
CHUNK = 1 << 18


@dataclass
class Completed:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class Transport(ABC):
    def __init__(self, device: Device):
        self.device = device

    @abstractmethod
    def run(self, argv: Sequence[str], timeout: float = 60.0, on_stderr_line: LineCallback | None = None) -> Completed:
        """Run argv on the device; raise DeviceTimeoutError (after killing it) past ``timeout`` seconds."""

    @abstractmethod
    def put(self, local: Path, remote: str, progress: ProgressCallback | None = None) -> None: ...

    @abstractmethod
    def get(self, remote: str, local: Path) -> None: ...

    @abstractmethod
    def remove(self, remote: str) -> None:
        """Delete a file on the device if it exists (no shell involved)."""

    def close(self) -> None:
        pass

    def path(self, remote: str) -> str:
        """A device path as this transport's file calls take it (the workdir may start with ~/)."""
        return remote

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _timed_out(self, argv: Sequence[str], timeout: float) -> DeviceTimeoutError:
        return DeviceTimeoutError(
            f"'{Path(argv[0]).name}' on device '{self.device.name}' ran past its {timeout:g} s limit and was killed there"
        )


class _LineSplitter:
    """Feeds complete lines of a byte stream to a callback, keeping the whole text."""

    def __init__(self, callback: LineCallback | None):
        self.callback, self.chunks, self._partial = callback, [], b""

    def feed(self, data: bytes) -> None:
        self.chunks.append(data)
        if self.callback:
            *lines, self._partial = (self._partial + data).split(b"\n")
            for line in lines:
                self.callback(line.decode("utf-8", "replace"))

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", "replace")


class LocalTransport(Transport):
    """This machine: argv runs without a shell, in its own session so a timeout kills its children too."""

    def run(self, argv, timeout=60.0, on_stderr_line=None) -> Completed:
        try:
            proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except FileNotFoundError:
            return Completed(127, "", f"{argv[0]}: not found")
        except PermissionError:
            return Completed(126, "", f"{argv[0]}: permission denied")
        out, err = _LineSplitter(None), _LineSplitter(on_stderr_line)
        failures: list[BaseException] = []  # a callback raising in a reader thread (e.g. Ctrl-C handling)
        readers = [threading.Thread(target=_pump, args=(proc.stdout, out, failures), daemon=True),
                   threading.Thread(target=_pump, args=(proc.stderr, err, failures), daemon=True)]
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None:
                if failures:
                    raise failures[0]
                if time.monotonic() > deadline:
                    raise self._timed_out(argv, timeout)
                try:
                    proc.wait(0.05)
                except subprocess.TimeoutExpired:
                    pass
        except BaseException:
            _kill_group(proc)
            raise
        for reader in readers:
            reader.join()
        if failures:
            raise failures[0]
        return Completed(proc.returncode, out.text(), err.text())

    def put(self, local, remote, progress=None) -> None:
        total, done = Path(local).stat().st_size, 0
        with open(local, "rb") as src, open(self.path(remote), "wb") as dst:
            for chunk in iter(lambda: src.read(CHUNK), b""):
                dst.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)

    def get(self, remote, local) -> None:
        shutil.copyfile(self.path(remote), local)

    def remove(self, remote) -> None:
        try:
            os.remove(self.path(remote))
        except FileNotFoundError:
            pass

    def path(self, remote: str) -> str:
        return os.path.expanduser(remote)


def _pump(stream, sink: _LineSplitter, failures: list[BaseException]) -> None:
    try:
        for data in iter(lambda: stream.read1(CHUNK), b""):
            sink.feed(data)
    except BaseException as exc:  # handed to the waiting thread, which kills the command and re-raises
        failures.append(exc)
    finally:
        stream.close()


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def open_transport(device: Device) -> Transport:
    """A connected transport for a device."""
    if device.transport == "local":
        return LocalTransport(device)
    from .ssh import SSHTransport

    return SSHTransport(device).connect()
