"""Import a causal LM (transformers module, model directory or .gguf file) as a decoder graph with an
explicit KV cache (edgesdk/llm/builder.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import progress
from ..errors import UsageError
from ..graph import Graph


def from_causal_lm(model: Any, tokenizer: Any = None, context: int | None = None) -> Graph:
    """``context``: the static form with that many cache slots (default: the dynamic form)."""
    from ..llm.builder import build_decoder
    from ..llm.model import LanguageModel
    from ..llm.source import from_module, from_path

    if isinstance(model, (str, Path)):
        with progress.step(f"loading {Path(model).name}"):
            source = from_path(Path(model).expanduser())
    else:
        source = from_module(model, tokenizer)
    if context is not None and not 1 <= context <= source.config.max_context:
        raise UsageError(f"--context {context}: must be 1..{source.config.max_context} (the model's own context)")
    with progress.step("building the decoder graph (KV cache)"):
        ir_model = build_decoder(source.config, source.weight, source.name, context)
    graph = Graph(model=ir_model, name=source.name, source=source.source)
    graph.lm = LanguageModel(source.config, source.tokenizer, "static" if context else "dynamic", context)
    return graph
