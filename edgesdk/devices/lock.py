"""One measurement at a time per board: a lock on the device, in its workdir, naming its holder.

The lock is a directory made with mkdir (atomic on every POSIX file system) holding holder.json: who holds it
(user, host, pid, command, since when) and a token. The holder refreshes holder.json's mtime every few seconds
while it works; a lock whose heartbeat is older than STALE_S belongs to a holder that died, lost its link or
was killed, and the next pipeline takes it over (renamed away first, so two of them never both win). Each step
is one small python program run by the device's interpreter: no shell, the same on a board and on this machine."""

from __future__ import annotations

import datetime
import getpass
import json
import os
import posixpath
import socket
import sys
import threading
import time
import uuid

from .. import progress
from ..errors import DeviceBusyError, DeviceError

LOCK_DIR = "device.lock"
STALE_S = 60.0  # no heartbeat for this long: the holder is gone
HEARTBEAT_S = 5.0
POLL_S = 2.0

_ACQUIRE = r"""
import json, os, shutil, sys, time
lock, holder, stale_s = os.path.expanduser(sys.argv[1]), sys.argv[2], float(sys.argv[3])
info = os.path.join(lock, "holder.json")
os.makedirs(os.path.dirname(lock), mode=0o700, exist_ok=True)
for attempt in range(5):
    try:
        os.mkdir(lock, 0o700)
    except FileExistsError:
        try:
            age, text = time.time() - os.stat(info).st_mtime, open(info).read()
        except FileNotFoundError:  # between another holder's mkdir and its holder.json, or a crash there
            try:
                age, text = time.time() - os.stat(lock).st_mtime, "{}"
            except FileNotFoundError:
                continue  # released meanwhile
        if age <= stale_s:
            try:
                held = json.loads(text)
            except ValueError:
                held = {}
            print(json.dumps({"acquired": False, "holder": held, "heartbeat_age_s": round(age, 1)}))
            sys.exit(0)
        moved = "%s.stale-%d-%d" % (lock, os.getpid(), attempt)
        try:
            os.rename(lock, moved)  # only one taker wins the rename
        except OSError:
            continue
        shutil.rmtree(moved, ignore_errors=True)
        print(json.dumps({"broke_stale": json.loads(text or "{}") if text.startswith("{") else {}}), file=sys.stderr)
        continue
    partial = info + ".partial"
    with open(partial, "w") as handle:
        handle.write(holder)
    os.rename(partial, info)
    print(json.dumps({"acquired": True}))
    sys.exit(0)
print(json.dumps({"acquired": False, "holder": {}, "heartbeat_age_s": 0}))
"""

_REFRESH = r"""
import json, os, shutil, sys
lock, token, release = os.path.expanduser(sys.argv[1]), sys.argv[2], sys.argv[3] == "release"
info = os.path.join(lock, "holder.json")
try:
    mine = json.load(open(info)).get("token") == token
except (OSError, ValueError):
    mine = False
if mine and release:
    shutil.rmtree(lock, ignore_errors=True)
elif mine:
    os.utime(info)
print(json.dumps({"mine": mine}))
"""


def holder_record(command: str | None = None) -> dict:
    return {"token": uuid.uuid4().hex, "user": getpass.getuser(), "host": socket.gethostname(), "pid": os.getpid(),
            "command": command or " ".join(["edgesdk", *sys.argv[1:]])[:200],
            "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}


def describe(holder: dict, age: float) -> str:
    who = f"{holder.get('user', '?')}@{holder.get('host', '?')} pid {holder.get('pid', '?')}"
    return f"{who} ({holder.get('command', '?')}, since {holder.get('since', '?')}, heartbeat {age:g} s ago)"


class DeviceLock:
    """with DeviceLock(transport, python, workdir, wait_s): ... holds the device's lock, refreshed in a thread.
    ``wait_s`` None: refuse at once when it is held; a number: wait that long (inf: as long as it takes)."""

    def __init__(self, transport, python: str, workdir: str, wait_s: float | None = None, stale_s: float = STALE_S):
        self.transport, self.python, self.wait_s, self.stale_s = transport, python, wait_s, stale_s
        self.path = posixpath.join(workdir, LOCK_DIR)
        self.holder = holder_record()
        self._stop = threading.Event()
        self._beating: threading.Thread | None = None
        self.broke_stale: list[dict] = []  # holders whose stale locks this one took over

    def _python(self, script: str, *args: str) -> dict:
        done = self.transport.run([self.python, "-c", script, *args], timeout=30)
        for line in done.stderr.splitlines():
            if line.startswith('{"broke_stale"'):
                self.broke_stale.append(json.loads(line)["broke_stale"])
        try:
            return json.loads(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise DeviceError(f"device '{self.transport.device.name}': the device lock step failed "
                              f"(exit {done.exit_code}): {done.stderr.strip()[-300:]}") from None

    def acquire(self) -> None:
        name = self.transport.device.name
        deadline = None if self.wait_s is None else time.monotonic() + self.wait_s
        with progress.step(f"taking the lock of {name}"):
            while True:
                answer = self._python(_ACQUIRE, self.path, json.dumps(self.holder), str(self.stale_s))
                if answer["acquired"]:
                    break
                held = describe(answer["holder"], answer["heartbeat_age_s"])
                if deadline is None or time.monotonic() >= deadline:
                    hint = "; pass --wait to wait for it" if self.wait_s is None else f" after waiting {self.wait_s:g} s"
                    raise DeviceBusyError(f"device '{name}' is in use by {held}{hint}")
                time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
        self._beating = threading.Thread(target=self._beat, name=f"lock-{name}", daemon=True)
        self._beating.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._python(_REFRESH, self.path, self.holder["token"], "refresh")
            except Exception:  # a lost link: the run itself reports it; the lock goes stale on the device
                pass

    def release(self) -> None:
        self._stop.set()
        if self._beating is not None:
            self._beating.join(HEARTBEAT_S + 35)
        try:
            self._python(_REFRESH, self.path, self.holder["token"], "release")
        except Exception:  # unreachable now: the lock goes stale on the device and the next taker breaks it
            pass

    def __enter__(self) -> DeviceLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
