"""Importers turn a model file or a PyTorch module into the Graph IR."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ModelError, UsageError
from ..graph import Graph


def load(model: Any, example_inputs: Any = None, *, opset: int = 18, **export_options: Any) -> Graph:
    """Load an ONNX file, a Python file that builds a PyTorch model, an ``nn.Module``, or a causal LM (a
    transformers ``…ForCausalLM`` module with ``tokenizer=``, a model directory, a ``.gguf`` file) into a Graph.

    A ``.py`` file must define ``build_model()`` returning ``(module, example_inputs)`` or
    ``(module, example_inputs, options)`` where options are passed to the torch importer.
    """
    if isinstance(model, Graph):
        return model
    from ..llm.source import is_causal_lm_module, is_causal_lm_path

    context = export_options.pop("context", None)  # causal LMs only: the static KV-cache form
    path = Path(model).expanduser() if isinstance(model, (str, Path)) else None
    if is_causal_lm_path(path) if path is not None else is_causal_lm_module(model):
        from .causal_lm import from_causal_lm

        return from_causal_lm(path if path is not None else model, export_options.get("tokenizer"), context)
    if context is not None:
        raise UsageError("--context (the static KV-cache form) applies to causal LMs only")
    if path is not None:
        if path.suffix == ".py":
            from .python_file import load_python_file

            return load_python_file(path, opset=opset)
        from .onnx_file import load_onnx

        return load_onnx(path)
    if type(model).__module__.startswith("torch") or hasattr(model, "state_dict"):
        from .torch_module import from_torch

        return from_torch(model, example_inputs, opset=opset, **export_options)
    raise ModelError(f"cannot load a model from {type(model).__name__}: give an .onnx path, a .py file or an nn.Module")
