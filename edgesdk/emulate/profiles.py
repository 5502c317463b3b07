"""The boards `edgesdk devices emulate` can bring up: each the target its device gets and what it emulates."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError


@dataclass(frozen=True)
class BoardProfile:
    name: str
    target: str  # a file in targets/: the device's target in devices.yaml
    description: str
    cpus: int  # what /sys/devices/system/cpu/{possible,present} says (the runtimes size their thread pools by it)
    qemu_cpu: str  # the CPU qemu emulates: the board's, so the runtimes pick the kernels its ISA has (the
    # default 'max' has SVE, SME and i8mm, which no Pi has: LiteRT's int8 gave cosine 0.06 on it)
    debian_arch: str = "arm64"
    machine: str = "aarch64"  # platform.machine() on the board
    suite: str = "bookworm"  # Debian 12: Python 3.11, as the wheels installed in it
    python_version: str = "3.11"


PROFILES = {
    "rpi4": BoardProfile("rpi4", "rpi4", "Raspberry Pi 4 (4x Cortex-A72, 64-bit Raspberry Pi OS = Debian 12)", 4, "cortex-a72"),
    "rpi5": BoardProfile("rpi5", "rpi5", "Raspberry Pi 5 (4x Cortex-A76, 64-bit Raspberry Pi OS = Debian 12)", 4, "cortex-a76"),
}


def profile(name: str) -> BoardProfile:
    if name not in PROFILES:
        raise UsageError(f"no emulated board '{name}' (known: {', '.join(PROFILES)})")
    return PROFILES[name]
