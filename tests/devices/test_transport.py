"""Transports against a real sshd (and this machine): quoting, timeouts that kill on the device (with coreutils
`timeout`, and with the python watchdog a device without it gets), host keys, authentication, unreachable
devices, file transfer."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from edgesdk.devices import transport as transport_module
from edgesdk.devices.bounded import remote_command
from edgesdk.devices.inventory import Device, parse_inventory
from edgesdk.devices.ssh import SSHTransport
from edgesdk.devices.transport import LocalTransport, open_transport
from edgesdk.errors import DeviceAuthError, DeviceConnectionError, DeviceError, DeviceTimeoutError, HostKeyError
from tests.devices.sshd_server import free_port, keygen, processes_with, wait_gone


def device(entry: dict, name: str = "loop") -> Device:
    return parse_inventory(yaml.safe_dump({"devices": {name: entry}})).get(name)


@pytest.fixture(params=["ssh", "ssh-watchdog", "local"])
def transport(request, sshd):
    """ssh-watchdog: the path of a device without `timeout` (macOS), forced on this Linux device."""
    if request.param.startswith("ssh"):
        link = open_transport(device(sshd.device()))
        link.use_timeout = request.param == "ssh"
    else:
        link = LocalTransport(Device(name="local", transport="local", target="host"))
    yield link
    link.close()


def test_remote_command_quotes_every_argument():
    command = remote_command(["echo", "$(touch /tmp/x)", "a;b", "it's"], 5, 3)
    assert "'$(touch /tmp/x)'" in command and "'a;b'" in command and "'it'\"'\"'s'" in command
    assert "\n" not in command  # one line, whatever the login shell


@pytest.mark.parametrize("use_timeout, parent", [(True, "timeout"), (False, Path(sys.executable).name)])
def test_the_command_runs_under_timeout_or_else_the_watchdog(sshd, use_timeout, parent):
    link = open_transport(device(sshd.device()))
    link.use_timeout = use_timeout
    try:
        done = link.run(["sh", "-c", "cat /proc/$PPID/comm"], timeout=10)
    finally:
        link.close()
    assert done.stdout.strip() == parent[:15]  # comm is cut at 15 characters


def test_arguments_reach_the_device_verbatim_and_nothing_runs(transport, tmp_path):
    marker = tmp_path / "pwned"
    payloads = [f"$(touch {marker})", f"`touch {marker}`", f"; touch {marker}", f"| touch {marker}", "a b\tc", "'\"", "~"]
    done = transport.run([sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))", *payloads], timeout=30)
    assert done.ok, done.stderr
    assert yaml.safe_load(done.stdout) == payloads
    assert not marker.exists()


def test_exit_code_and_streams(transport):
    done = transport.run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10)
    assert (done.exit_code, done.stdout, done.stderr) == (3, "out\n", "err\n")
    missing = transport.run(["/nonexistent/tool"], timeout=10)
    assert missing.exit_code == 127


def test_stderr_lines_stream_to_a_callback(transport):
    lines = []
    transport.run(["sh", "-c", "echo one >&2; echo two >&2"], timeout=10, on_stderr_line=lines.append)
    assert lines == ["one", "two"]


def test_a_timed_out_command_is_killed_on_the_device_with_its_children(transport):
    tag = str(3000 + uuid.uuid4().int % 6000)
    start = time.monotonic()
    with pytest.raises(DeviceTimeoutError, match=r"ran past its 1 s limit and was killed there"):
        transport.run(["sh", "-c", f"sleep {tag}1 & sleep {tag}2; echo never"], timeout=1)
    assert time.monotonic() - start < 10
    assert wait_gone(f"sleep {tag}") == []


def test_a_command_that_ignores_term_is_killed_after_the_grace(transport, monkeypatch):
    monkeypatch.setattr(transport_module, "KILL_GRACE_S", 1)
    tag = str(3000 + uuid.uuid4().int % 6000)
    start = time.monotonic()
    with pytest.raises(DeviceTimeoutError, match=r"ran past its 1 s limit and was killed there"):
        transport.run(["sh", "-c", f"trap '' TERM; sleep {tag}5 & sleep {tag}6"], timeout=1)
    assert time.monotonic() - start < 1 + 1 + 5
    assert wait_gone(f"sleep {tag}") == []


def test_a_device_without_timeout_or_python_is_a_clear_error(sshd):
    link = open_transport(device(sshd.device(python="/nonexistent/python3")))
    link.use_timeout = False
    try:
        with pytest.raises(DeviceError, match=r"neither a 'timeout' command nor /nonexistent/python3"):
            link.run(["true"], timeout=10)
    finally:
        link.close()


def test_process_probe_sees_a_live_process():
    proc = subprocess.Popen(["sleep", "4242.5"])
    try:
        deadline = time.monotonic() + 5  # until the child has exec'd sleep
        while not processes_with("sleep 4242.5") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert processes_with("sleep 4242.5")
    finally:
        proc.kill()
        proc.wait()
    assert wait_gone("sleep 4242.5") == []


def test_a_client_that_gives_up_kills_the_command_on_the_device(transport):
    """The client's own abort (here: a callback raising, as Ctrl-C would) kills the device's process group."""
    tag = str(3000 + uuid.uuid4().int % 6000)

    def give_up(line):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        transport.run(["sh", "-c", f"echo started >&2; sleep {tag}3 & sleep {tag}4"], timeout=600, on_stderr_line=give_up)
    assert wait_gone(f"sleep {tag}") == []


def test_put_get_remove_roundtrip(transport, tmp_path):
    source = tmp_path / "blob.bin"
    source.write_bytes(bytes(range(256)) * 4000)
    remote = str(tmp_path / "remote.bin")
    seen = []
    transport.put(source, remote, lambda done, total: seen.append((done, total)))
    assert seen[-1] == (source.stat().st_size, source.stat().st_size)
    transport.get(remote, tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()
    transport.remove(remote)
    transport.remove(remote)  # already gone: fine
    assert not Path(remote).exists()


def test_one_connection_serves_many_commands(sshd):
    link = open_transport(device(sshd.device()))
    try:
        first = link._client.get_transport()
        for _ in range(3):
            assert link.run(["true"], timeout=10).ok
        assert link._client.get_transport() is first
    finally:
        link.close()


# -- refusals -------------------------------------------------------------------------------------------

def test_unknown_host_key_is_refused_under_strict(sshd, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyError, match=r"not in .*known_hosts .*ssh-ed25519 SHA256:.*refused under host_key_policy strict"):
        open_transport(device(sshd.device(known_hosts=str(empty))))


def test_missing_known_hosts_file_is_refused_under_strict(sshd, tmp_path):
    with pytest.raises(HostKeyError, match="refused under host_key_policy strict"):
        open_transport(device(sshd.device(known_hosts=str(tmp_path / "absent"))))


def test_changed_host_key_is_refused_even_with_accept_new(sshd, tmp_path):
    other = keygen(tmp_path / "other_host_key")
    kind, blob = Path(f"{other}.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {kind} {blob}\n")
    for policy in ("strict", "accept-new"):
        with pytest.raises(HostKeyError, match=r"DIFFERS from the one in .* ssh-keygen -R"):
            open_transport(device(sshd.device(known_hosts=str(known), host_key_policy=policy)))
    assert known.read_text() == f"[127.0.0.1]:{sshd.port} {kind} {blob}\n"  # not overwritten


def test_accept_new_trusts_and_saves_an_unknown_key(sshd, tmp_path):
    known = tmp_path / "sub" / "known_hosts"
    link = open_transport(device(sshd.device(known_hosts=str(known), host_key_policy="accept-new")))
    assert link.run(["true"], timeout=10).ok
    link.close()
    assert known.read_text() == sshd.host_key_line()
    strict = open_transport(device(sshd.device(known_hosts=str(known))))  # now known: strict accepts it
    strict.close()


def test_wrong_client_key_is_refused(sshd, tmp_path):
    stranger = keygen(tmp_path / "stranger")
    with pytest.raises(DeviceAuthError, match=r"refused authentication with key .*stranger"):
        open_transport(device(sshd.device(key=str(stranger))))


def test_missing_key_file(sshd, tmp_path):
    with pytest.raises(Exception, match="key file .* does not exist"):
        open_transport(device(sshd.device(key=str(tmp_path / "nope"))))


def test_closed_port(sshd):
    with pytest.raises(DeviceConnectionError, match=r"is unreachable"):
        open_transport(device(sshd.device(port=free_port())))


def test_lost_connection_is_a_device_error(fresh_sshd):
    link = open_transport(device(fresh_sshd.device()))
    fresh_sshd.kill()
    with pytest.raises(DeviceConnectionError, match="lost the connection"):
        link.run(["true"], timeout=10)
    link.close()


def test_ssh_transport_is_lazy_about_connecting(sshd):
    link = SSHTransport(device(sshd.device()))
    assert link._client is None
    assert link.run(["true"], timeout=10).ok  # connects on first use
    link.close()
