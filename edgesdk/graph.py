"""The graph IR: an ONNX model held as onnx_ir, plus what edgesdk knows about where it came from.

A quantized Graph keeps a link to the float Graph it was made from, so export and verification can
compare against the float reference without the user passing it again."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

# ONNX element types we feed from numpy; anything else in a graph input is reported as unsupported.
_NP_DTYPES = {
    ir.DataType.FLOAT: np.float32,
    ir.DataType.FLOAT16: np.float16,
    ir.DataType.DOUBLE: np.float64,
    ir.DataType.INT64: np.int64,
    ir.DataType.INT32: np.int32,
    ir.DataType.INT8: np.int8,
    ir.DataType.UINT8: np.uint8,
    ir.DataType.BOOL: np.bool_,
}


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name, e.g. "float32"
    shape: tuple[int | str | None, ...]  # ints for fixed axes, names for symbolic ones

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> TensorSpec:
        return cls(document["name"], document["dtype"], tuple(document["shape"]))


def numpy_dtype(dtype: ir.DataType | None) -> type | None:
    """The numpy type ONNX Runtime takes for this element type, None for the ones numpy lacks."""
    return _NP_DTYPES.get(dtype) if dtype is not None else None


def _spec(value: ir.Value) -> TensorSpec:
    dtype = value.dtype
    np_dtype = numpy_dtype(dtype)
    shape: tuple[int | str | None, ...] = ()
    if value.shape is not None:
        shape = tuple(d if isinstance(d, int) else (d.value if d.value is not None else None) for d in value.shape)
    return TensorSpec(value.name or "", np.dtype(np_dtype).name if np_dtype else str(dtype), shape)


@dataclasses.dataclass
class Graph:
    model: ir.Model
    name: str = "model"
    source: str | None = None  # file path or "torch:<class name>"
    float_graph: Graph | None = None  # set on quantized graphs
    recipe: Any = None  # the Recipe that produced this graph, None for float
    report: dict[str, Any] = dataclasses.field(default_factory=dict)  # what the recipe did, for the manifest
    calibration: Any = None  # the CalibrationData a quantized graph was made with (reference inputs for export)
    lm: Any = None  # a causal LM's llm.model.LanguageModel (config, tokenizer, cache names); None otherwise

    @property
    def inputs(self) -> list[TensorSpec]:
        return [_spec(v) for v in self.model.graph.inputs if not v.is_initializer()]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [_spec(v) for v in self.model.graph.outputs]

    def op_counts(self) -> collections.Counter[str]:
        return collections.Counter(
            (f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type)
            for n in self.model.graph.all_nodes()
        )

    def opset(self) -> int:
        return self.model.opset_imports.get("", 0)

    def weight_bytes(self) -> int:
        return sum(v.const_value.nbytes for v in self.model.graph.initializers.values() if v.const_value is not None)

    @property
    def needs_external_data(self) -> bool:
        """True when the weights go in a file beside the model: protobuf cannot hold 2 GB, and well before that
        ORT reading weights from a file beside the model saves a serialized copy of them."""
        return self.weight_bytes() > EXTERNAL_DATA_ABOVE

    def to_bytes(self) -> bytes:
        if self.needs_external_data:
            raise ValueError("a graph this large is saved with external data, not serialized to bytes")
        return ir.serde.serialize_model(self.model).SerializeToString()

    def save(self, path: str | Path, mapped: Sequence[Graph] = ()) -> Path:
        """Write the model; weights of a large model go to ``<name>.data`` beside it (ONNX external data).

        ``mapped``: graphs whose weights written here are then read from that file, memory-mapped, instead
        of from memory, so their in-memory copies can be freed (a large LM's float weights while its
        artifact is checked). The file is mapped at once: renaming or deleting it afterwards is safe (it is
        only ever replaced whole, never rewritten in place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.needs_external_data:
            ir.save(self.model, path)
            return path
        values = list(self.model.graph.initializers.values())
        in_memory = [v.const_value for v in values]
        try:
            ir.external_data.unload_from_model(self.model, path.parent, f"{path.name}.data", size_threshold_bytes=256)
            onnx.save(ir.serde.serialize_model(self.model), path)
            in_file = {id(old): v.const_value for v, old in zip(values, in_memory) if v.const_value is not old}
        finally:
            for value, tensor in zip(values, in_memory):
                value.const_value = tensor
        for graph in mapped:
            for value in graph.model.graph.initializers.values():
                tensor = in_file.get(id(value.const_value))
                if tensor is not None and tensor.dtype.bitwidth >= 8:  # 4-bit ones are unpacked into memory
                    # A plain tensor over the mapped bytes: it no longer needs the file's path.
                    value.const_value = ir.Tensor(tensor.numpy(), dtype=tensor.dtype, name=tensor.name)
        if mapped:
            _return_freed_memory()
        return path

    def clone(self) -> Graph:
        """A copy of the graph's structure, so passes can rewrite it while the original stays the float
        reference. Weight tensors are shared, not copied: passes replace a weight, they never change one."""
        return dataclasses.replace(self, model=self.model.clone(), report=dict(self.report))

    @property
    def is_quantized(self) -> bool:
        return any(
            n.op_type in QUANT_OPS for n in self.model.graph.all_nodes()
        )


EXTERNAL_DATA_ABOVE = 1 << 28  # bytes of weights: past this, ORT maps them from a file instead of parsing a copy


# Operators that carry quantized data (standard QDQ and the ORT contrib forms our exporters write).
QUANT_OPS = {
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "QLinearMatMul",
    "MatMulNBits", "GatherBlockQuantized", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
}


def _return_freed_memory() -> None:
    """Let the weights just replaced by their mapped file leave the process's resident memory: graphs are
    reference cycles (a dropped copy of one still holds the arrays until the collector runs), and glibc
    keeps freed small arrays in its arenas until asked to trim them."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass
