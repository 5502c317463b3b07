"""The emulated board's power supply: a thread that plays a known power profile for the fake sensors.

The board draws ``idle_w`` and, while a process running the edgesdk runner is alive (its command line holds
the runner's file name), ``busy_w``. The player writes that number where each fake sensor reads it: a state
file for the fake tegrastats / vcgencmd / meter executables, and sysfs-like trees (an INA3221 hwmon device,
a generic hwmon device, RAPL energy counters that wrap). It logs every change, so a test knows the exact
energy the profile put into any time window."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

FAKES = Path(__file__).resolve().parent / "fakes"
RUNNER_MARK = b"_runner.py"  # device runner files are named <runner>_runner.py (ort_runner.py, litert_runner.py)
VOLTS = 5.0  # bus voltage of the fake INA3221 rails
RAPL_WRAP_UJ = 3_000_000  # a small max_energy_range_uj, so the counter wraps every few hundred ms


def install_fakes(bin_dir: Path) -> Path:
    """Copy the fake tools into ``bin_dir`` with this interpreter in their #! line (quick to start, stdlib only)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in ("tegrastats", "vcgencmd", "meter"):
        text = (FAKES / tool).read_text().split("\n", 1)[1]
        (bin_dir / tool).write_text(f"#!{sys.executable} -IS\n{text}")  # one argument: the kernel passes one
        (bin_dir / tool).chmod(0o755)
    return bin_dir


def _write(path: Path, text: str) -> None:
    """Atomically, as a sysfs read never sees half a value."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)


def runner_alive(marker: bytes) -> bool:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    cmdline = handle.read()
                if RUNNER_MARK in cmdline and marker in cmdline:
                    return True
            except OSError:
                continue
    return False


class ProfilePlayer:
    """Host-side handle; the playing happens in its own process (see ``_play``), at a raised priority where
    allowed, so that it keeps time like hardware would instead of waiting on the test process's GIL."""

    def __init__(self, root: Path, marker: str, idle_w: float = 2.0, busy_w: float = 6.5):
        """``marker``: a string only this test's runner has in its command line (its device workdir): other
        runners on this machine (another test session) must not change the profile."""
        self.root, self.marker, self.idle_w, self.busy_w = root, marker, idle_w, busy_w
        self.bin = install_fakes(root / "bin")
        self.sysfs = root / "sys"
        self.hwmon = self.sysfs / "class/hwmon/hwmon4"  # the generic hwmon device (sensor: hwmon)
        self.log = root / "changes.log"  # "time.time() watts" lines: the power from then on
        self._proc: subprocess.Popen | None = None
        _layout(self.sysfs)
        _set(self.root, idle_w)
        self.log.write_text(f"{time.time()!r} {idle_w!r}\n")

    def start(self) -> ProfilePlayer:
        self._proc = subprocess.Popen([sys.executable, __file__, str(self.root), self.marker, repr(self.idle_w),
                                       repr(self.busy_w)], cwd=str(Path(__file__).resolve().parents[2]))
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None

    @property
    def changes(self) -> list[tuple[float, float]]:
        rows = [line.split() for line in self.log.read_text().splitlines() if line.strip()]
        return [(float(t), float(w)) for t, w in rows]

    def energy_j(self, start: float, end: float) -> float:
        """What the profile drew over [start, end]: the integral of its step function."""
        changes = self.changes
        total = 0.0
        for i, (since, watts) in enumerate(changes):
            until = changes[i + 1][0] if i + 1 < len(changes) else float("inf")
            overlap = min(until, end) - max(since, start)
            if overlap > 0:
                total += watts * overlap
        return total


def _layout(sysfs: Path) -> None:
    shutil.rmtree(sysfs, ignore_errors=True)
    other = sysfs / "class/hwmon/hwmon0"
    other.mkdir(parents=True)
    _write(other / "name", "soctherm")
    ina = sysfs / "class/hwmon/hwmon2"
    ina.mkdir(parents=True)
    _write(ina / "name", "ina3221")
    for channel, label in ((1, "VDD_IN"), (2, "VDD_CPU_GPU_CV"), (3, "VDD_SOC")):
        _write(ina / f"in{channel}_label", label)
        _write(ina / f"in{channel}_input", str(int(VOLTS * 1000)))
    _write(ina / "in7_label", "sum of shunt voltages")
    hwmon = sysfs / "class/hwmon/hwmon4"
    hwmon.mkdir(parents=True)
    _write(hwmon / "name", "ina226")
    rapl = sysfs / "class/powercap/intel-rapl:0"
    rapl.mkdir(parents=True)
    _write(rapl / "name", "package-0")
    _write(rapl / "max_energy_range_uj", str(RAPL_WRAP_UJ))
    _write(rapl / "energy_uj", "0")


def _set(root: Path, watts: float) -> None:
    """Show ``watts`` on every fake sensor but RAPL (whose counter the play loop moves)."""
    _write(root / "bin" / "power_w", f"{watts:.3f}")
    ina = root / "sys/class/hwmon/hwmon2"
    for channel, share in ((1, 1.0), (2, 0.45), (3, 0.2)):
        _write(ina / f"curr{channel}_input", str(round(watts * share / VOLTS * 1000)))
    _write(ina / "curr4_input", str(round(watts * 1.65 / VOLTS * 1000)))  # the chip's sum channel: never counted
    _write(root / "sys/class/hwmon/hwmon4/power1_input", str(round(watts * 1e6)))


def _play(root: Path, marker: bytes, idle_w: float, busy_w: float) -> None:
    """The player process. The RAPL counter moves every millisecond (as the real one does, roughly);
    looking for the runner in /proc costs more, so that happens every 10 ms."""
    try:
        os.nice(-10)
    except OSError:
        pass
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    counter = root / "sys/class/powercap/intel-rapl:0/energy_uj"
    watts, last, tick, energy_uj = idle_w, time.time(), 0, 0.0

    def accrue(until: float) -> None:
        """The counter takes what was drawn since the last tick, then wraps like the real one."""
        nonlocal energy_uj, last
        energy_uj = (energy_uj + watts * (until - last) * 1e6) % RAPL_WRAP_UJ
        _write(counter, str(int(energy_uj)))
        last = until

    with open(root / "changes.log", "a") as log:
        while not stop.is_set():
            accrue(time.time())
            if tick % 10 == 0:
                wanted = busy_w if runner_alive(marker) else idle_w
                if wanted != watts:
                    # The scan of /proc takes a while under load: the old power holds until the moment the
                    # log names, for the counter as for the other sensors.
                    changed = time.time()
                    accrue(changed)
                    watts = wanted
                    _set(root, watts)
                    log.write(f"{changed!r} {watts!r}\n")
                    log.flush()
            tick += 1
            time.sleep(0.001)


def sensor_configs(player: ProfilePlayer) -> dict[str, dict]:
    """A working `power:` block for every sensor kind on this emulated board."""
    return {
        "tegrastats": {"sensor": "tegrastats"},
        "ina3221": {"sensor": "ina3221", "root": str(player.sysfs)},
        "rpi5-pmic": {"sensor": "rpi5-pmic"},
        "hwmon": {"sensor": "hwmon", "path": str(player.hwmon)},
        "rapl": {"sensor": "rapl", "root": str(player.sysfs)},
        # Arguments with a space: split like a shell would, passed to the meter as a list.
        "command": {"sensor": "command", "command": "meter --channel 'board 5V'", "unit": "mW"},
    }


if __name__ == "__main__":
    _play(Path(sys.argv[1]), sys.argv[2].encode(), float(sys.argv[3]), float(sys.argv[4]))
