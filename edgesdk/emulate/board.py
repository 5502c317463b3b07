"""Bring an emulated board up, take it down, say how it is.

A board is the cached root file system under an overlay of its own (what runs on it writes there, so the cache
stays clean and a "reboot" keeps the board's disk), mounted at /srv/edgesdk/NAME with /proc, a minimal /dev
and a tmpfs /sys that holds only the CPU count (onnxruntime under qemu crashes on the real /sys); and an sshd
in a network namespace of its own, reached from the host over a veth pair, whose sessions chroot into it:
every program they start is aarch64, run by qemu-user through binfmt. The sshd daemonizes, so the board
outlives the command that started it. State (keys, known_hosts, overlay, board.json) lives in
~/.cache/edgesdk/emulate/boards/NAME; its keys survive a stop, so devices.yaml stays valid."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import EmulatorError
from .profiles import BoardProfile
from .rootfs import cache_root, ensure_rootfs, require_qemu, require_root

SSHD = "/usr/sbin/sshd"
MOUNT_BASE = Path("/srv/edgesdk")  # chroot paths must be root-owned all the way down: not under /tmp or /root
SUBNET = "10.213"  # board k: host 10.213.k.1, board 10.213.k.2 (a /30 on its veth pair)
DEVICE_NODES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}
START_TIMEOUT_S = 20.0


@dataclass
class BoardState:
    name: str
    board: str  # the profile: rpi4, rpi5
    index: int  # its /30 subnet and veth names
    rootfs: str
    pid: int | None = None

    @property
    def netns(self) -> str:
        return f"edgesdk-{self.name}"

    @property
    def host_ip(self) -> str:
        return f"{SUBNET}.{self.index}.1"

    @property
    def address(self) -> str:
        return f"{SUBNET}.{self.index}.2"

    @property
    def veth(self) -> tuple[str, str]:
        return f"edgesdk{self.index}h", f"edgesdk{self.index}b"  # (host end, board end); 15 characters at most

    @property
    def mountpoint(self) -> Path:
        return MOUNT_BASE / self.name


def boards_root() -> Path:
    return cache_root() / "boards"


def state_dir(name: str) -> Path:
    return boards_root() / name


def load_state(name: str) -> BoardState | None:
    path = state_dir(name) / "board.json"
    return BoardState(**json.loads(path.read_text())) if path.is_file() else None


def _save(state: BoardState) -> None:
    (state_dir(state.name) / "board.json").write_text(json.dumps(asdict(state), indent=1))


def all_states() -> list[BoardState]:
    root = boards_root()
    return [s for p in sorted(root.iterdir()) if (s := load_state(p.name))] if root.is_dir() else []


def running(state: BoardState) -> bool:
    if not state.pid:
        return False
    try:
        os.kill(state.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # this board's sshd (its title names its config), not a process that got the pid since
        return str(state_dir(state.name) / "sshd_config").encode() in Path(f"/proc/{state.pid}/cmdline").read_bytes()
    except OSError:
        return False


def start(name: str, board: BoardProfile, log: Path | None = None) -> BoardState:
    """The board up (built first when its root file system is not cached); a running board is left as it is."""
    require_root("an emulated board")
    if not os.path.exists(SSHD):
        raise EmulatorError(f"{SSHD} is missing: apt-get install openssh-server")
    require_qemu()
    home = state_dir(name)
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    log = log or home / "build.log"
    state = load_state(name)
    if state and state.board != board.name:
        raise EmulatorError(f"an emulated board '{name}' already exists as a {state.board}; stop it and pick another "
                            f"--name (or remove {home})")
    if state and running(state):
        return state
    rootfs = ensure_rootfs(board, log)
    state = state or BoardState(name, board.name, _free_index(), str(rootfs))
    state.rootfs, state.pid = str(rootfs), None
    _keys(state, board)
    try:
        _mount(state, board)
        _network(state)
        state.pid = _sshd(state)
    except BaseException:
        _teardown(state)
        raise
    _save(state)
    return state


def stop(name: str) -> BoardState:
    state = load_state(name)
    if state is None:
        raise EmulatorError(f"no emulated board '{name}' (boards: {', '.join(s.name for s in all_states()) or 'none'})")
    require_root("stopping an emulated board")
    _teardown(state)
    state.pid = None
    _save(state)
    return state


def _free_index() -> int:
    used = {s.index for s in all_states()}
    return next(i for i in range(1, 255) if i not in used)


def _keys(state: BoardState, board: BoardProfile) -> None:
    home = state_dir(state.name)
    for key in ("host_ed25519", "client_ed25519"):
        if not (home / key).is_file():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"edgesdk-{state.name}",
                            "-f", str(home / key)], check=True)
    (home / "authorized_keys").write_text((home / "client_ed25519.pub").read_text())
    kind, blob = (home / "host_ed25519.pub").read_text().split()[:2]
    (home / "known_hosts").write_text(f"{state.address} {kind} {blob}\n")
    (home / "sshd_config").write_text(
        f"Port 22\nListenAddress {state.address}\nHostKey {home / 'host_ed25519'}\nPidFile {home / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {home / 'authorized_keys'}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        f"ChrootDirectory {state.mountpoint}\nSubsystem sftp internal-sftp\nLogLevel ERROR\nMaxStartups 50\n"
        f"SetEnv QEMU_CPU={board.qemu_cpu}\n")  # qemu-user reads it: every session program runs on the board's CPU


def _mount(state: BoardState, board: BoardProfile) -> None:
    home, top = state_dir(state.name), state.mountpoint
    for folder in (MOUNT_BASE.parent, MOUNT_BASE, top):
        folder.mkdir(exist_ok=True)
        folder.chmod(0o755)
    upper, work = home / "overlay" / "upper", home / "overlay" / "work"
    upper.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    _sh("mount", "-t", "overlay", f"edgesdk-{state.name}", "-o",
        f"lowerdir={state.rootfs},upperdir={upper},workdir={work}", str(top))
    _sh("mount", "-t", "proc", "proc", str(top / "proc"))
    _sh("mount", "-t", "tmpfs", "-o", "mode=755,size=64k", "sysfs-cpus", str(top / "sys"))
    cpus = top / "sys" / "devices" / "system" / "cpu"
    cpus.mkdir(parents=True)
    for name in ("possible", "present", "online"):
        (cpus / name).write_text(f"0-{board.cpus - 1}\n")
    _sh("mount", "-t", "tmpfs", "-o", "mode=755,size=1m", "dev", str(top / "dev"))
    for node, (major, minor) in DEVICE_NODES.items():
        os.mknod(top / "dev" / node, 0o20666, os.makedev(major, minor))
    (top / "dev" / "shm").mkdir(mode=0o1777)
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{fd}", top / "dev" / name)


def _network(state: BoardState) -> None:
    host_end, board_end = state.veth
    _sh("ip", "link", "del", host_end, check=False)  # a leftover of a board that was not stopped
    _sh("ip", "netns", "del", state.netns, check=False)
    _sh("ip", "netns", "add", state.netns)
    _sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", board_end)
    _sh("ip", "link", "set", board_end, "netns", state.netns)
    _sh("ip", "addr", "add", f"{state.host_ip}/30", "dev", host_end)
    _sh("ip", "link", "set", host_end, "up")
    inside = ("ip", "netns", "exec", state.netns)
    _sh(*inside, "ip", "addr", "add", f"{state.address}/30", "dev", board_end)
    _sh(*inside, "ip", "link", "set", board_end, "up")
    _sh(*inside, "ip", "link", "set", "lo", "up")


def _sshd(state: BoardState) -> int:
    home = state_dir(state.name)
    (home / "sshd.pid").unlink(missing_ok=True)
    os.makedirs("/run/sshd", exist_ok=True)
    # sshd daemonizes once it listens; its log says why it would not
    _sh("ip", "netns", "exec", state.netns, SSHD, "-f", str(home / "sshd_config"), "-E", str(home / "sshd.log"))
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((state.address, 22), timeout=0.5):
                return int((home / "sshd.pid").read_text())
        except (OSError, ValueError):
            time.sleep(0.05)
    raise EmulatorError(f"the board's sshd did not answer on {state.address}:22 within {START_TIMEOUT_S:g} s "
                        f"(its log: {home / 'sshd.log'})")


def _teardown(state: BoardState) -> None:
    """Everything start() made, in reverse, whatever of it exists: sessions and sshd, namespace, mounts."""
    if state.pid and running(state):
        _kill_tree(state.pid)
    _sh("ip", "netns", "del", state.netns, check=False)  # takes the veth pair with it
    _sh("ip", "link", "del", state.veth[0], check=False)
    top = state.mountpoint
    for sub in ("dev", "sys", "proc", ""):
        target = top / sub if sub else top
        if os.path.ismount(target):
            _sh("umount", "-l", str(target), check=False)


def _kill_tree(pid: int) -> None:
    """sshd and every session below it (each session's processes are the board's programs)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    doomed, todo = [], [pid]
    while todo:
        current = todo.pop()
        doomed.append(current)
        todo.extend(children.get(current, []))
    for victim in doomed:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _sh(*argv: str, check: bool = True) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise EmulatorError(f"{' '.join(argv)} failed: {(done.stderr or done.stdout).strip()[:300]}")


def remove(name: str) -> None:
    """A stopped board's state, keys and overlay gone (its devices.yaml entry stays until edited)."""
    state = load_state(name)
    if state and running(state):
        raise EmulatorError(f"board '{name}' is running; stop it first")
    shutil.rmtree(state_dir(name), ignore_errors=True)
