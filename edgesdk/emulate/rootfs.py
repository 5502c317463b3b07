"""The emulated board's root file system: Debian arm64 (mmdebstrap, its maintainer scripts run by qemu-user
through binfmt) with the runtimes' aarch64 wheels, built once per Debian suite, package list and runtime
versions, and cached under ~/.cache/edgesdk/emulate (EDGESDK_CACHE moves it). The wheels are pinned to this
host's versions, so the board runs the numerics the host checked, compiled for Arm."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from .. import progress
from ..errors import EmulatorError
from .profiles import BoardProfile

READY = ".edgesdk-rootfs.json"  # written last: a folder without it is an interrupted build
# python3 runs the runners; gcc, libc6-dev and make let the board build a C package itself (rpi4-c)
PACKAGES = ("python3", "gcc", "libc6-dev", "make")
RUNTIMES = ("onnxruntime", "ai-edge-litert", "numpy")
WHEEL_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_27_aarch64", "manylinux_2_28_aarch64")
AARCH64_MAGIC = "7f454c460201010000000000000000000200b700"  # an aarch64 ELF header, as binfmt_misc matches it
INSTALL_HINT = "apt-get install mmdebstrap qemu-user-static binfmt-support"
BUILD_TIMEOUT_S = 3600


def cache_root() -> Path:
    return Path(os.environ.get("EDGESDK_CACHE", Path.home() / ".cache" / "edgesdk")) / "emulate"


def runtime_pins() -> list[str]:
    """The runtimes at this host's versions (a runtime absent here: its newest)."""
    pins = []
    for dist in RUNTIMES:
        try:
            pins.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pins.append(dist)
    return pins


def rootfs_path(board: BoardProfile) -> Path:
    key = json.dumps([board.suite, board.debian_arch, PACKAGES, runtime_pins()])
    return cache_root() / f"rootfs-{board.suite}-{board.debian_arch}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise EmulatorError(f"{what} needs root (network namespaces, mounts, a chroot); run it as root, e.g. "
                            f"sudo {Path(sys.argv[0]).name} {' '.join(sys.argv[1:])}")


def require_qemu() -> None:
    """An aarch64 binfmt_misc handler that works inside a chroot: flag F (the interpreter opened when it was
    registered) and a static interpreter (a dynamic one would look for its x86 loader inside the arm64 root)."""
    entries = Path("/proc/sys/fs/binfmt_misc")
    for entry in sorted(entries.glob("*")) if entries.is_dir() else []:
        if entry.name in ("register", "status"):
            continue
        try:
            text = entry.read_text()  # "enabled", "interpreter PATH", "flags: PF", "magic HEX", ...
            fields = {key.rstrip(":"): value for key, _, value in (line.partition(" ") for line in text.splitlines())}
        except OSError:
            continue
        if fields.get("magic", "").startswith(AARCH64_MAGIC[:36]) and text.startswith("enabled"):
            interpreter = fields.get("interpreter", "")
            if "F" in fields.get("flags", "") and not _dynamic_elf(Path(interpreter)):
                return
            raise EmulatorError(f"the aarch64 handler '{entry.name}' ({interpreter}) cannot run inside a chroot: it "
                                f"needs flag F and a static qemu; {INSTALL_HINT}")
    if not (entries / "register").exists():
        raise EmulatorError("binfmt_misc is not mounted: this machine cannot run arm64 programs; run "
                            "'mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc' and "
                            f"'update-binfmts --enable qemu-aarch64' ({INSTALL_HINT} first if absent)")
    raise EmulatorError("no aarch64 handler in binfmt_misc: this machine cannot run arm64 programs; "
                        f"{INSTALL_HINT}, then 'update-binfmts --enable qemu-aarch64'")


def _dynamic_elf(path: Path) -> bool:
    """True when the ELF file names a program interpreter (PT_INTERP): it is dynamically linked."""
    import struct

    try:
        with open(path, "rb") as handle:
            header = handle.read(64)
            if header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit only: the hosts this runs on
                return True
            phoff, = struct.unpack_from("<Q", header, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
            handle.seek(phoff)
            table = handle.read(phentsize * phnum)
    except OSError:
        return True
    return any(struct.unpack_from("<I", table, i * phentsize)[0] == 3 for i in range(phnum))  # 3: PT_INTERP


def ensure_rootfs(board: BoardProfile, log: Path) -> Path:
    """The cached root file system, built when absent (about 5 minutes; its commands' output goes to log)."""
    folder = rootfs_path(board)
    if (folder / READY).is_file():
        return folder
    require_root("building the emulated board's root file system")
    if shutil.which("mmdebstrap") is None:
        raise EmulatorError(f"building the emulated board's root file system needs mmdebstrap; {INSTALL_HINT}")
    require_qemu()
    cache_root().mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".building-", dir=cache_root()))
    root = staging / "root"
    try:
        with progress.step(f"building the {board.debian_arch} Debian {board.suite} root file system (mmdebstrap, "
                           "a few minutes, once)"):
            _run(["mmdebstrap", "--quiet", f"--arch={board.debian_arch}", "--variant=minbase",
                  f"--include={','.join(PACKAGES)}", board.suite, str(root)], log, "mmdebstrap")
        site = root / "usr" / "local" / "lib" / f"python{board.python_version}" / "dist-packages"
        pins = runtime_pins()
        with progress.step(f"installing the {board.machine} wheels of {', '.join(pins)}"):
            platforms = [arg for name in WHEEL_PLATFORMS for arg in ("--platform", name)]
            _run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target",
                  str(site), *platforms, "--python-version", board.python_version, "--implementation", "cp",
                  "--only-binary=:all:", *pins], log, "pip install (aarch64 wheels)")
        machine = _run(["chroot", str(root), "/usr/bin/python3", "-c", "import platform; print(platform.machine())"],
                       log, "python3 in the new root").strip()
        if machine != board.machine:
            raise EmulatorError(f"python3 in the new root file system reports '{machine}', not '{board.machine}'")
        (root / READY).write_text(json.dumps({"suite": board.suite, "arch": board.debian_arch,
                                              "packages": list(PACKAGES), "runtimes": pins}, indent=1))
        shutil.rmtree(folder, ignore_errors=True)  # an older interrupted build
        root.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _run(argv: list[str], log: Path, what: str) -> str:
    with open(log, "a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        try:
            done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=out, text=True, timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise EmulatorError(f"{what} ran past {BUILD_TIMEOUT_S} s (its output: {log})") from None
        out.write(done.stdout)
    if done.returncode != 0:
        tail = log.read_text().strip().splitlines()[-1:] or [""]
        raise EmulatorError(f"{what} failed (exit {done.returncode}): {tail[0][:300]} (whole output: {log})")
    return done.stdout
