"""The SSH transport (paramiko): every argument through shlex.join, every command bounded in time and killed
on the device when it runs too long (bounded.py), host keys verified (host_keys.py)."""

from __future__ import annotations

import logging
import os
import shlex
import socket
import threading
import time
from pathlib import Path

from ..errors import (
    DeviceAuthError,
    DeviceConnectionError,
    DeviceError,
    HostKeyError,
    InventoryError,
)
from .bounded import NO_WATCHDOG, PID_MARK, remote_command
from .host_keys import AcceptNewPolicy, StrictPolicy, UnknownHostKey, fingerprint
from .interrupts import deferred_interrupt
from .inventory import Device
from .transport import CHUNK, KILL_GRACE_S, Completed, Transport, _LineSplitter

# paramiko logs a failed connection's traceback from its own thread; Python would print it to stderr (no
# handler configured): the error reaches the user once, as edgesdk's one-line message.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

PROBE_AFTER_S = 10.0  # no byte from a running command for this long: probe the link
PROBE_TIMEOUT_S = 10.0  # no answer to the probe within this: the link is gone
EOF_GRACE_S = 2.0  # the exit status came but not EOF: a child the command left behind may hold its output open


class SSHTransport(Transport):
    """paramiko: one connection for every run/put/get of this object, keepalive, host keys verified."""

    use_timeout = True  # False: the python watchdog even where `timeout` exists (tests the macOS path on Linux)

    def __init__(self, device: Device):
        super().__init__(device)
        self._client = None
        self._sftp = None

    # -- connection --------------------------------------------------------------------------------
    def connect(self) -> SSHTransport:
        if self._client is not None:
            return self
        import paramiko

        device = self.device
        known_hosts = os.path.expanduser(device.known_hosts)
        client = paramiko.SSHClient()
        if os.path.exists(known_hosts):
            try:
                client.load_host_keys(known_hosts)
            except (OSError, paramiko.SSHException) as exc:
                raise HostKeyError(f"device '{device.name}': cannot read known_hosts {known_hosts}: {exc}") from None
        policy = AcceptNewPolicy(known_hosts) if device.host_key_policy == "accept-new" else StrictPolicy()
        client.set_missing_host_key_policy(policy)
        auth = {"allow_agent": True, "look_for_keys": True}
        if device.key:
            key_file = os.path.expanduser(device.key)
            if not os.path.isfile(key_file):
                raise InventoryError(f"device '{device.name}': key file {key_file} does not exist")
            auth = {"key_filename": key_file, "allow_agent": False, "look_for_keys": False}
        timeout = device.connect_timeout
        try:
            client.connect(device.host, port=device.port, username=device.user or _local_user(), timeout=timeout,
                           banner_timeout=timeout, auth_timeout=timeout, channel_timeout=timeout, **auth)
        except UnknownHostKey as exc:
            client.close()
            raise HostKeyError(
                f"device '{device.name}' ({device.host}:{device.port}) offered a host key not in {known_hosts} "
                f"({exc.fingerprint}); refused under host_key_policy strict. Check the fingerprint on the device, then "
                f"add it (ssh-keyscan -p {device.port} {device.host} >> {known_hosts}) or set host_key_policy: accept-new"
            ) from None
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyError(
                f"device '{device.name}' ({device.host}:{device.port}) offered a host key that DIFFERS from the one in "
                f"{known_hosts} ({fingerprint(exc.key)}); refused. If the device was reinstalled, remove the old "
                f"entry with: ssh-keygen -R '[{device.host}]:{device.port}' -f {known_hosts}"
            ) from None
        except paramiko.PasswordRequiredException:
            client.close()
            raise DeviceAuthError(f"device '{device.name}': key {device.key} is passphrase-protected; load it into "
                                  "ssh-agent and remove 'key' from devices.yaml") from None
        except paramiko.AuthenticationException as exc:
            client.close()
            which = f"key {device.key}" if device.key else "ssh-agent / ~/.ssh keys"
            raise DeviceAuthError(f"device '{device.name}' ({device.address}) refused authentication with {which}: {exc}") from None
        except paramiko.SSHException as exc:
            client.close()
            raise DeviceConnectionError(f"device '{device.name}' ({device.host}:{device.port}): SSH failed: {exc}") from None
        except (OSError, EOFError) as exc:  # NoValidConnectionsError, refused, timeout, DNS
            client.close()
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            if isinstance(exc, TimeoutError) or "timed out" in reason:
                reason = f"no answer within {timeout:g} s"
            raise DeviceConnectionError(f"device '{device.name}' ({device.host}:{device.port}) is unreachable: {reason}") from None
        link = client.get_transport()
        link.set_keepalive(15)
        # Small request/reply packets: without TCP_NODELAY each channel open waits ~40 ms on delayed ACKs.
        link.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._client = client
        return self

    def close(self) -> None:
        for thing in (self._sftp, self._client):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # closing a dead link must not hide the error that killed it
                    pass
        self._sftp = self._client = None

    def _transport(self):
        self.connect()
        link = self._client.get_transport()
        if link is None or not link.is_active():
            raise DeviceConnectionError(f"lost the connection to device '{self.device.name}'")
        return link

    def _lost(self, exc: BaseException, doing: str) -> DeviceConnectionError:
        self.close()
        return DeviceConnectionError(f"lost the connection to device '{self.device.name}' while {doing}: "
                                     f"{exc or type(exc).__name__}")

    # -- commands ----------------------------------------------------------------------------------
    def run(self, argv, timeout=60.0, on_stderr_line=None) -> Completed:
        with deferred_interrupt() as interrupted:
            return self._run(argv, timeout, on_stderr_line, interrupted)

    def _run(self, argv, timeout, on_stderr_line, interrupted) -> Completed:
        import paramiko

        link = self._transport()
        try:
            channel = link.open_session(timeout=self.device.connect_timeout)
            channel.exec_command(remote_command(argv, timeout, KILL_GRACE_S, self.device.interpreter, self.use_timeout))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise self._lost(exc, f"starting {Path(argv[0]).name}") from None
        pid: list[int] = []

        def stderr_line(line: str) -> None:
            if not pid and line.startswith(PID_MARK):
                pid.append(int(line[len(PID_MARK):]))
            elif on_stderr_line:
                on_stderr_line(line)

        out, err = _LineSplitter(None), _LineSplitter(stderr_line)
        try:
            self._wait(link, channel, argv, timeout, out, err, pid, interrupted)
        except BaseException:
            self._kill_remote(pid)
            channel.close()
            raise
        code = channel.recv_exit_status()
        channel.close()
        stderr = err.text()
        if stderr.startswith(PID_MARK):
            stderr = stderr.split("\n", 1)[1] if "\n" in stderr else ""
        if code in (124, 128 + 9):  # `timeout`'s (and the watchdog's) codes: TERM stopped it / KILL was needed
            raise self._timed_out(argv, timeout)
        if code == 127 and NO_WATCHDOG in stderr:
            raise DeviceError(f"device '{self.device.name}' has neither a 'timeout' command nor "
                              f"{self.device.interpreter} to bound commands with")
        return Completed(code, out.text(), stderr)

    def _wait(self, link, channel, argv, timeout, out, err, pid, interrupted) -> None:
        """Read the command's output until it exits; raise on Ctrl-C, a lost link or the client deadline."""
        # The device's own `timeout` fires first; this client deadline only covers a device that hangs.
        deadline = time.monotonic() + timeout + KILL_GRACE_S + 10
        heard = time.monotonic()
        exited = 0.0
        while True:
            interrupted()
            got = False
            while channel.recv_ready():
                out.feed(channel.recv(CHUNK))
                got = True
            while channel.recv_stderr_ready():
                err.feed(channel.recv_stderr(CHUNK))
                got = True
            if channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready():
                # sshd may send the exit status before the last output it still reads from the command's
                # pipes: done at the channel's EOF (or shortly after, if a child the command left holds them)
                if channel.eof_received or channel.closed:
                    return
                exited = exited or time.monotonic()
                if time.monotonic() - exited > EOF_GRACE_S:
                    return
            if not link.is_active():
                raise DeviceConnectionError(f"lost the connection to device '{self.device.name}' while running "
                                            f"{Path(argv[0]).name}")
            if time.monotonic() > deadline:
                raise self._timed_out(argv, timeout)
            if got:
                heard = time.monotonic()
            elif time.monotonic() - heard > PROBE_AFTER_S:  # silence: is the link still there?
                if not _answers(link, PROBE_TIMEOUT_S):
                    pid.clear()  # nothing reaches the device now; its own `timeout` ends the command there
                    raise DeviceConnectionError(
                        f"lost the link to device '{self.device.name}' while running {Path(argv[0]).name}: no "
                        f"answer for {PROBE_TIMEOUT_S:g} s (the device's own timeout ends the command there)")
                heard = time.monotonic()
            if not got:
                channel.status_event.wait(0.01)

    def _kill_remote(self, pid: list[int]) -> None:
        """Best effort: kill the command's process group on the device when the client gives up first."""
        if not pid or self._client is None:
            return
        try:
            channel = self._client.get_transport().open_session(timeout=5)
            channel.exec_command(shlex.join(["kill", "-KILL", "--", f"-{pid[0]}"]))
            channel.status_event.wait(5)
            channel.close()
        except Exception:
            pass

    # -- files -------------------------------------------------------------------------------------
    def _sftp_client(self):
        if self._sftp is None:
            self._transport()
            try:
                self._sftp = self._client.open_sftp()
            except Exception as exc:
                raise self._lost(exc, "opening SFTP") from None
        return self._sftp

    def put(self, local, remote, progress=None) -> None:
        sftp = self._sftp_client()
        size = Path(local).stat().st_size
        try:
            with open(local, "rb") as handle, deferred_interrupt() as interrupted:
                def sent(done: int, total: int) -> None:
                    interrupted()  # between two chunks: no paramiko lock held
                    if progress:
                        progress(done, total)

                sftp.putfo(handle, self.path(remote), file_size=size, callback=sent, confirm=True)
        except (OSError, EOFError, Exception) as exc:
            if isinstance(exc, DeviceError):
                raise
            raise self._lost(exc, f"uploading {Path(local).name}") from None

    def get(self, remote, local) -> None:
        sftp = self._sftp_client()
        try:
            sftp.get(self.path(remote), str(local))
        except FileNotFoundError:
            raise DeviceError(f"device '{self.device.name}': {remote} does not exist") from None
        except Exception as exc:
            raise self._lost(exc, f"fetching {remote}") from None

    def remove(self, remote) -> None:
        sftp = self._sftp_client()
        try:
            sftp.remove(self.path(remote))
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise self._lost(exc, f"removing {remote}") from None

    def path(self, remote: str) -> str:
        # SSH sessions and SFTP both start in the home directory: '~/x' is the relative path 'x'.
        return remote[2:] if remote.startswith("~/") else ("." if remote == "~" else remote)


def _answers(link, within: float) -> bool:
    """The SSH server answers a keepalive request within ``within`` seconds (a cut cable leaves TCP silent, and
    paramiko waits for the reply without a limit: the probe runs in a thread of its own)."""
    answered = threading.Event()

    def probe() -> None:
        try:
            link.global_request("keepalive@openssh.com", wait=True)  # any reply, even a refusal, is an answer
        except Exception:
            return
        if link.is_active():
            answered.set()

    threading.Thread(target=probe, name="ssh-probe", daemon=True).start()
    return answered.wait(within)


def _local_user() -> str:
    import getpass

    return getpass.getuser()
