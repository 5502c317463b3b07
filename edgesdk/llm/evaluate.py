"""Perplexity, next-token agreement and KL divergence of an LM artifact against its float model, on the
same tokens of a text (windows of ``window`` tokens, each starting with BOS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import progress
from ..errors import CalibrationError, UsageError
from .metrics import NextTokenStats
from .text import MIN_EVAL_TOKENS, windows_from

EVAL_WINDOW = 256


def evaluate(artifact: Any, text: str | Path, window: int = EVAL_WINDOW, max_windows: int | None = None,
             threads: int | None = None) -> dict[str, Any]:
    from ..api import _float_runner
    from ..artifact import Artifact
    from ..backends import backend_for_artifact
    from .model import LanguageModel

    art = artifact if isinstance(artifact, Artifact) else Artifact.load(artifact)
    info = art.manifest.language_model
    if info is None:
        raise UsageError(f"{art.path}: not a language-model artifact (perplexity needs a causal LM)")
    lm = LanguageModel.from_manifest(info, art.path)
    if window < 2 or window > lm.max_tokens:
        raise UsageError(f"--window {window}: must be 2..{lm.max_tokens} (the model's {'static ' if lm.context else ''}context)")
    windows = windows_from(lm, text, window, max_windows, "evaluation text")
    tokens = sum(len(w) - 1 for w in windows)
    if tokens < MIN_EVAL_TOKENS:
        raise CalibrationError(f"{text}: too short for perplexity ({tokens} predicted tokens; at least {MIN_EVAL_TOKENS} needed)")
    backend = backend_for_artifact(art.manifest)
    # Both models stay loaded (logits of every window are not kept); the float one maps its weights.
    float_run = _float_runner(art.float_model_path, threads, low_memory=True)
    run = backend.host_runner(art.model_path, art.manifest.backend_info, threads)
    stats = NextTokenStats()
    float_lm = lm.float_form  # the float model's cache is float whatever the artifact's
    for ids in progress.track(windows, "evaluating", total=len(windows)):
        stats.add(ids, run(lm.prefill_feed(ids))["logits"][0], float_run(float_lm.prefill_feed(ids))["logits"][0])
    return {"artifact": str(art.path), "text": str(text), "window": window, "windows": len(windows), **stats.to_json()}
