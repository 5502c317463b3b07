"""The LM half of a device profile: what the runner is told (the host-tokenized prompt) and what comes
back (time to first token, prefill and decode speed, the device's next tokens on the reference windows
against the float model's and this host's)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np

from ..artifact import Artifact, inside
from ..llm import reference

DEFAULT_PROMPT_TOKENS = 32


def prompt_ids(art: Artifact, prompt: str | list[int] | None, steps: int) -> list[int]:
    """The prompt's token ids for ``steps`` decode steps, checked against the model's context before anything
    connects. Text is tokenized here (the device needs only numpy and the runtime); ids are taken as they
    are; without a prompt, the start of the first reference window."""
    from ..llm.generate import check_length
    from ..llm.model import LanguageModel

    info = art.manifest.language_model
    lm = LanguageModel.from_manifest(info, art.path, tokenizer=isinstance(prompt, str))
    if isinstance(prompt, str):
        ids = [int(t) for t in lm.encode(prompt)]
    elif prompt is not None:
        ids = [int(t) for t in prompt]
    elif info.reference_file:
        ids = [int(t) for t in reference.read(inside(art.path, info.reference_file))["w0_ids"][:DEFAULT_PROMPT_TOKENS]]
    else:
        ids = [int(info.config.get("bos_token_id") or 0)]
    check_length(lm, len(ids), steps + 1)  # a static cache would fail mid-run on the device
    return ids


def runner_flags(ids: list[int]) -> list[str]:
    return ["--prompt-ids", ",".join(str(int(t)) for t in ids)]


def results(art: Artifact, document: dict[str, Any], outputs_npz: Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(accuracy, lm figures) of an LM run from the runner's document and its reference outputs."""
    lm = document.get("lm") or {}
    ttft = lm.get("ttft_ms") or []
    decode = document["latencies_ms"]
    figures: dict[str, Any] = {
        "prompt_tokens": lm.get("prompt_tokens"),
        "tokens": lm.get("tokens", []),
        "time_to_first_token_ms": statistics.median(ttft) if ttft else None,
        "prefill_tokens_per_s": (lm.get("prompt_tokens") or 0) / (statistics.median(ttft) / 1e3) if ttft else None,
        "decode_ms_p50": statistics.median(decode),
        "decode_tokens_per_s": 1e3 / statistics.median(decode),
        "decode_steps": len(decode),
    }
    accuracy: dict[str, Any] = {}
    info = art.manifest.language_model
    if outputs_npz is not None and info.reference_file:
        with np.load(outputs_npz, allow_pickle=False) as npz:
            device = {k: npz[k] for k in npz.files}
        accuracy = reference.device_agreement(reference.read(inside(art.path, info.reference_file)), device)
    return accuracy, figures
