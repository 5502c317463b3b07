"""Quantized weights as Core ML constexpr ops holding the graph's own codes, scales and zero points.

A DequantizeLinear of constants (per tensor, per channel along ``axis``, or per block of ``block_size`` along
it) becomes, on iOS 18, ``constexpr_blockwise_shift_scale(data=codes, scale, offset=zero point)`` with the
scale and zero point given the codes' rank (1 on every axis but the quantized one); before iOS 18, where no
block-wise op exists, ``constexpr_affine_dequantize`` (per tensor or per channel). Nothing is re-quantized:
the package's int8/int4 values and scales are the ONNX graph's, bit for bit (``package_weights`` reads
them back for the tests and ``inspect``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import ModelError

CODE_DTYPES = ("int8", "uint8", "int4", "uint4")


@dataclass
class GraphWeight:
    """A DequantizeLinear of constants, as the ONNX graph holds it."""

    codes: np.ndarray  # int8/uint8 numpy (int4/uint4 codes widened to int8/uint8, flagged by ``bits``)
    scale: np.ndarray
    zero: np.ndarray | None
    axis: int
    block: int  # 0: per tensor or per channel
    bits: int
    signed: bool

    def expanded(self, array: np.ndarray) -> np.ndarray:
        """A per-tensor / per-channel / per-block scale or zero point at the codes' rank."""
        rank = self.codes.ndim
        if array.ndim == rank:
            return array
        shape = [1] * rank
        if array.ndim == 1 and array.size > 1:
            shape[self.axis] = array.size
        return array.reshape(shape)


def graph_weight(node, codes: np.ndarray, scale: np.ndarray, zero: np.ndarray | None) -> GraphWeight:
    name = codes.dtype.name
    if name not in CODE_DTYPES:
        raise ModelError(f"node '{node.name}': DequantizeLinear of {name} codes (Core ML holds int8, uint8, int4, uint4)")
    attrs = {a.name: a.value for a in node.attributes.values()}
    axis = int(attrs.get("axis", 1)) % max(codes.ndim, 1)
    bits, signed = (4 if name.endswith("4") else 8), not name.startswith("u")
    widened = codes.astype(np.int8 if signed else np.uint8)
    if zero is not None:
        zero = zero.astype(np.int8 if signed else np.uint8)
    return GraphWeight(widened, scale.astype(np.float32), zero, axis, int(attrs.get("block_size", 0)), bits, signed)


def constexpr(mb, weight: GraphWeight, deployment_target: str, name: str):
    """The constexpr op that gives back ``weight`` dequantized (see the module's docstring)."""
    from coremltools.converters.mil.mil import types

    zero = weight.zero if weight.zero is not None and np.any(weight.zero) else None
    if deployment_target == "iOS18":
        code_dtype = {(4, True): types.np_int4_dtype, (4, False): types.np_uint4_dtype}.get((weight.bits, weight.signed))
        data = weight.codes.astype(code_dtype) if code_dtype is not None else weight.codes
        kwargs = {"offset": weight.expanded(zero).astype(data.dtype)} if zero is not None else {}
        return mb.constexpr_blockwise_shift_scale(data=data, scale=weight.expanded(weight.scale), name=name, **kwargs)
    if weight.bits == 4 or weight.block:
        raise ModelError(f"'{name}': int4 or block-wise weights need the iOS18 deployment target")
    per_channel = weight.scale.size > 1
    zero_point = zero if zero is not None else np.zeros(weight.scale.shape, weight.codes.dtype)
    return mb.constexpr_affine_dequantize(quantized_data=weight.codes, zero_point=zero_point.reshape(-1) if per_channel else zero_point.reshape(()),
                                          scale=weight.scale.reshape(-1) if per_channel else weight.scale.reshape(()),
                                          axis=weight.axis if per_channel else 0, name=name)


def package_weights(program) -> dict[str, dict[str, np.ndarray]]:
    """Every constexpr weight of a loaded MIL program: op name -> {codes, scale, offset, dtype} as stored."""
    from coremltools.converters.mil.mil import types

    found = {}
    for function in program.functions.values():
        for op in function.operations:
            if op.op_type == "constexpr_blockwise_shift_scale":
                found[op.name] = {"codes": op.data.val, "scale": op.scale.val,
                                  "offset": None if op.offset is None else op.offset.val, "dtype": types.builtin_to_string(op.data.dtype)}
            elif op.op_type == "constexpr_affine_dequantize":
                found[op.name] = {"codes": op.quantized_data.val, "scale": op.scale.val, "offset": op.zero_point.val,
                                  "axis": int(op.axis.val), "dtype": types.builtin_to_string(op.quantized_data.dtype)}
    return found
