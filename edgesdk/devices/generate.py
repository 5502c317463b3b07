"""Generation on a device: the prompt is tokenized here, the runner prefills it and decodes on the device
(numpy and the runtime only), the tokens come back and are decoded here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..artifact import Artifact
from ..errors import UsageError


def generate_on_device(artifact: str | Path | Artifact, prompt: str, max_tokens: int = 32, device: str = "local",
                       devices: Any = None, threads: int | None = None, runs_dir: Any = None) -> dict[str, Any]:
    from ..llm.model import LanguageModel
    from .api import profile

    if max_tokens < 1:
        raise UsageError("--max-tokens must be at least 1")
    art = artifact if isinstance(artifact, Artifact) else Artifact.load(artifact)
    if art.manifest.language_model is None:
        raise UsageError(f"{art.path}: not a language-model artifact (generate needs a causal LM)")
    lm = LanguageModel.from_manifest(art.manifest.language_model, art.path)
    ids = [int(t) for t in lm.encode(prompt)]  # tokenized once, here; profile checks the length
    # The runner decodes a fixed number of steps (every step timed); the text ends at the first end-of-text.
    result = profile(art, device=device, runs=max(1, max_tokens - 1), warmup=1, devices=devices, prompt=ids,
                     threads=threads, runs_dir=runs_dir)
    tokens = result.lm["tokens"][:max_tokens]
    eos = set(lm.config.eos_token_ids)
    end = next((i + 1 for i, t in enumerate(tokens) if t in eos), len(tokens))
    figures = {k: v for k, v in result.lm.items() if k != "tokens"}
    return {"artifact": str(art.path), "device": result.device, "prompt": prompt, "text": lm.decode(tokens[:end]),
            "tokens": tokens[:end], **figures, "time_to_first_token_s": figures["time_to_first_token_ms"] / 1e3,
            "run_id": result.run_id, "peak_rss_mb": result.peak_rss_mb, "accuracy": result.accuracy}
