"""Where a causal LM comes from: a transformers module, a model directory (config.json + weights), or a
``.gguf`` file read directly (gguf_source.py). Each gives the decoder config, its float weights by
transformers name, and the tokenizer."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingDependencyError, ModelError, first_line
from .config import DecoderConfig, from_transformers


@dataclasses.dataclass
class CausalLM:
    config: DecoderConfig
    weight: Callable[[str], np.ndarray]  # transformers parameter name -> float32 array, each read once
    tokenizer: Any  # a transformers tokenizer, or None
    name: str
    source: str


class _StateDict:
    """A module's weights handed over once: the builder reads each weight once, and dropping our reference
    lets a weight the graph stores transposed free its original as soon as it is copied."""

    def __init__(self, parameters: dict[str, Any], source: str, architecture: str):
        self.parameters, self.source, self.architecture = parameters, source, architecture

    def __call__(self, name: str) -> np.ndarray:
        if name not in self.parameters:
            raise ModelError(f"{self.source}: the model has no weight '{name}' (architecture {self.architecture})")
        return self.parameters.pop(name).detach().float().numpy()


def is_causal_lm_path(path: Path) -> bool:
    if path.suffix == ".gguf":
        return True
    config = path / "config.json"
    if path.is_dir() and config.is_file():
        try:
            architectures = json.loads(config.read_text()).get("architectures") or []
        except (OSError, ValueError):
            return False
        return any(a.endswith("ForCausalLM") for a in architectures)
    return False


def is_causal_lm_module(module: Any) -> bool:
    config = getattr(module, "config", None)
    return config is not None and hasattr(module, "generate") and type(module).__name__.endswith("ForCausalLM")


def transformers_module():
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError:
        raise MissingDependencyError("transformers", "llm", "Importing a causal LM") from None
    return transformers


def from_module(module: Any, tokenizer: Any = None, source: str | None = None) -> CausalLM:
    if not is_causal_lm_module(module):
        raise ModelError(f"{type(module).__name__} is not a transformers causal LM (…ForCausalLM)")
    config = from_transformers(module.config)
    parameters = dict(module.state_dict())
    if config.tied_embeddings:
        parameters.pop("lm_head.weight", None)  # the same tensor as the embedding: stored once
    name = getattr(module.config, "_name_or_path", "") or type(module).__name__
    source = source or f"transformers:{type(module).__name__}"
    return CausalLM(config, _StateDict(parameters, source, config.architecture), tokenizer,
                    Path(str(name)).name or type(module).__name__, source)


def from_path(path: Path) -> CausalLM:
    """A .gguf file (read directly, llm/gguf_source.py) or a model directory (loaded in float32)."""
    if not path.exists():
        raise ModelError(f"{path}: no such file or directory")
    if path.suffix == ".gguf":
        from .gguf_source import load_gguf

        config, weights, tokenizer = load_gguf(path)
        return CausalLM(config, weights, tokenizer, path.stem, str(path))
    transformers = transformers_module()
    import torch

    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    except Exception as exc:
        raise ModelError(f"{path}: cannot load its tokenizer: {first_line(exc)}") from None
    try:
        module = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    except Exception as exc:
        raise ModelError(f"{path}: transformers cannot load it as a causal LM: {first_line(exc)}") from None
    lm = from_module(module, tokenizer, source=str(path))
    lm.name = path.name
    return lm
