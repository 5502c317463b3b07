"""Gemma 3 270M int4 decoding on this machine: the C package (backend c, target host-c) against edgesdk's ONNX
Runtime int4 artifact and llama.cpp Q4_0, measured in one run at 1 and 2 threads.

    python benchmarks/c_decode.py [--prompt-tokens 64] [--decode 48] [--context 128] [--work DIR]

Rows:
- C package: `edgesdk convert GGUF --target host-c --recipe int4 --context N` (static form: the KV cache is
  state in the package; prefill in chunks of 32 tokens), timed by its own harness (the LM runner protocol:
  `model_run --artifact DIR --prompt-ids ...`, the same program `profile` runs on a device).
- ORT int4: `edgesdk convert GGUF --recipe int4` (the dynamic form, MatMulNBits at accuracy level 4 as the
  host target sets it: int8 activations), and the same with `-O float_activations=true` (level 0: float
  activations, what the C kernels compute); timed around the session calls (benchmarks/llm.py's worker).
- llama.cpp (llama-cpp-python, built here): the GGUF re-quantized by llama.cpp to Q4_0 from the same file,
  timed around llm.eval calls (benchmarks/llm.py's worker).
Every row and thread count runs in a process of its own, one after the other, on the same prompt (the first
--prompt-tokens tokens of the held-out text, BOS first).

Columns: time to first token (the prompt's prefill, median of 3 after one untimed), decode tokens/s (the median
of --decode greedy steps, each one token with the cache), size of the model files, and how many of the decoded
tokens equal the C package's (greedy decoding from the same prompt: int8 activations in ORT level 4 and
llama.cpp's own int4 blocks make them drift apart after a while; float-activation ORT computes what C does).

A second table: where a C decode step's time goes, per op type at each thread count (the harness's --profile:
every kernel call timed, in a run of its own)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import llm as llm_bench  # noqa: E402  (benchmarks/llm.py: conversion with peak memory, re-quantize, speed worker)


def convert(gguf: Path, out: Path, *options: str) -> Path:
    if not (out / "manifest.json").exists():
        llm_bench.run_with_peak([sys.executable, "-m", "edgesdk.cli", "convert", str(gguf), "--recipe", "int4",
                                 *options, "-o", str(out), "--json"])
    return out


def c_speed(artifact: Path, prompt: list[int], decode: int, threads: int, work: Path, profile: bool = False) -> dict:
    """The package's harness, built with the target's flags, in the LM runner protocol (--profile: the time of
    a decode step per op type)."""
    from edgesdk.artifact import Artifact
    from edgesdk.backends.c.build import build

    info = Artifact.load(artifact).manifest.backend_info
    binary = build(artifact / "c", info["cc"], info["cflags"])
    argv = [str(binary), "--weights", str(artifact / "c" / "weights.bin"), "--artifact", str(artifact),
            "--outputs", str(work / "c-outputs.npz"), "--runs", str(decode), "--warmup", "4", "--threads", str(threads),
            "--prompt-ids", ",".join(map(str, prompt))] + (["--profile"] if profile else [])
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    document = json.loads(done.stdout.strip().splitlines()[-1])
    if profile:
        return document["profile"]["decode"]
    ttft = sorted(document["lm"]["ttft_ms"][1:])
    steps = sorted(document["latencies_ms"])
    return {"ttft_ms": ttft[len(ttft) // 2], "decode_tps": 1e3 / steps[len(steps) // 2], "tokens": document["lm"]["tokens"]}


def worker_speed(runtime: str, label: str, path: Path, prompt: list[int], decode: int, threads: int,
                 reference: Path, work: Path) -> dict:
    plan = {"runtime": runtime, "models": {label: str(path)}, "threads": threads, "prompt": prompt, "decode": decode,
            "reference": str(reference)}
    return llm_bench.in_process("speed", plan, work)[label]


def tokens_of(runtime: str, path: Path, prompt: list[int], count: int) -> list[int]:
    """Greedy tokens of a row (untimed, in this process)."""
    if runtime == "llama.cpp":
        llm = llm_bench._llama(str(path), 2, len(prompt) + count + 8)
        llm.reset()
        llm.eval(prompt)
        tokens = [int(np.argmax(llm.scores[len(prompt) - 1]))]
        while len(tokens) < count:
            llm.eval([tokens[-1]])
            tokens.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        return tokens
    from edgesdk.artifact import Artifact
    from edgesdk.backends import backend_for_artifact
    from edgesdk.llm.generate import generate_tokens
    from edgesdk.llm.model import LanguageModel

    art = Artifact.load(path)
    lm = LanguageModel.from_manifest(art.manifest.language_model, art.path, tokenizer=False)
    run = backend_for_artifact(art.manifest).host_runner(art.model_path, art.manifest.backend_info, 2)
    return generate_tokens(run, lm, np.asarray(prompt, np.int64), count, stop_at_eos=False)["tokens"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--decode", type=int, default=48, help="timed decode steps (default 48)")
    parser.add_argument("--context", type=int, default=128, help="the C package's cache slots (default 128)")
    parser.add_argument("--work", help="a work dir to keep (converts in it are reused)")
    args = parser.parse_args()
    if args.prompt_tokens + args.decode + 1 > args.context:
        raise SystemExit("--prompt-tokens + --decode must fit --context")

    from edgesdk.llm.model import LanguageModel
    from edgesdk.zoo import llms
    from edgesdk.zoo.text import lm_texts

    work = Path(args.work or tempfile.mkdtemp(prefix="edgesdk-bench-c-decode-"))
    work.mkdir(parents=True, exist_ok=True)
    gguf = llms.gemma3_270m()
    print(f"work dir {work}", file=sys.stderr)
    rows = {
        "C package (int4, host-c)": ("c", convert(gguf, work / "c", "--target", "host-c", "--context", str(args.context))),
        "ORT int4 (accuracy level 4)": ("onnxruntime", convert(gguf, work / "ort")),
        "ORT int4 (float activations)": ("onnxruntime", convert(gguf, work / "ort-float", "-O", "float_activations=true")),
        "llama.cpp Q4_0": ("llama.cpp", llm_bench.requantize(gguf, "Q4_0", work / "Q4_0.gguf")),
    }
    reference = rows["ORT int4 (accuracy level 4)"][1]  # speed_worker's reference LM (for its plain-.onnx rows only)
    from edgesdk.artifact import Artifact

    art = Artifact.load(reference)
    lm = LanguageModel.from_manifest(art.manifest.language_model, art.path)
    prompt = [int(t) for t in lm.encode(lm_texts()[1][:4000], bos=True)[: args.prompt_tokens]]

    speed: dict[str, dict[int, dict]] = {}
    for threads in (1, 2):
        for label, (runtime, path) in rows.items():
            print(f"  {label}, {threads} thread(s)", file=sys.stderr)
            if runtime == "c":
                speed.setdefault(label, {})[threads] = c_speed(path, prompt, args.decode, threads, work)
            else:
                speed.setdefault(label, {})[threads] = worker_speed(runtime, label, path, prompt, args.decode, threads,
                                                                    reference, work)
    c_tokens = speed["C package (int4, host-c)"][1]["tokens"]
    same = {}
    for label, (runtime, path) in rows.items():
        tokens = c_tokens if runtime == "c" else tokens_of(runtime, path, prompt, len(c_tokens))
        same[label] = next((i for i, (a, b) in enumerate(zip(tokens, c_tokens)) if a != b), len(c_tokens))

    c_label, c_path = "C package (int4, host-c)", rows["C package (int4, host-c)"][1]
    profiles = {threads: c_speed(c_path, prompt, args.decode, threads, work, profile=True) for threads in (1, 2)}
    llama = speed["llama.cpp Q4_0"]
    print(f"\n### Gemma 3 270M int4 decode on this machine: prompt {len(prompt)} tokens, {args.decode} decode steps\n")
    print("| row | size MB | TTFT ms 1t | decode tok/s 1t | vs llama.cpp Q4_0 1t | TTFT ms 2t | decode tok/s 2t | "
          "vs llama.cpp Q4_0 2t | first tokens equal to C's |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, (runtime, path) in rows.items():
        size = path.stat().st_size if runtime == "llama.cpp" else Artifact.load(path, check_files=False).model_bytes
        s = speed[label]
        print(f"| {label} | {size / 1e6:.0f} | {s[1]['ttft_ms']:.0f} | {s[1]['decode_tps']:.1f} | "
              f"{s[1]['decode_tps'] / llama[1]['decode_tps']:.2f}× | {s[2]['ttft_ms']:.0f} | {s[2]['decode_tps']:.1f} | "
              f"{s[2]['decode_tps'] / llama[2]['decode_tps']:.2f}× | {same[label]}/{len(c_tokens)} |")
    print(f"\n### Where a C decode step goes (--profile; {c_label}, prompt {len(prompt)} tokens)\n")
    print("| op | calls per step | ms per step 1t | share 1t | ms per step 2t | share 2t |")
    print("|---|---|---|---|---|---|")
    totals = {t: sum(ms for ms, _ in p.values()) for t, p in profiles.items()}
    for op in sorted(profiles[1], key=lambda o: -profiles[1][o][0]):
        one, two = profiles[1][op], profiles[2].get(op, [0.0, 0.0])
        print(f"| {op} | {one[1]:.0f} | {one[0]:.3f} | {one[0] / totals[1]:.1%} | {two[0]:.3f} | {two[0] / totals[2]:.1%} |")
    print(f"| all kernels | | {totals[1]:.3f} | | {totals[2]:.3f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
