"""What does --power cost, and how right is it?

1. Sampling overhead: latency of the same artifact with and without --power, on the local device and on a
   loopback SSH device (a real sshd), for each sensor kind, repeated and interleaved so drift hits all alike.
2. Energy error: energy per inference measured through each sensor kind against the integral of the known
   profile the emulated board plays (2.0 W idle, 6.5 W while the runner runs).

There is no power sensor on this machine: the sensors are the emulated ones of the tests (fake tegrastats,
vcgencmd and meter on the device's PATH, fake INA3221/hwmon/RAPL trees), so the overhead is that of the
sampler and of these stand-ins; a real tegrastats or sysfs read costs the device less than a Python fake.

    python benchmarks/power_overhead.py [--runs 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import edgesdk  # noqa: E402
from edgesdk import progress  # noqa: E402
from edgesdk.power import SENSORS  # noqa: E402
from tests.devices.sshd_server import SSHServer, write_devices  # noqa: E402
from tests.power.profile_player import ProfilePlayer, sensor_configs  # noqa: E402
from tests.power.stand_in import matmul_artifact  # noqa: E402

KINDS = [kind for kind in SENSORS if kind != "none"]  # every registered sensor that measures something


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate-hz", type=float, default=20.0)
    args = parser.parse_args()
    progress.set_enabled(False)

    base = Path(tempfile.mkdtemp(prefix="edgesdk-power-bench-"))
    artifact = matmul_artifact(base / "model")
    workdir = base / "device-workdir"
    player = ProfilePlayer(base / "board", marker=str(workdir)).start()
    os.environ["PATH"] = f"{player.bin}{os.pathsep}{os.environ['PATH']}"  # the local device's tools
    server = SSHServer(base / "sshd")
    with open(server.config, "a") as config:
        config.write(f"SetEnv PATH={player.bin}:/usr/local/bin:/usr/bin:/bin\n")
    server.start()
    server.known_hosts()
    try:
        configs = {k: {**v, "idle_s": 1.0, "rate_hz": args.rate_hz} for k, v in sensor_configs(player).items()}
        devices: dict[str, dict] = {}
        for where, entry in (("local", {"transport": "local", "target": "host", "workdir": str(workdir),
                                        "python": sys.executable}),
                             ("ssh", server.device(workdir=str(workdir)))):
            devices[f"{where}-off"] = entry
            for kind in KINDS:
                devices[f"{where}-{kind}"] = {**entry, "power": configs[kind]}
        inventory = write_devices(base / "devices.yaml", devices)

        latency: dict[str, list[tuple[float, float]]] = {name: [] for name in devices}
        errors: dict[str, list[float]] = {name: [] for name in devices if not name.endswith("-off")}
        for repeat in range(args.repeats):
            for name in devices:
                result = edgesdk.profile(artifact.path, device=name, runs=args.runs, warmup=10, devices=inventory,
                                         runs_dir=base / "runs", power=not name.endswith("-off"))
                latency[name].append((result.latency.p50, result.latency.mean))
                if result.power is not None:
                    power = result.power
                    if "error" in power:
                        raise SystemExit(f"{name}: {power['error']}")
                    expected = player.energy_j(power["timed_start"], power["timed_end"]) / power["runs"] * 1e3
                    errors[name].append((power["energy_per_inference_mj"] / expected - 1) * 100)
            print(f"repeat {repeat + 1}/{args.repeats} done", file=sys.stderr)
    finally:
        server.kill()
        player.stop()

    print(f"\nLatency with and without --power ({args.runs} timed runs of an 8-layer 512-wide MatMul stack (~5 ms), "
          f"median of {args.repeats} interleaved repeats, sampling at {args.rate_hz:g} Hz)\n")
    print(f"{'device':8} {'power':12} {'p50 ms':>8} {'mean ms':>8} {'p50 vs off':>11} {'mean vs off':>12}")
    for where in ("local", "ssh"):
        off_p50 = statistics.median(p for p, _ in latency[f"{where}-off"])
        off_mean = statistics.median(m for _, m in latency[f"{where}-off"])
        for mode in ["off", *KINDS]:
            p50 = statistics.median(p for p, _ in latency[f"{where}-{mode}"])
            mean = statistics.median(m for _, m in latency[f"{where}-{mode}"])
            print(f"{where:8} {mode:12} {p50:8.3f} {mean:8.3f} {(p50 / off_p50 - 1) * 100:+10.1f}% "
                  f"{(mean / off_mean - 1) * 100:+11.1f}%")
    print("\nEnergy per inference vs the known profile's integral (error in %, per repeat)\n")
    print(f"{'device':8} {'sensor':12} {'errors':>30} {'max |error|':>12}")
    for name, values in errors.items():
        where, kind = name.split("-", 1)
        print(f"{where:8} {kind:12} {' '.join(f'{v:+.2f}' for v in values):>30} {max(abs(v) for v in values):11.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
