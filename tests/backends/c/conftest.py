"""The C backend's tests use the loopback OpenSSH device (Gemma 3 270M comes from ../conftest.py)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.devices.conftest import sshd  # noqa: F401  (the loopback OpenSSH device)

BINFMT = Path("/proc/sys/fs/binfmt_misc")
# the kernel's match for a 64-bit little-endian aarch64 ELF executable (qemu's own qemu-binfmt-conf.sh values)
AARCH64_ELF = (r"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00",
               r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff")


@pytest.fixture(scope="session")
def aarch64_binfmt():
    """aarch64 programs run on this x86 machine as if native (binfmt_misc hands them to qemu-aarch64), so a
    loopback device can stand in for an arm64 board's userland: registered here when it is not (needs root)."""
    if (BINFMT / "qemu-aarch64").exists():
        return
    qemu = shutil.which("qemu-aarch64")
    if qemu is None or os.geteuid() != 0:
        pytest.skip("aarch64 programs need binfmt_misc + qemu-aarch64 (root; make test installs qemu-user)")
    if not (BINFMT / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], check=True)
    (BINFMT / "register").write_text(f":qemu-aarch64:M::{AARCH64_ELF[0]}:{AARCH64_ELF[1]}:{qemu}:F")
