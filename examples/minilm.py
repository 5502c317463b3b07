"""The main job on this machine: all-MiniLM-L6-v2 through every recipe, verified, then deployed.

    python examples/minilm.py [--out out/minilm] [--device local] [--runs 50]

1. tokenizes real English text (standard-library docstrings) into calibration and held-out sets,
2. imports the PyTorch model once and converts it with every recipe the target's backend can express
   (fp32, int8, int8-dynamic, int4 for ONNX Runtime; all but int4 for --target host-tflite),
3. verifies each artifact against the float model on the held-out sentences,
4. deploys the int8 artifact to a device (the local machine unless --device names one in devices.yaml)
   and prints the latency, memory and on-device accuracy measured there."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import edgesdk
from edgesdk.backends import get_backend
from edgesdk.errors import EdgeSDKError
from edgesdk.quant.recipes import REGISTRY
from edgesdk.targets import load_target
from edgesdk.zoo import minilm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out/minilm", type=Path)
    parser.add_argument("--target", default="host")
    parser.add_argument("--device", default=None, help="a device in devices.yaml (default: the target's first, local for host)")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--heldout", type=int, default=600)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    calibration, heldout = minilm.datasets(calibration=64, heldout=args.heldout)
    calib_path, heldout_path = args.out / "calib.npz", args.out / "heldout.npz"
    np.savez(calib_path, **calibration)
    np.savez(heldout_path, **heldout)
    print(f"data: {len(calibration['input_ids'])} calibration and {len(heldout['input_ids'])} held-out sentences -> {args.out}")

    module, example, options = minilm.build_model()
    graph = edgesdk.load(module, example, **options)
    backend = get_backend(load_target(args.target).backend)
    rows = []
    for recipe in sorted(REGISTRY):
        if REGISTRY[recipe].takes != "any model":
            print(f"  {recipe:13s} skipped: it takes {REGISTRY[recipe].takes}")
            continue
        try:
            backend.check_recipe(recipe)
        except EdgeSDKError as exc:
            print(f"  {recipe:13s} skipped: {exc}")
            continue
        quantized = edgesdk.quantize(graph, recipe, calibration=calib_path if REGISTRY[recipe].needs_calibration else None)
        artifact = edgesdk.export(quantized, args.target, args.out / recipe, reference_data=calib_path)
        report = edgesdk.verify(artifact, heldout_path)["outputs"]["sentence_embedding"]
        size = artifact.manifest.files[artifact.manifest.model_file].bytes
        rows.append((recipe, size, report["cosine_mean"], report["cosine_min"]))
        print(f"  {recipe:13s} {size / 1e6:6.1f} MB  cosine to fp32: mean {report['cosine_mean']:.5f}  min {report['cosine_min']:.5f}")

    if not hasattr(edgesdk, "profile"):
        return 0
    result = edgesdk.profile(args.out / "int8", device=args.device or "local", runs=args.runs)
    summary = result.to_json() if hasattr(result, "to_json") else result
    lat = summary["latency_ms"]
    print(f"int8 on device '{summary['device']}': p50 {lat['p50']:.2f} ms, p90 {lat['p90']:.2f} ms over {lat['n']} runs, "
          f"peak RSS {summary['peak_rss_mb']:.0f} MB")
    for name, acc in (summary.get("accuracy") or {}).items():
        print(f"  on-device {name}: cosine mean {acc['cosine_mean']:.5f}, max |err| {acc['max_abs_error']:.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
