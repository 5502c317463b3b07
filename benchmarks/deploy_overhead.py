"""What the profile loop costs beyond the timed runs, per phase, on the loopback SSH device and the local device.

    python benchmarks/deploy_overhead.py [--artifact DIR] [--runs 50] [--warmup 5] [--repeat 3]

Starts a throwaway sshd on loopback (as the device tests do; needs /usr/sbin/sshd: make system-deps), builds
the all-MiniLM-L6-v2 int8 artifact unless --artifact is given, then profiles it on each device, 'cold' (an
empty device workdir: everything is uploaded) and 'warm' (files already there: hashes checked, nothing sent).
Phases (seconds, median over --repeat):

    connect    SSH handshake + auth (0 for local)
    facts      device facts + runtime check (one remote python start)
    upload     hash check on the device, transfer to .partial, hash again, rename
    start      runner command wall time minus its timed runs: exec, python + onnxruntime import, sha256 of the
               model, session load, warm-up iterations, the reference inputs, result JSON
      launch     of which: exec + interpreter start + transport (wall minus everything the runner timed itself)
    collect    fetch the reference outputs, compare with the float reference, remove them on the device
    overhead   whole profile() wall time minus the timed runs
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PHASES = ["connect", "facts", "upload", "start", "  launch", "  import", "  load", "  warmup", "  reference",
          "collect", "timed runs", "overhead", "total wall"]


def build_artifact(directory: Path) -> Path:
    import numpy as np

    import edgesdk
    from edgesdk.zoo import minilm

    calibration, _ = minilm.datasets(calibration=64, heldout=8)
    np.savez(directory / "calib.npz", **calibration)
    module, example, options = minilm.build_model()
    graph = edgesdk.load(module, example, **options)
    quantized = edgesdk.quantize(graph, "int8", calibration=directory / "calib.npz")
    return edgesdk.export(quantized, "host", directory / "minilm-int8", reference_data=directory / "calib.npz").path


def phases_of(result, wall: float) -> dict[str, float]:
    p = result.phases_s
    runner_total = sum(v for k, v in p.items() if k.startswith("runner_"))
    timed = p["runner_timed"]
    return {
        "connect": p["connect"], "facts": p["facts"], "upload": p["upload"],
        "start": p["run"] - timed, "  launch": p["run"] - runner_total,
        "  import": p["runner_import"] + p["runner_check"], "  load": p["runner_load"],
        "  warmup": p["runner_warmup"], "  reference": p["runner_reference"],
        "collect": p["collect"], "timed runs": timed, "overhead": wall - timed, "total wall": wall,
    }


def measure(artifact: Path, device: str, devices: Path, workdir: Path, runs: int, warmup: int, cold: bool, runs_dir: Path):
    import edgesdk

    if cold:
        shutil.rmtree(workdir, ignore_errors=True)
    start = time.perf_counter()
    result = edgesdk.profile(artifact, device=device, runs=runs, warmup=warmup, devices=devices, runs_dir=runs_dir)
    wall = time.perf_counter() - start
    assert bool(result.upload.uploaded) == cold, result.upload
    return phases_of(result, wall), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", type=Path, help="an artifact directory (default: build MiniLM int8)")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from edgesdk import progress
    from tests.devices.sshd_server import SSHServer, write_devices

    progress.set_enabled(False)
    scratch = Path(tempfile.mkdtemp(prefix="edgesdk-overhead-"))
    server = None
    try:
        artifact = args.artifact or build_artifact(scratch)
        server = SSHServer(scratch / "sshd").start()
        server.known_hosts()
        workdirs = {"loop": scratch / "wd-ssh", "local": scratch / "wd-local"}
        devices = write_devices(scratch / "devices.yaml", {
            "loop": server.device(workdir=str(workdirs["loop"])),
            "local": {"transport": "local", "target": "host", "workdir": str(workdirs["local"])},
        })
        columns: dict[str, dict[str, float]] = {}
        sizes = {}
        for device in ("loop", "local"):
            for cold in (True, False):
                samples = []
                for _ in range(args.repeat):  # warm follows cold: the files are already on the device
                    phases, result = measure(artifact, device, devices, workdirs[device], args.runs, args.warmup,
                                             cold, scratch / "runs")
                    samples.append(phases)
                    if cold:
                        sizes[device] = result.upload.bytes_sent
                label = f"{'ssh' if device == 'loop' else 'local'} {'cold' if cold else 'warm'}"
                columns[label] = {k: statistics.median(s[k] for s in samples) for k in PHASES}
        print(f"\nprofile() phases in seconds, median of {args.repeat}; all-MiniLM-L6-v2 int8, {args.runs} timed runs "
              f"+ {args.warmup} warm-up, 1 thread; cold = {sizes.get('loop', 0) / 1e6:.1f} MB uploaded\n")
        labels = list(columns)
        print(f"{'phase':<14}" + "".join(f"{label:>12}" for label in labels))
        for phase in PHASES:
            print(f"{phase:<14}" + "".join(f"{columns[label][phase]:>12.3f}" for label in labels))
    finally:
        if server is not None:
            server.kill()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
