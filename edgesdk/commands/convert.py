"""edgesdk convert MODEL --target T --recipe R --calib CALIB.npz -o OUT_DIR"""

from __future__ import annotations

import argparse

from ._common import add_json_flag, add_recipe_flags, print_json, recipe_options


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "convert",
        help="import, quantize and export a model into an artifact directory",
        description="Import MODEL (.onnx, or a .py file defining build_model()), quantize it with a recipe, "
        "export it for a target and check it against the float model on reference inputs.",
    )
    p.add_argument("model", help="an .onnx file, a .py file whose build_model() returns (nn.Module, example_inputs), "
                   "or a causal LM (.gguf file or transformers model directory)")
    p.add_argument("--target", default="host", help="a target in targets/ (default: host)")
    p.add_argument("--recipe", default=None, help="fp32 | int8 | int8-dynamic | int8-weights | int4 | int4-rtn | "
                   "int4-awq | int4-gptq | gguf (default: the target's); the target's backend must be able to express it")
    p.add_argument("--calib", metavar="NPZ", help="calibration data: one array per model input, first axis = samples "
                   "(a causal LM: a text file, or an .npz of input_ids)")
    p.add_argument("--context", type=int, default=None, metavar="N", help="causal LMs: the static form, a KV cache of "
                   "N slots written in place (default: the dynamic form, a cache that grows)")
    p.add_argument("--reference", metavar="NPZ", help="inputs to store as the artifact's reference (default: --calib)")
    p.add_argument("--option", "-O", action="append", default=[], metavar="KEY=VALUE",
                   help="a recipe option, e.g. -O block_size=64 -O smooth_alpha=0.7 (repeatable)")
    p.add_argument("-o", "--out", required=True, metavar="OUT_DIR", help="artifact directory to write")
    add_recipe_flags(p)
    add_json_flag(p)
    return p


def run(args) -> int:
    from .. import api
    from ..backends import get_backend
    from ..targets import load_target

    target = load_target(args.target)
    recipe = args.recipe or target.default_recipe
    get_backend(target.backend).check_recipe(recipe)  # before a conversion that may take minutes
    graph = api.load(args.model, context=args.context)
    quantized = api.quantize(graph, recipe, calibration=args.calib, **recipe_options(args))
    artifact = api.export(quantized, target, args.out, reference_data=args.reference)
    summary = {
        "artifact": str(artifact.path),
        "target": target.name,
        "backend": artifact.manifest.backend,
        "recipe": artifact.manifest.recipe.model_dump(),
        "bytes": artifact.model_bytes,
        "accuracy": artifact.manifest.accuracy,
    }
    if args.json:
        print_json(summary)
        return 0
    size_mb = summary["bytes"] / 1e6
    model_file = artifact.manifest.model_file
    what = f"the {model_file.rsplit('/', 1)[0]}/ package" if "/" in model_file else f"{model_file} and its weights"
    print(f"wrote {artifact.path}/  ({what}: {size_mb:.1f} MB, recipe {recipe}, "
          f"target {target.name}, backend {target.backend})")
    quantization = artifact.manifest.quantization or {}
    if quantization.get("kv_cache_keys") == "per token only":
        print(f"  {quantization['kv_cache']} KV cache with one scale per token and head: --calib TEXT evens out the "
              "keys' channels first (keys with outlier channels, such as Qwen2.5's, need it)")
    budget = quantization.get("budget")
    if budget:
        kept = budget.get("kept", [])
        print(f"  accuracy budget ({budget['metric']} ≤ {budget['max_loss']:g} on {budget['samples']} calibration "
              f"samples): {budget['loss_before']:.5f} -> {budget['loss_after']:.5f}"
              f"{'' if budget['met'] else ' — NOT MET with every quantized activation float'}; "
              f"{len(kept)} layer groups take a float input, int8 weights per channel "
              f"({budget.get('weight_bytes_added', 0) / 1e6:+.1f} MB)")
        for entry in kept:
            print(f"    {entry['activation']}: {', '.join(entry['layers'])}")
    for name, m in (summary["accuracy"] or {}).get("outputs", {}).items():
        print(f"  {name}: cosine mean {m['cosine_mean']:.5f} min {m['cosine_min']:.5f}, max |err| {m['max_abs_error']:.4g}"
              f"  ({summary['accuracy']['samples']} reference samples)")
    return 0
