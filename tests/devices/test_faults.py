"""Faults against a real sshd device with an address of its own (a network namespace): Ctrl-C on the host mid-run,
the link cut mid-run, the board rebooting (a new sshd process) between runs, a slow link (tc tbf, 20 Mbit)
with upload progress. Each says what happened in one line and keeps the run record; nothing is left running
on the device that the host could still stop. (Timeouts, sshd killed mid-run and mid-upload, unknown or changed
host keys: test_transport.py, test_upload.py, test_host_keys.py.)"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgesdk import progress
from edgesdk.devices.api import profile
from edgesdk.devices.lock import LOCK_DIR

from tests.devices.netns import start_netns_device
from tests.devices.sshd_server import write_devices
from tests.helpers import module_folder


def cli_process(*args: str) -> subprocess.Popen:
    """The CLI as a user starts it at a terminal: with Ctrl-C's default action. A child inherits an ignored
    SIGINT; in the full suite the worker running this module ignored it by then (not one of the big imports
    alone: found by the faulthandler dump, the CLI still looping), and the Ctrl-C test found its CLI deaf."""
    return subprocess.Popen([sys.executable, "-m", "edgesdk.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    with module_folder(tmp_path_factory, "faults") as work:
        device = start_netns_device(work / "f1", 21)
        try:
            yield device, write_devices(work / "devices.yaml", {"f1": device.server.device()})
        finally:
            device.stop()


def runners_on(device) -> list[int]:
    """Pids of runner processes under the device's workdir (the device is this machine, in a namespace)."""
    workdir = device.server.device()["workdir"]
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if f"{workdir}/runners/".encode() in command:
                found.append(int(entry))
    return found


def wait_for(condition, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {within:g} s")
        time.sleep(0.1)


def finish(process: subprocess.Popen, timeout: float) -> str:
    """The process's stderr once it ends; past ``timeout`` it is made to show where each thread is
    (SIGUSR1: the CLI's faulthandler), killed (the tests after this one need the device free), and the test
    fails with that."""
    try:
        return process.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)
        time.sleep(1)
        process.kill()
        pytest.fail(f"still running {timeout:g} s later; its threads:\n{process.communicate()[1]}")


def long_profile(artifact, devices, runs_dir, budget: int) -> subprocess.Popen:
    return cli_process("profile", str(artifact.path), "--device", "f1", "--devices", str(devices), "--runs", "1000000",
                       "--warmup", "0", "--budget", str(budget), "--runs-dir", str(runs_dir))


def run_record(runs_dir: Path) -> dict:
    (folder,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    return json.loads((folder / "run.json").read_text())


def test_ctrl_c_mid_run_kills_the_command_on_the_device(board, int8_artifact, tmp_path):
    device, devices = board
    running = long_profile(int8_artifact, devices, tmp_path / "runs", budget=120)
    wait_for(lambda: runners_on(device), 60, "the runner starting on the device")
    running.send_signal(signal.SIGINT)
    stderr = finish(running, 30)
    assert running.returncode == 130 and stderr.strip().splitlines()[-1] == "edgesdk: interrupted", stderr
    wait_for(lambda: not runners_on(device), 10, "the runner ending on the device")
    record = run_record(tmp_path / "runs")
    assert record["status"] == "interrupted" and "Ctrl-C" in record["error"], record


def test_a_cut_link_mid_run_is_named_and_the_run_kept(board, int8_artifact, tmp_path):
    device, devices = board
    running = long_profile(int8_artifact, devices, tmp_path / "runs", budget=25)
    try:
        wait_for(lambda: runners_on(device), 60, "the runner starting on the device")
        device.cut()
        started = time.monotonic()
        stderr = finish(running, 90)
        noticed = time.monotonic() - started
    finally:
        device.restore()
    assert running.returncode == 7, stderr
    line = stderr.strip().splitlines()[-1]
    assert "lost the link to device 'f1'" in line and "Traceback" not in stderr, stderr
    assert noticed < 40, noticed  # probed after 10 s of silence, no answer within 10 s
    record = run_record(tmp_path / "runs")
    assert record["status"] == "failed" and "lost the link" in record["error"]
    # the device's runner ends by itself (its budget, then the device's own timeout): no orphan stays
    wait_for(lambda: not runners_on(device), 120, "the cut-off runner ending on the device")
    # the lock could not be released over the cut link: it goes stale within STALE_S (60 s) and the next
    # pipeline takes it over (test_lock.py); the tests after this one need not wait for that
    lock = Path(device.server.device()["workdir"]) / LOCK_DIR
    assert lock.is_dir()
    shutil.rmtree(lock)


def test_a_board_that_reboots_between_runs(board, int8_artifact, tmp_path):
    device, devices = board
    base = ["profile", str(int8_artifact.path), "--device", "f1", "--devices", str(devices), "--runs", "3",
            "--warmup", "0", "--runs-dir", str(tmp_path / "runs"), "--json"]
    first = cli_process(*base)
    assert first.wait(120) == 0, first.stderr.read()
    device.server.kill()  # the board goes down: its sshd and every session with it
    device.server.start()  # and comes back with a new process (same host key, same disk)
    second = cli_process(*base)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert json.loads(out)["upload"]["uploaded"] == []  # the files survived the reboot


def test_a_slow_link_uploads_with_progress(board, int8_artifact, tmp_path):
    """20 Mbit (tc tbf on the host end): the upload takes what the link allows and reports its progress."""
    device, _ = board
    fresh = write_devices(tmp_path / "devices.yaml", {"f1": device.server.device(workdir=str(tmp_path / "wd"))})
    seen: list[tuple[str, int | None, int | None]] = []
    device.shape("20mbit")
    try:
        with progress.reporting_to(lambda text, done, total: seen.append((text, done, total))):
            result = profile(int8_artifact, device="f1", devices=fresh, runs=2, warmup=0, runs_dir=tmp_path / "runs")
    finally:
        subprocess.run(["tc", "qdisc", "del", "dev", device.link, "root"], check=False)
    sent = result.upload.bytes_sent
    assert sent > 20e6
    assert result.phases_s["upload"] > 0.8 * sent * 8 / 20e6, (result.phases_s["upload"], sent)
    uploads = [done for text, done, _ in seen if text.startswith("uploading to f1") and done]
    assert len(uploads) > 10 and uploads == sorted(uploads) and uploads[-1] >= 0.99 * sent, uploads[-5:]
