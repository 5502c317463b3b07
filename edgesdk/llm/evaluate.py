"""Perplexity, next-token agreement and KL divergence of an LM artifact against its float model, on the
same tokens of a text (windows of ``window`` tokens, each starting with BOS)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import progress
from ..errors import CalibrationError, UsageError
from .metrics import FloatWindow, NextTokenStats
from .text import MIN_EVAL_TOKENS, windows_from

EVAL_WINDOW = 256


def evaluate(artifact: Any, text: str | Path, window: int = EVAL_WINDOW, max_windows: int | None = None,
             threads: int | None = None) -> dict[str, Any]:
    return evaluate_many([artifact], text, window, max_windows, threads)[0]


def evaluate_many(artifacts: list[Any], text: str | Path, window: int = EVAL_WINDOW, max_windows: int | None = None,
                  threads: int | None = None) -> list[dict[str, Any]]:
    """One report per artifact, on the same tokens. Artifacts of one float model (the same file in their
    manifests) share its logits: the float model runs once per window for all of them. Every model of a group
    stays loaded while its windows run."""
    from ..artifact import Artifact

    loaded = [a if isinstance(a, Artifact) else Artifact.load(a) for a in artifacts]
    groups: dict[str, list[int]] = {}
    for i, art in enumerate(loaded):
        if art.manifest.language_model is None:
            raise UsageError(f"{art.path}: not a language-model artifact (perplexity needs a causal LM)")
        entry = art.manifest.files.get(art.manifest.float_model_file)
        groups.setdefault(entry.sha256 if entry else str(i), []).append(i)
    reports: list[dict[str, Any]] = [{} for _ in loaded]
    for members in groups.values():
        for i, report in zip(members, _evaluate_group([loaded[i] for i in members], text, window, max_windows, threads)):
            reports[i] = report
    return reports


def _evaluate_group(arts: list, text, window: int, max_windows: int | None, threads: int | None) -> list[dict[str, Any]]:
    from ..api import _float_runner
    from ..backends import backend_for_artifact
    from .model import LanguageModel

    # the first artifact's tokenizer cuts the windows (about a second to load: the others' are not loaded)
    lms = [LanguageModel.from_manifest(art.manifest.language_model, art.path, tokenizer=i == 0) for i, art in enumerate(arts)]
    first = lms[0]
    for lm in lms:
        if window < 2 or window > lm.max_tokens:
            raise UsageError(f"--window {window}: must be 2..{lm.max_tokens} (the model's {'static ' if lm.context else ''}context)")
    windows = windows_from(first, text, window, max_windows, "evaluation text")
    tokens = sum(len(w) - 1 for w in windows)
    if tokens < MIN_EVAL_TOKENS:
        raise CalibrationError(f"{text}: too short for perplexity ({tokens} predicted tokens; at least {MIN_EVAL_TOKENS} needed)")
    # Every model stays loaded (logits of every window are not kept); the float one maps its weights.
    float_run = _float_runner(arts[0].float_model_path, threads, low_memory=True)
    runs = [backend_for_artifact(art.manifest).host_runner(art.model_path, art.manifest.backend_info, threads)
            for art in arts]
    stats = [NextTokenStats() for _ in arts]
    float_lm = first.float_form  # the float model's cache is float whatever the artifact's
    for ids in progress.track(windows, "evaluating", total=len(windows)):
        expected = FloatWindow.of(ids, float_run(float_lm.prefill_feed(ids))["logits"][0])
        for run, lm, stat in zip(runs, lms, stats):
            stat.add(ids, run(lm.prefill_feed(ids))["logits"][0], expected)
    return [{"artifact": str(art.path), "text": str(text), "window": window, "windows": len(windows), **stat.to_json()}
            for art, stat in zip(arts, stats)]
