"""Greedy generation with the KV cache: one prefill call for the prompt, then one call per new token that
feeds back the cache the previous call returned. Timings are taken around the runtime calls only."""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from ..errors import UsageError


def check_length(lm, prompt_tokens: int, max_tokens: int) -> None:
    if prompt_tokens + max_tokens > lm.max_tokens:
        kind = "static context" if lm.context else "context"
        raise UsageError(f"the prompt ({prompt_tokens} tokens) plus {max_tokens} new tokens exceeds the model's "
                         f"{kind} of {lm.max_tokens} tokens")


def generate_tokens(run, lm, prompt_ids: np.ndarray, max_tokens: int, stop_at_eos: bool = True) -> dict[str, Any]:
    """Run prefill + decode with ``run`` (feed -> outputs); the token ids and the timings. Benchmarks pass
    ``stop_at_eos=False`` to time a fixed number of decode steps."""
    check_length(lm, len(prompt_ids), max_tokens)
    start = time.perf_counter()
    outputs = run(lm.prefill_feed(prompt_ids))
    first = time.perf_counter() - start
    token = int(np.argmax(outputs["logits"][0, -1]))
    generated, steps = [token], []
    eos = set(lm.config.eos_token_ids) if stop_at_eos else set()
    while len(generated) < max_tokens and token not in eos:
        t = time.perf_counter()
        outputs = run(lm.step_feed([token], outputs, len(prompt_ids) + len(generated) - 1))
        steps.append(time.perf_counter() - t)
        token = int(np.argmax(outputs["logits"][0, -1]))
        generated.append(token)
    decode_p50 = statistics.median(steps) if steps else None
    return {
        "prompt_tokens": int(len(prompt_ids)),
        "tokens": generated,
        "time_to_first_token_s": first,
        "prefill_tokens_per_s": len(prompt_ids) / first,
        "decode_ms_p50": None if decode_p50 is None else decode_p50 * 1e3,
        "decode_tokens_per_s": None if decode_p50 is None else 1.0 / decode_p50,
        "decode_steps": len(steps),
    }


def generate(artifact: Any, prompt: str, max_tokens: int = 32, threads: int | None = None) -> dict[str, Any]:
    """Generate on this machine with the artifact's own runtime (the backend's host runner)."""
    from ..artifact import Artifact
    from ..backends import backend_for_artifact
    from .model import LanguageModel

    if max_tokens < 1:
        raise UsageError("--max-tokens must be at least 1")
    art = artifact if isinstance(artifact, Artifact) else Artifact.load(artifact)
    info = art.manifest.language_model
    if info is None:
        raise UsageError(f"{art.path}: not a language-model artifact (generate needs a causal LM)")
    lm = LanguageModel.from_manifest(info, art.path)
    if lm.tokenizer is None:
        raise UsageError(f"{art.path}: the artifact has no tokenizer; give token ids through the Python API")
    ids = lm.encode(prompt)
    run = backend_for_artifact(art.manifest).host_runner(art.model_path, art.manifest.backend_info, threads)
    result = generate_tokens(run, lm, ids, max_tokens)
    return {"artifact": str(art.path), "prompt": prompt, "text": lm.decode(result["tokens"]), **result}
