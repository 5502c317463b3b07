"""What a device is: architecture, CPU, kernel, OS, python and runtime versions.

A stdlib script runs with the device's python and prints raw facts as JSON; parsing (e.g. /proc/cpuinfo,
which differs between x86 and ARM boards) happens here on the host, where it is unit-tested."""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass, field

from ..errors import DeviceError, MissingRuntimeError
from .transport import Transport

# Versions come from package metadata: importing onnxruntime only to read its version costs ~0.2 s.
# Arguments: MODULE=DIST pairs, the modules the registered backends' runners import.
FACTS_SCRIPT = r"""
import importlib.metadata, importlib.util, json, os, platform, subprocess, sys
def uname(flag, default):  # what the device's userland says it is (`uname`), else what python's os.uname does
    try:
        return subprocess.run(["uname", flag], capture_output=True, text=True, timeout=5).stdout.strip() or default
    except Exception:
        return default
def read(path, limit=65536):
    try:
        with open(path, errors="replace") as handle:
            return handle.read(limit)
    except OSError:
        return ""
def version(module, dist):
    if importlib.util.find_spec(module) is None:
        return None
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
print(json.dumps({
    "python": platform.python_version(), "executable": sys.executable, "machine": uname("-m", platform.machine()),
    "system": uname("-s", platform.system()), "kernel": platform.release(), "os_release": read("/etc/os-release", 4096),
    "cpuinfo": read("/proc/cpuinfo"), "meminfo": read("/proc/meminfo", 4096), "cpu_count": os.cpu_count(),
    "device_model": read("/proc/device-tree/model", 256).strip("\x00 \n"),
    "modules": {m: version(m, d) for m, _, d in (a.partition("=") for a in sys.argv[1:])},
}))
"""

SYSTEM_NAMES = {"Darwin": "macOS (Darwin)"}

# ARM cores by (implementer, part) from /proc/cpuinfo, for boards whose cpuinfo has no model name.
ARM_PARTS = {
    ("0x41", "0xd03"): "Cortex-A53", ("0x41", "0xd04"): "Cortex-A35", ("0x41", "0xd05"): "Cortex-A55",
    ("0x41", "0xd07"): "Cortex-A57", ("0x41", "0xd08"): "Cortex-A72", ("0x41", "0xd09"): "Cortex-A73",
    ("0x41", "0xd0a"): "Cortex-A75", ("0x41", "0xd0b"): "Cortex-A76", ("0x41", "0xd0c"): "Neoverse-N1",
    ("0x41", "0xd0d"): "Cortex-A77", ("0x41", "0xd41"): "Cortex-A78", ("0x41", "0xd42"): "Cortex-A78AE",
    ("0x41", "0xd46"): "Cortex-A510", ("0x41", "0xd47"): "Cortex-A710", ("0x41", "0xd4b"): "Cortex-A78C",
    ("0x41", "0xc07"): "Cortex-A7", ("0x41", "0xc09"): "Cortex-A9", ("0x41", "0xc0f"): "Cortex-A15",
}


@dataclass
class DeviceFacts:
    arch: str
    cpu: str
    cores: int | None
    kernel: str
    os: str
    python: str
    python_executable: str
    memory_mb: float | None
    board: str = ""
    runtimes: dict[str, str | None] = field(default_factory=dict)
    system: str = ""  # uname -s: Linux, Darwin

    def to_json(self) -> dict:
        return asdict(self)


def parse_cpuinfo(text: str) -> tuple[str, int, str]:
    """(CPU model, processor count, board) from /proc/cpuinfo of x86 ('model name') or ARM boards
    ('CPU implementer'/'CPU part' name the core; 'Model' names the board on a Raspberry Pi)."""
    fields: dict[str, str] = {}
    processors = 0
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "processor":
            processors += 1
        fields.setdefault(key, value)
    model_name = " ".join(fields.get("model name", "").split())
    arm_core = ARM_PARTS.get((fields.get("CPU implementer", "").lower(), fields.get("CPU part", "").lower()))
    board = fields.get("Model", "")
    if model_name and not (arm_core and model_name.startswith("ARMv")):  # ARM kernels may name only the ISA
        return model_name, processors, board
    if arm_core:
        return arm_core, processors, board
    for key in ("Hardware", "cpu model", "Processor"):
        if fields.get(key):
            return fields[key], processors, board
    return model_name, processors, board


def parse_os_release(text: str) -> str:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')
    return values.get("PRETTY_NAME") or values.get("NAME", "")


def parse_meminfo_mb(text: str) -> float | None:
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            return round(int(parts[1]) / 1024.0, 1) if len(parts) >= 2 and parts[1].isdigit() else None
    return None


def parse_facts(stdout: str) -> DeviceFacts:
    """The facts script's JSON output as DeviceFacts."""
    try:
        raw = json.loads(stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise DeviceError(f"the device's facts are not JSON: {stdout[:200]!r}") from None
    cpu, processors, board = parse_cpuinfo(raw.get("cpuinfo", ""))
    return DeviceFacts(
        arch=raw.get("machine", ""),
        cpu=cpu,
        cores=raw.get("cpu_count") or processors or None,
        kernel=raw.get("kernel", ""),
        os=parse_os_release(raw.get("os_release", "")) or raw.get("system", ""),
        python=raw.get("python", ""),
        python_executable=raw.get("executable", ""),
        memory_mb=parse_meminfo_mb(raw.get("meminfo", "")),
        board=raw.get("device_model", "") or board,
        runtimes=dict(raw.get("modules", {})),
        system=raw.get("system", ""),
    )


def device_modules() -> list[tuple[str, str]]:
    """(module, distribution) of everything any registered backend's runner imports."""
    from ..backends import all_backends

    found: dict[str, str] = {}
    for backend in all_backends():
        for requirement in backend.device_modules:
            found.update(requirement.names())
    return sorted(found.items())


def gather(transport: Transport, python: str, timeout: float = 30.0) -> DeviceFacts:
    device = transport.device
    modules = [f"{m}={d}" for m, d in device_modules()]
    done = transport.run([python, "-c", FACTS_SCRIPT, *modules], timeout=timeout)
    if done.exit_code in (126, 127):
        raise MissingRuntimeError(
            f"device '{device.name}': python '{python}' cannot be run there ({done.stderr.strip() or 'not found'}); "
            "set 'python:' for this device in devices.yaml"
        )
    if not done.ok:
        detail = (done.stderr.strip().splitlines() or [f"exit {done.exit_code}"])[-1]
        raise DeviceError(f"device '{device.name}': reading device facts with '{python}' failed: {detail}")
    return parse_facts(done.stdout)


def install_command(target, python: str, backend=None) -> str:
    """The command that installs ``backend``'s runtime (default: the target's) on the device, with the device's
    interpreter in it: the target's own ``install:`` when it is about that backend, else the backend's."""
    from ..backends import get_backend

    own = backend is None or backend.name == target.backend
    command = (target.install if own else None) or (backend or get_backend(target.backend)).install
    if "{python}" in command:
        return command.replace("{python}", shlex.quote(python))
    if command.startswith("python3 "):
        return shlex.quote(python) + command[len("python3"):]
    return command


def missing_runtimes(facts: DeviceFacts, backend) -> list[str]:
    """The backend's device modules the device lacks (a module counts when one of its alternatives is there)."""
    return [" or ".join(m for m, _ in req.names()) for req in backend.device_modules
            if not any(facts.runtimes.get(m) for m, _ in req.names())]


def require_runtime(facts: DeviceFacts, backend, target, device_name: str, python: str) -> None:
    if backend.device_systems and facts.system and facts.system not in backend.device_systems:
        raise MissingRuntimeError(f"device '{device_name}' runs {facts.system}; the {backend.name} runtime runs only on "
                                  f"{' or '.join(SYSTEM_NAMES.get(s, s) for s in backend.device_systems)}")
    missing = missing_runtimes(facts, backend)
    if missing:
        raise MissingRuntimeError(
            f"device '{device_name}' lacks {' and '.join(missing)} for python '{python}' (needed by the "
            f"{backend.name} runner); install on the device with: {install_command(target, python, backend)}"
        )
