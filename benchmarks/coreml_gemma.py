"""Gemma 3 270M (real weights, its static form: a KV cache of --context slots) through the Core ML backend,
checked where Core ML does not run: per recipe and compute precision, the package's size beside the ORT
artifact's model of the same quantized graph, how far the package's logits (its MIL program run op by op with
numpy, edgesdk/backends/coreml/evaluate.py) are from that ORT artifact's on a held-out prompt, whether their
greedy continuations agree, and the next-token figures each export measured on its reference windows.

    python benchmarks/coreml_gemma.py [--context 64] [--new-tokens 16]

No speed: Core ML predicts only on macOS. int4 is compared with ORT's int4 artifact with float activations
(ORT's default int8 activations for int4 are not the graph's numbers)."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROWS = [("fp32", "float32"), ("int8-weights", "float32"), ("int8", "float32"), ("int4", "float32"), ("int4", "float16")]
PROMPT = "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n"


def _size(paths) -> float:
    return sum(p.stat().st_size for p in paths if p.is_file()) / 1e6


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="coreml-gemma-"))
    try:
        measure(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # ~13 GB of artifacts


def measure(work: Path) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--context", type=int, default=64, help="KV cache slots of the static form (default 64)")
    parser.add_argument("--new-tokens", type=int, default=16, help="greedy tokens compared (default 16)")
    args = parser.parse_args()

    import edgesdk
    from edgesdk.backends import backend_for_artifact
    from edgesdk.errors import EdgeSDKError
    from edgesdk.llm.generate import generate_tokens
    from edgesdk.quant.recipes import get_recipe
    from edgesdk.targets import load_target
    from edgesdk.zoo import llms
    from edgesdk.zoo.text import lm_texts

    (work / "calib.txt").write_text(lm_texts()[0])
    graph = edgesdk.load(str(llms.gemma3_270m()), context=args.context)
    lm = graph.lm
    ids = lm.encode(PROMPT)

    def runner(artifact):
        return backend_for_artifact(artifact.manifest).host_runner(artifact.model_path, artifact.manifest.backend_info)

    quantized, ort, rows = {}, {}, []
    for recipe, precision in ROWS:
        if recipe not in quantized:
            q = graph if recipe == "fp32" else edgesdk.quantize(graph, recipe, calibration=work / "calib.txt")
            if recipe.startswith("int4"):
                q = dataclasses.replace(q, recipe=get_recipe(q.recipe, float_activations=True))
            quantized[recipe] = q
            artifact = edgesdk.export(q, "host", work / f"ort-{recipe}")
            run = runner(artifact)
            ort[recipe] = (artifact, run(lm.prefill_feed(ids))["logits"],
                           generate_tokens(run, lm, ids, args.new_tokens, stop_at_eos=False)["tokens"])
        target = load_target("macos-coreml").model_copy(update={"options": {"compute_precision": precision}})
        target._backend_options = None  # validated again from the new options
        ort_artifact, ort_logits, ort_tokens = ort[recipe]
        row = {"recipe": recipe, "compute": precision,
               "ort_mb": _size(ort_artifact.model_path.parent.glob("model.onnx*"))}
        try:
            artifact = edgesdk.export(quantized[recipe], target, work / f"coreml-{recipe}-{precision}")
        except EdgeSDKError as exc:
            rows.append({**row, "error": str(exc).split(": ", 1)[-1][:90]})
            print(f"{recipe} {precision}: {exc}", file=sys.stderr)
            continue
        run = runner(artifact)
        logits = run(lm.prefill_feed(ids))["logits"]
        tokens = generate_tokens(run, lm, ids, args.new_tokens, stop_at_eos=False)["tokens"]
        ours, theirs = artifact.manifest.accuracy["next_token"], ort_artifact.manifest.accuracy["next_token"]
        rows.append({**row, "target": artifact.manifest.backend_info["deployment_target"],
                     "mb": _size((artifact.path / "model.mlpackage").rglob("*")),
                     "mae": float(np.abs(logits - ort_logits).mean()), "max": float(np.abs(logits - ort_logits).max()),
                     "greedy": sum(a == b for a, b in zip(tokens, ort_tokens)),
                     "ppl": ours["perplexity"], "ort_ppl": theirs["perplexity"], "tokens": ours["tokens"]})
        if recipe == "int8":  # W8A8: both against the literal QDQ graph (ORT with its graph optimizations off)
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            literal = ort.InferenceSession(str(quantized[recipe].save(work / "int8-qdq" / "model.onnx")), options,
                                           providers=["CPUExecutionProvider"])
            names = [o.name for o in literal.get_outputs()]
            qdq = dict(zip(names, literal.run(None, lm.prefill_feed(ids))))["logits"]
            rows[-1]["qdq"] = (float(np.abs(logits - qdq).mean()), float(np.abs(ort_logits - qdq).mean()))
        print(f"{recipe} {precision}: done", file=sys.stderr)

    fp32_mb = next((r["mb"] for r in rows if r["recipe"] == "fp32" and "mb" in r), None)
    print(f"\nGemma 3 270M, static form ({args.context} cache slots), prompt of {len(ids)} tokens (one prefill call of 32, "
          f"the rest decode calls), {args.new_tokens} greedy tokens\n")
    print("| recipe | compute | deployment target | package MB | of fp32 | ORT model MB | logits mean abs error vs ORT (max) "
          "| W8A8: vs literal QDQ graph (ORT artifact's own) | greedy tokens equal | perplexity on reference (ORT) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['recipe']} | {r['compute']} | | | | {r['ort_mb']:.1f} | refused: {r['error']} | | | |")
            continue
        share = f"{100 * r['mb'] / fp32_mb:.1f}%" if fp32_mb else ""
        print(f"| {r['recipe']} | {r['compute']} | {r['target']} | {r['mb']:.1f} | {share} | {r['ort_mb']:.1f} | "
              f"{r['mae']:.2e} ({r['max']:.2e}) | {'%.2e (%.2e)' % r['qdq'] if 'qdq' in r else ''} | {r['greedy']}/{args.new_tokens} | "
              f"{r['ppl']:.3f} ({r['ort_ppl']:.3f}) on {r['tokens']} tokens |")


if __name__ == "__main__":
    main()
