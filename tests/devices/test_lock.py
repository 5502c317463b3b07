"""The device lock against the loopback OpenSSH device: a second pipeline is refused with its holder named
(or waits with --wait), a stale lock is taken over and recorded, a live one keeps its heartbeat, and a holder
releases only its own lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edgesdk.devices.inventory import load_inventory
from edgesdk.devices.lock import HEARTBEAT_S, LOCK_DIR, STALE_S, DeviceLock
from edgesdk.devices.transport import open_transport
from edgesdk.errors import DeviceBusyError


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgesdk.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture
def loop(devices_file):
    device = load_inventory(devices_file).get("loop")
    with open_transport(device) as transport:
        yield device, transport


def lock_dir(device) -> Path:
    return Path(device.workdir).expanduser() / LOCK_DIR


def profile(artifact, devices_file, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    return cli("profile", str(artifact.path), "--device", "loop", "--devices", str(devices_file), "--runs", "2",
               "--warmup", "0", "--runs-dir", str(tmp_path / "runs"), "--json", *extra)


def test_a_held_device_is_refused_with_its_holder_named(loop, int8_artifact, devices_file, tmp_path):
    device, transport = loop
    with DeviceLock(transport, device.interpreter, device.workdir) as held:
        done = profile(int8_artifact, devices_file, tmp_path)
    assert done.returncode == 10, done.stderr
    line = done.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, line
    assert f"device 'loop' is in use by {held.holder['user']}@{held.holder['host']} pid {os.getpid()}" in line, line
    assert "pass --wait" in line
    assert not lock_dir(device).exists()  # released on leaving the block


def test_wait_takes_the_device_once_it_is_free(loop, int8_artifact, devices_file, tmp_path):
    device, transport = loop
    lock = DeviceLock(transport, device.interpreter, device.workdir)
    lock.acquire()
    threading.Timer(4.0, lock.release).start()
    done = profile(int8_artifact, devices_file, tmp_path, "--wait", "60")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["phases_s"]["lock"] > 2.0


def test_waiting_has_a_limit(loop, int8_artifact, devices_file, tmp_path):
    device, transport = loop
    with DeviceLock(transport, device.interpreter, device.workdir):
        done = profile(int8_artifact, devices_file, tmp_path, "--wait", "3")
    assert done.returncode == 10 and "after waiting 3 s" in done.stderr, done.stderr


def test_a_stale_lock_is_taken_over_and_recorded(loop, int8_artifact, devices_file, tmp_path):
    """A holder that died: its heartbeat is older than STALE_S."""
    device, _ = loop
    folder = lock_dir(device)
    folder.mkdir(parents=True)
    (folder / "holder.json").write_text(json.dumps({"token": "dead", "user": "ci", "host": "gone", "pid": 1,
                                                    "command": "edgesdk profile (killed)"}))
    old = time.time() - STALE_S - 5
    os.utime(folder / "holder.json", (old, old))
    done = profile(int8_artifact, devices_file, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = Path(json.loads(done.stdout)["run_dir"])
    assert json.loads((run_dir / "stale_locks.json").read_text())[0]["host"] == "gone"
    assert not folder.exists()


def test_a_held_lock_keeps_its_heartbeat_and_only_its_holder_releases_it(loop):
    device, transport = loop
    with DeviceLock(transport, device.interpreter, device.workdir) as held:
        info = lock_dir(device) / "holder.json"
        first = info.stat().st_mtime
        time.sleep(HEARTBEAT_S + 2)
        assert info.stat().st_mtime > first  # refreshed: never mistaken for a dead holder
        other = DeviceLock(transport, device.interpreter, device.workdir)
        other.release()  # not its lock: left alone
        assert json.loads(info.read_text())["token"] == held.holder["token"]
        with pytest.raises(DeviceBusyError, match="is in use by"):
            other.acquire()
    assert not lock_dir(device).exists()
