"""Where a causal LM comes from: a transformers module, a model directory (config.json + weights), or a
``.gguf`` file read through transformers' GGUF loader. Each gives the decoder config, its float weights by
transformers name, and the tokenizer."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MissingDependencyError, ModelError
from .config import DecoderConfig, from_transformers


@dataclasses.dataclass
class CausalLM:
    config: DecoderConfig
    parameters: dict[str, Any]  # transformers name -> torch tensor (read as numpy without a copy)
    tokenizer: Any  # a transformers tokenizer, or None
    name: str
    source: str

    def weight(self, name: str) -> np.ndarray:
        """The weight as float32, handed over once: the builder reads each weight once, and dropping our
        reference lets a weight the graph stores transposed free its original as soon as it is copied."""
        if name not in self.parameters:
            raise ModelError(f"{self.source}: the model has no weight '{name}' (architecture {self.config.architecture})")
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


def _transformers():
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
    return CausalLM(config, parameters, tokenizer, Path(str(name)).name or type(module).__name__,
                    source or f"transformers:{type(module).__name__}")


def from_path(path: Path) -> CausalLM:
    """A model directory or a .gguf file, loaded in float32 (GGUF blocks dequantized by transformers)."""
    transformers = _transformers()
    import torch

    if not path.exists():
        raise ModelError(f"{path}: no such file or directory")
    options: dict[str, Any] = {"dtype": torch.float32}
    directory = path
    if path.suffix == ".gguf":
        _check_gguf(path)
        options["gguf_file"] = path.name
        directory = path.parent
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(directory, **({"gguf_file": path.name} if path.suffix == ".gguf" else {}))
    except Exception as exc:
        raise ModelError(f"{path}: cannot load its tokenizer: {_first_line(exc)}") from None
    try:
        module = transformers.AutoModelForCausalLM.from_pretrained(directory, **options)
    except Exception as exc:
        raise ModelError(f"{path}: transformers cannot load it as a causal LM: {_first_line(exc)}") from None
    name = path.stem if path.suffix == ".gguf" else path.name
    lm = from_module(module, tokenizer, source=str(path))
    lm.name = name
    return lm


def _check_gguf(path: Path) -> None:
    """A clear error for a truncated or foreign file before transformers reads it."""
    try:
        import gguf
    except ImportError:
        raise MissingDependencyError("gguf", "llm", "Reading a GGUF file") from None
    try:
        reader = gguf.GGUFReader(path)
    except Exception as exc:
        raise ModelError(f"{path}: not a readable GGUF file (truncated or not GGUF): {_first_line(exc)}") from None
    field = reader.fields.get("general.architecture")
    architecture = field.contents() if field is not None else "unknown"
    from .config import SUPPORTED

    gguf_names = {"gemma3": "gemma3_text"}
    if gguf_names.get(architecture, architecture) not in SUPPORTED:
        raise ModelError(f"{path}: GGUF architecture '{architecture}' is not supported (supported: {', '.join(SUPPORTED)})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
