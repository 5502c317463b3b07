"""all-MiniLM-L6-v2 through the Core ML backend, checked where Core ML does not run: for each recipe and compute
precision, the package's size and how far its numbers (the package's MIL program run op by op with numpy,
edgesdk/backends/coreml/evaluate.py) are from the ONNX Runtime artifact of the same quantized graph, and, for
W8A8, from the literal QDQ graph (ORT with its graph optimizations off).

    python benchmarks/coreml_minilm.py [--heldout 24]

No speed: Core ML predicts only on macOS, and this measures Linux. int4 is compared with ORT's int4 artifact with
float activations (ORT's default int8 activations for int4 are not the graph's numbers)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROWS = [("fp32", "float32"), ("fp32", "float16"), ("int8-weights", "float16"), ("int8-dynamic", "float16"),
        ("int8", "float32"), ("int8", "float16"), ("int4", "float32"), ("int4", "float16")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heldout", type=int, default=24, help="held-out sentences compared (default 24)")
    args = parser.parse_args()

    import onnxruntime as ort

    import edgesdk
    from edgesdk.backends import get_backend
    from edgesdk.quant.recipes import REGISTRY, get_recipe
    from edgesdk.targets import load_target
    from edgesdk.zoo import minilm

    calibration, heldout = minilm.datasets(calibration=64, heldout=args.heldout)
    work = Path(tempfile.mkdtemp(prefix="coreml-bench-"))
    np.savez(work / "calib.npz", **calibration)
    module, example, options = minilm.build_model()
    graph = edgesdk.load(module, example, **options)

    def embeddings(artifact) -> np.ndarray:
        run = get_backend(artifact.manifest.backend).host_runner(artifact.model_path, artifact.manifest.backend_info)
        return np.concatenate([run({k: v[i:i + 1] for k, v in heldout.items()})["sentence_embedding"]
                               for i in range(args.heldout)])

    quantized, ort_outputs, rows = {}, {}, []
    for recipe, precision in ROWS:
        if recipe not in quantized:
            quantized[recipe] = edgesdk.quantize(graph, recipe, calibration=work / "calib.npz"
                                                 if REGISTRY[recipe].needs_calibration else None)
            q = quantized[recipe]
            if recipe.startswith("int4"):
                q = dataclasses.replace(q, recipe=get_recipe(q.recipe, float_activations=True))
            ort_outputs[recipe] = embeddings(edgesdk.export(q, "host", work / f"ort-{recipe}", reference_data=work / "calib.npz"))
        target = load_target("macos-coreml").model_copy(update={"options": {"compute_precision": precision}})
        target._backend_options = None
        package = edgesdk.export(quantized[recipe], target, work / f"coreml-{recipe}-{precision}", reference_data=work / "calib.npz")
        ours = embeddings(package)
        row = {"recipe": recipe, "precision": precision, "mb": package.model_bytes / 1e6,
               "target": package.manifest.backend_info["deployment_target"],
               "vs_ort": float(np.abs(ours - ort_outputs[recipe]).mean())}
        if recipe == "int8":
            options_ = ort.SessionOptions()
            options_.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            literal = ort.InferenceSession(str(quantized[recipe].save(work / "int8-qdq.onnx")), options_,
                                           providers=["CPUExecutionProvider"])
            names = [i.name for i in literal.get_inputs()]
            qdq = np.concatenate([literal.run(None, {k: heldout[k][i:i + 1] for k in names})[0] for i in range(args.heldout)])
            per_sentence = np.abs(ours - qdq).mean(axis=1)
            row["vs_qdq"] = float(per_sentence.mean())
            row["ort_vs_qdq"] = float(np.abs(ort_outputs[recipe] - qdq).mean())
            row["same"] = int((per_sentence < 1e-6).sum())
        rows.append(row)
        print(f"  {recipe} ({precision}): {row['mb']:.1f} MB, {row['vs_ort']:.2e}", file=sys.stderr)

    fp32 = next(r["mb"] for r in rows if r["recipe"] == "fp32" and r["precision"] == "float32")
    print(f"\nall-MiniLM-L6-v2, {args.heldout} held-out sentences, batch 1, sequence 128\n")
    print("| recipe | compute | deployment target | package MB | of fp32 (float32) | mean abs error vs ORT artifact | W8A8: vs literal QDQ graph (ORT artifact's own) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        extra = (f"{r['vs_qdq']:.2e} ({r['ort_vs_qdq']:.2e}); {r['same']}/{args.heldout} sentences within 1e-6"
                 if "vs_qdq" in r else "")
        print(f"| {r['recipe']} | {r['precision']} | {r['target']} | {r['mb']:.1f} | {r['mb'] / fp32:.1%} | {r['vs_ort']:.2e} | {extra} |")


if __name__ == "__main__":
    main()
