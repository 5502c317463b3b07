"""A model described by a Python file: ``build_model()`` returns the module and its example inputs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import ModelError


def load_python_file(path: Path, *, opset: int = 18):
    if not path.exists():
        raise ModelError(f"{path}: no such file")
    spec = importlib.util.spec_from_file_location(f"edgesdk_model_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ModelError(f"{path}: the model file fails to run: {type(exc).__name__}: {exc}") from None
    build = getattr(module, "build_model", None)
    if build is None:
        raise ModelError(f"{path}: defines no build_model() returning (module, example_inputs[, options])")
    built = build()
    torch_module, example_inputs, *rest = built
    options = rest[0] if rest else {}
    from .torch_module import from_torch

    options.setdefault("name", path.stem)
    graph = from_torch(torch_module, example_inputs, opset=options.pop("opset", opset), **options)
    graph.source = str(path)
    return graph
