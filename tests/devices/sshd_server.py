"""A real OpenSSH server (Debian's /usr/sbin/sshd) on a loopback port with throwaway host and client keys,
key-only auth, its own config; and the devices.yaml entries that point at it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgesdk-test", "-f", str(path)], check=True)
    return path


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (sshd forks one child per connection, in its own session)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@dataclass
class SSHServer:
    directory: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    address: str = "127.0.0.1"
    netns: str | None = None  # a network namespace of its own (tests/devices/netns.py): a device with its own address

    def __post_init__(self):
        if not os.path.exists(SSHD):
            pytest.fail(f"{SSHD} is missing: the device tests need a real OpenSSH server; run `make system-deps` "
                        "(installs openssh-server)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.host_key = keygen(self.directory / "host_ed25519")
        self.client_key = keygen(self.directory / "client_ed25519")
        (self.directory / "authorized_keys").write_text(Path(f"{self.client_key}.pub").read_text())
        self.config = (self.directory / "sshd_config").absolute()
        self.config.write_text(
            f"Port {self.port}\nListenAddress {self.address}\nHostKey {self.host_key}\nPidFile none\n"
            f"AuthorizedKeysFile {self.directory / 'authorized_keys'}\nStrictModes no\nUsePAM no\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
            "Subsystem sftp internal-sftp\nLogLevel ERROR\nMaxStartups 50\n"
        )
        self.log = self.directory / "sshd.log"

    def start(self) -> SSHServer:
        os.makedirs("/run/sshd", exist_ok=True)
        inside = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.proc = subprocess.Popen([*inside, SSHD, "-D", "-e", "-f", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "ab"), start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"sshd exited with {self.proc.returncode}: {self.log.read_text()}")
            try:
                with socket.create_connection((self.address, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.01)
        pytest.fail(f"sshd did not listen on port {self.port} within 10 s: {self.log.read_text()}")

    def kill(self) -> None:
        """Kill the server and every connection it serves (as a crash or power cut would)."""
        if self.proc is None:
            return
        for pid in [self.proc.pid, *descendants(self.proc.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        self.proc = None

    def host_key_line(self) -> str:
        kind, blob = Path(f"{self.host_key}.pub").read_text().split()[:2]
        host = self.address if self.port == 22 else f"[{self.address}]:{self.port}"  # known_hosts' own form
        return f"{host} {kind} {blob}\n"

    def known_hosts(self, path: Path | None = None, line: str | None = None) -> Path:
        path = path or self.directory / "known_hosts"
        path.write_text(self.host_key_line() if line is None else line)
        return path

    def device(self, **overrides) -> dict:
        """A devices.yaml entry for this server; the device's python is the test interpreter (it has ORT)."""
        entry = {
            "target": "host",
            "host": self.address,
            "port": self.port,
            "user": "root",
            "key": str(self.client_key),
            "known_hosts": str(self.directory / "known_hosts"),
            "workdir": str(self.directory / "device-workdir"),
            "python": sys.executable,
        }
        entry.update(overrides)
        return entry


def write_devices(path: Path, devices: dict[str, dict]) -> Path:
    path.write_text(yaml.safe_dump({"devices": devices}, sort_keys=False))
    return path


def processes_with(*needles: str) -> list[str]:
    """Command lines of live processes that contain every needle (read from /proc, no pattern language)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        line = raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()
        if line and all(n in line for n in needles):
            found.append(f"{entry} {line}")
    return found


def wait_gone(*needles: str, seconds: float = 5.0) -> list[str]:
    """Poll until no process matches (a killed process may take a moment to be reaped); what is left."""
    deadline = time.monotonic() + seconds
    while (left := processes_with(*needles)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left
