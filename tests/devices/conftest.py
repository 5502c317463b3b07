"""Device-test fixtures: a real OpenSSH server on loopback and a devices.yaml pointing at it. No mocks:
paramiko talks to Debian's sshd. Without /usr/sbin/sshd these tests FAIL (run `make system-deps`)."""

from __future__ import annotations

import pytest

from tests.devices.sshd_server import SSHServer, write_devices


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """One sshd for the session (tests that kill a server use ``fresh_sshd``)."""
    server = SSHServer(tmp_path_factory.mktemp("sshd")).start()
    server.known_hosts()
    yield server
    server.kill()


@pytest.fixture
def fresh_sshd(tmp_path):
    server = SSHServer(tmp_path / "sshd").start()
    server.known_hosts()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def devices_file(sshd, tmp_path_factory):
    """devices.yaml with the loopback SSH device 'loop' (target host) and 'local'."""
    directory = tmp_path_factory.mktemp("inventory")
    return write_devices(directory / "devices.yaml", {
        "loop": sshd.device(),
        "local": {"transport": "local", "target": "host", "workdir": str(directory / "local-workdir")},
    })


@pytest.fixture(scope="session")
def int8_artifact(minilm_artifacts):
    """The real all-MiniLM-L6-v2 int8 artifact, shared by every device test."""
    return minilm_artifacts("int8")
