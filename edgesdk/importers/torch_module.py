"""Import a PyTorch module through torch.onnx.export (dynamo exporter, one self-contained file)."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

from ..errors import MissingDependencyError, ModelError
from .onnx_file import load_onnx


def from_torch(
    module: Any,
    example_inputs: Any,
    *,
    opset: int = 18,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
    dynamic_shapes: Any = None,
    name: str | None = None,
):
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("torch", "torch", "Importing a PyTorch module") from None
    if example_inputs is None:
        raise ModelError("a PyTorch module needs example_inputs (a tuple of tensors or a dict of name -> tensor)")
    # Opset 23 folds attention into one Attention op that quantizers and TVM break on; 18-20 keep it as MatMuls.
    if not 18 <= opset <= 20:
        raise ModelError(f"opset {opset}: export PyTorch models at opset 18..20")
    kwargs: dict[str, Any] = {}
    if isinstance(example_inputs, dict):
        args: tuple = ()
        kwargs = dict(example_inputs)
        input_names = input_names or list(example_inputs)
    else:
        args = tuple(example_inputs) if isinstance(example_inputs, (list, tuple)) else (example_inputs,)
    module.eval()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model.onnx"
        try:
            # The exporter's deprecation and shape-naming warnings are about torch internals, not the
            # user's model; real failures still raise.
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module,
                    args,
                    str(out),
                    kwargs=kwargs or None,
                    input_names=input_names,
                    output_names=output_names,
                    dynamic_shapes=dynamic_shapes,
                    opset_version=opset,
                    dynamo=True,
                    external_data=False,  # one file: artifacts and devices expect a single model.onnx
                    verbose=False,
                )
        except Exception as exc:
            raise ModelError(f"torch.onnx.export failed for {type(module).__name__}: {exc}") from None
        graph = load_onnx(out)
    graph.name = name or type(module).__name__
    graph.source = f"torch:{type(module).__module__}.{type(module).__name__}"
    return graph
