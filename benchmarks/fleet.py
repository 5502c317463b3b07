"""A fleet against one device: N devices (network namespaces on this machine, each its own sshd and address)
profiled at once by `edgesdk profile --devices-tag`, against one of them alone and against the N one after
another, all in one run. Root only (ip netns).

    python benchmarks/fleet.py [--devices 8] [--runs 20] [--repeats 3]

The artifact is the small MLP of tests/helpers.py at int8 (what a profile costs besides the model's own
compute: connect, device facts, upload, runner start, reference check). The N devices share this machine's
cores, while N boards would each bring their own: the CPU-bound share of a profile grows with N here, and
the ratio is an upper bound of what a real fleet pays."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.devices.netns import start_netns_device  # noqa: E402
from tests.devices.sshd_server import write_devices  # noqa: E402
from tests.helpers import mlp_artifacts  # noqa: E402


CPU: list[float] = []  # the machine's busy CPU seconds during each timed command (host and devices alike)


def busy_cpu_s() -> float:
    """Busy CPU seconds of the whole machine since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def timed(argv: list[str]) -> float:
    cpu, start = busy_cpu_s(), time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - start
    CPU.append(busy_cpu_s() - cpu)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(argv)}\n{done.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="each figure is the median of this many")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgesdk-fleet-") as tmp:
        work = Path(tmp)
        boards = []
        try:
            for index in range(1, args.devices + 1):
                boards.append(start_netns_device(work / f"d{index}", 100 + index))
            devices = write_devices(work / "devices.yaml", {f"d{i + 1}": b.server.device(tags=["bench"])
                                                            for i, b in enumerate(boards)})
            artifact = mlp_artifacts(work)["int8"]
            base = [sys.executable, "-m", "edgesdk.cli", "profile", str(artifact.path), "--devices", str(devices),
                    "--runs", str(args.runs), "--warmup", "2", "--runs-dir", str(work / "runs"), "--json"]
            timed(base + ["--devices-tag", "bench"])  # every device has the files: uploads are not timed
            one, serial, fleet, fleet_cpu = [], [], [], []
            for _ in range(args.repeats):
                one.append(timed(base + ["--device", "d1"]))
                serial.append(sum(timed(base + ["--device", f"d{i + 1}"]) for i in range(args.devices)))
                fleet.append(timed(base + ["--devices-tag", "bench"]))
                fleet_cpu.append(CPU[-1])
        finally:
            for board in boards:
                board.stop()
    o, s, f = (statistics.median(x) for x in (one, serial, fleet))
    print(f"fleet of {args.devices} devices (network namespaces on this machine, {args.runs} runs each, "
          f"median of {args.repeats})")
    print("| what | wall s | vs one device |\n|---|---|---|")
    print(f"| one device | {o:.2f} | 1.00 |")
    print(f"| {args.devices} devices one after another | {s:.2f} | {s / o:.2f} |")
    print(f"| {args.devices} devices at once (--devices-tag) | {f:.2f} | {f / o:.2f} |")
    cores, cpu = os.cpu_count() or 1, statistics.median(fleet_cpu)
    print(f"the fleet run kept this machine's {cores} cores busy for {cpu:.2f} CPU s: at least {cpu / cores:.2f} s "
          f"of wall time on {cores} cores ({cpu / cores / o:.2f}x one device), whatever the fleet code does")
    print(json.dumps({"one_s": one, "serial_s": serial, "fleet_s": fleet, "fleet_cpu_s": fleet_cpu}))


if __name__ == "__main__":
    main()
