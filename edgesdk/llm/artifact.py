"""What export adds to an LM artifact: the tokenizer (prompts are tokenized on the host), the decoder's
shape, and a small reference with the artifact's next-token accuracy on it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import progress
from . import reference
from .metrics import NextTokenStats
from .model import LanguageModel


def reference_windows(feeds: list[dict], limit: int) -> list:
    """The last windows of the reference feeds, longest first, cut to the reference length (and to what a
    static cache holds)."""
    windows = sorted((f["input_ids"][0] for f in feeds), key=len, reverse=True)
    return [w[: min(reference.WINDOW_TOKENS, limit)] for w in windows[: reference.WINDOWS]]


def add_language_model(manifest: dict[str, Any], lm: LanguageModel, out: Path, feeds: list[dict],
                       make_float_run: Callable, make_run: Callable) -> None:
    tokenizer = lm.save_tokenizer(out)
    info: dict[str, Any] = {"config": lm.config.to_json(), "form": lm.form, "context": lm.context, "kv_cache": lm.kv_cache,
                            "tokenizer_dir": tokenizer.name if tokenizer else None}
    windows = reference_windows(feeds, lm.max_tokens)
    if windows:
        # One model in memory at a time: the float logits first, then the artifact's.
        float_run = make_float_run()
        float_logits = [float_run(lm.float_form.prefill_feed(ids))["logits"][0]
                        for ids in progress.track(windows, "float reference", total=len(windows))]
        del float_run
        run = make_run()
        stats = NextTokenStats()
        host_argmax = []
        for ids, expected in zip(progress.track(windows, "checking the artifact", total=len(windows)), float_logits):
            logits = run(lm.prefill_feed(ids))["logits"][0]
            stats.add(ids, logits, expected)
            host_argmax.append(logits.argmax(-1))
        info["reference_file"] = reference.write(out, windows, float_logits, host_argmax)
        manifest["device_files"].append(info["reference_file"])
        manifest["accuracy"] = {"next_token": stats.to_json(), "windows": len(windows)}
    manifest["language_model"] = info
