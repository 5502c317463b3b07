"""The C backend's tests use the loopback OpenSSH device."""

from tests.devices.conftest import sshd  # noqa: F401  (the loopback OpenSSH device)
