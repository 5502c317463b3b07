"""all-MiniLM-L6-v2 on LiteRT: edgesdk's TFLite artifacts (fp32, int8-dynamic, full int8) against edgesdk's ONNX
Runtime int8 artifact and a peer TFLite path, measured in one run.

    python benchmarks/minilm_tflite.py [--rounds 7] [--runs 20] [--heldout 600]

The peer is the LiteRT converter's own post-training full-integer quantization: the same float TF graph,
TFLiteConverter with a representative dataset (the same 64 calibration sentences edgesdk calibrates on) and
TFLITE_BUILTINS_INT8, so TF calibrates every range itself. (onnx2tf was not used: it declares none of its
dependencies and transposes 3-D inputs; DESIGN.md.)

Conversion happens in this process. Each runtime is then measured in a process of its own (ORT and LiteRT
loaded together slow each other's thread pools): one LiteRT process times the four .tflite files in
interleaved rounds (every model once per round, median of the round medians), one ORT process the ORT int8
artifact and the fp32 ONNX model the same way, one after the other in this run. 1 thread, batch 1, sequence
128. Accuracy: cosine of the sentence embeddings to the fp32 ONNX model's (ORT) over the held-out sentences."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def time_models(runners: dict, feeds: list, rounds: int, runs: int) -> dict[str, float]:
    timing_feed = feeds[0]
    for run in runners.values():
        for _ in range(5):
            run(timing_feed)
    medians: dict[str, list[float]] = {label: [] for label in runners}
    for _ in range(rounds):
        for label, run in runners.items():
            samples = []
            for _ in range(runs):
                start = time.perf_counter()
                run(timing_feed)
                samples.append((time.perf_counter() - start) * 1e3)
            medians[label].append(statistics.median(samples))
    return {label: statistics.median(values) for label, values in medians.items()}


def worker(runtime: str, plan_file: str) -> int:
    """Run in a fresh process: embeddings of every held-out feed and latency, for one runtime's models."""
    plan = json.loads(Path(plan_file).read_text())
    with np.load(plan["heldout"]) as npz:
        heldout = {k: npz[k] for k in npz.files}
    feeds = [{k: v[i : i + 1] for k, v in heldout.items()} for i in range(len(heldout["input_ids"]))]
    runners = {}
    for label, model in plan["models"].items():
        if runtime == "litert":
            from edgesdk.backends.tflite.interpreter import host_runner

            runners[label] = host_runner(model["path"], model["io"], threads=1)
        else:
            from edgesdk.runtime import ort_session
            from edgesdk.runtime import run as ort_run

            session = ort_session(Path(model["path"]), threads=1)
            runners[label] = lambda feed, session=session: ort_run(session, feed)
    out = {label: np.concatenate([run(f)["sentence_embedding"] for f in feeds]) for label, run in runners.items()}
    latency = time_models(runners, feeds, plan["rounds"], plan["runs"])
    np.savez(plan["result"].replace(".json", ".npz"), **{k.replace(" ", "_"): v for k, v in out.items()})
    Path(plan["result"]).write_text(json.dumps({"latency_ms": latency, "keys": {k: k.replace(" ", "_") for k in out}}))
    return 0


def measure(runtime: str, models: dict, work: Path, args) -> tuple[dict, dict]:
    plan = {"models": models, "heldout": str(work / "heldout.npz"), "rounds": args.rounds, "runs": args.runs,
            "result": str(work / f"result-{runtime}.json")}
    (work / f"plan-{runtime}.json").write_text(json.dumps(plan))
    print(f"measuring {len(models)} model(s) on {runtime} in its own process", file=sys.stderr)
    subprocess.run([sys.executable, __file__, "--worker", runtime, str(work / f"plan-{runtime}.json")], check=True)
    result = json.loads(Path(plan["result"]).read_text())
    with np.load(plan["result"].replace(".json", ".npz")) as npz:
        embeddings = {label: npz[key] for label, key in result["keys"].items()}
    return result["latency_ms"], embeddings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per model per round")
    parser.add_argument("--heldout", type=int, default=600)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker)

    import edgesdk
    from edgesdk import progress
    from edgesdk.backends.tflite.convert import tf_ptq
    from edgesdk.calibration import CalibrationData
    from edgesdk.metrics import cosine
    from edgesdk.zoo import minilm

    progress.set_enabled(False)
    work = Path(tempfile.mkdtemp(prefix="edgesdk-bench-tflite-"))
    calibration, heldout = minilm.datasets(calibration=64, heldout=args.heldout)
    np.savez(work / "calib.npz", **calibration)
    np.savez(work / "heldout.npz", **heldout)
    print(f"exporting all-MiniLM-L6-v2 and converting (work dir {work})", file=sys.stderr)
    module, example, options = minilm.build_model()
    graph = edgesdk.load(module, example, **options)
    fp32_onnx = graph.save(work / "fp32.onnx")

    litert: dict[str, dict] = {}
    for label, recipe in [("TFLite fp32", "fp32"), ("TFLite int8-dynamic", "int8-dynamic"),
                          ("TFLite full int8 (edgesdk)", "int8")]:
        started = time.perf_counter()
        quantized = edgesdk.quantize(graph, recipe, calibration=work / "calib.npz" if recipe == "int8" else None)
        art = edgesdk.export(quantized, "host-tflite", work / recipe, reference_data=work / "calib.npz")
        print(f"  {label}: converted in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        litert[label] = {"path": str(art.model_path), "io": art.manifest.backend_info["io"]}
    started = time.perf_counter()
    feeds = list(CalibrationData.coerce(work / "calib.npz", "calibration").feeds(graph))
    peer, io = tf_ptq(graph, feeds)
    (work / "peer.tflite").write_bytes(peer)
    litert["TFLite full int8 (TF converter's own PTQ)"] = {"path": str(work / "peer.tflite"), "io": io}
    print(f"  peer: converted in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    ort_int8 = edgesdk.export(edgesdk.quantize(graph, "int8", calibration=work / "calib.npz"), "host", work / "ort-int8")
    ort = {"ONNX fp32 (ORT, reference)": {"path": str(fp32_onnx)},
           "edgesdk ORT int8": {"path": str(ort_int8.model_path)}}

    latency, embeddings = {}, {}
    for runtime, models in (("ort", ort), ("litert", litert)):
        lat, emb = measure(runtime, models, work, args)
        latency |= lat
        embeddings |= emb
    reference = embeddings["ONNX fp32 (ORT, reference)"]
    base = latency["TFLite fp32"]
    base_size = Path(litert["TFLite fp32"]["path"]).stat().st_size
    rows = {**litert, "edgesdk ORT int8": ort["edgesdk ORT int8"]}
    print()
    print(f"all-MiniLM-L6-v2, {args.heldout} held-out sentences, 1 thread, batch 1, seq 128")
    print()
    print("| model | size MB | size vs TFLite fp32 | latency ms | speed-up vs TFLite fp32 | cosine mean | cosine min |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, model in rows.items():
        size = Path(model["path"]).stat().st_size
        cos = cosine(embeddings[label], reference)
        print(f"| {label} | {size / 1e6:.1f} | {size / base_size:.1%} | {latency[label]:.2f} | "
              f"{base / latency[label]:.2f}x | {cos.mean():.5f} | {cos.min():.5f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
