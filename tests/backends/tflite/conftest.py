"""The loopback OpenSSH server of the device tests, for the TFLite deploy tests."""

from tests.devices.conftest import sshd  # noqa: F401
