"""Rewrite standard QDQ patterns into the fused ONNX Runtime kernels they stand for.

The Graph IR stays standard ONNX so every exporter reads the same quantization parameters; this module
is the ORT exporter's own lowering. ORT fuses DQ→MatMul into MatMulIntegerToFloat by itself but leaves
the bias Add outside and dequantizes whole embedding tables on every run; writing the fused forms
directly removes both costs."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ...quant.edit import GraphEditor

MS = "com.microsoft"


def _const(value: ir.Value | None):
    return None if value is None or value.const_value is None else value.const_value.numpy()


def _int8_matmuls(graph: ir.Graph, activation_op: str):
    """(MatMul, activation DQ, weight DQ, activation quantizer) for each MatMul of a dequantized activation
    (produced by ``activation_op``) and a constant int8 weight quantized per tensor or per output column."""
    for node in list(graph):
        if node.op_type != "MatMul" or node.domain not in ("", "ai.onnx"):
            continue
        a_dq, b_dq = (v.producer() if v is not None else None for v in node.inputs)
        if a_dq is None or b_dq is None or a_dq.op_type != "DequantizeLinear" or b_dq.op_type != "DequantizeLinear":
            continue
        quantizer = a_dq.inputs[0].producer()
        if quantizer is None or quantizer.op_type != activation_op:
            continue
        weight = b_dq.inputs[0]
        if weight.const_value is None or weight.dtype != ir.DataType.INT8 or b_dq.attributes.get_int("block_size", 0):
            continue
        w_scale = _const(b_dq.inputs[1])
        if w_scale is None or (w_scale.ndim == 1 and b_dq.attributes.get_int("axis", 1) not in (1, -1)):
            continue
        yield node, a_dq, b_dq, quantizer


def fuse_matmul_integer_to_float(graph: ir.Graph) -> int:
    """Q(x)→DQ→MatMul←DQ(const W)[→Add(const bias)] becomes Q(x)→MatMulIntegerToFloat(…, bias)."""
    editor = GraphEditor(graph)
    fused = 0
    for node, a_dq, b_dq, _ in _int8_matmuls(graph, "QuantizeLinear"):
        a_zero_point = a_dq.inputs[2] if len(a_dq.inputs) > 2 else None
        if a_zero_point is None or a_zero_point.dtype != ir.DataType.UINT8:
            continue
        inputs = [a_dq.inputs[0], b_dq.inputs[0], a_dq.inputs[1], b_dq.inputs[1], a_zero_point,
                  b_dq.inputs[2] if len(b_dq.inputs) > 2 else None]
        bias, replaced = _bias_after(node)
        if bias is not None:
            inputs.append(bias)
        fused_node = editor.add("MatMulIntegerToFloat", inputs, hint=f"{node.name}_int8", domain=MS)
        _replace(editor, replaced, fused_node.outputs[0])
        fused += 1
    _drop_dead(graph)
    editor.finish()
    return fused


def _drop_dead(graph: ir.Graph) -> None:
    """Remove nodes whose outputs nobody reads (the MatMul/Add/DQ the fusion replaced)."""
    changed = True
    while changed:
        changed = False
        for node in reversed(list(graph)):
            if all(not o.uses() and not o.is_graph_output() for o in node.outputs):
                graph.remove(node, safe=True)
                changed = True


def _bias_after(node: ir.Node) -> tuple[ir.Value | None, ir.Value]:
    """The constant 1-D bias of an Add that alone reads ``node``'s output, and the value to replace."""
    output = node.outputs[0]
    uses = output.uses()
    if len(uses) == 1 and not output.is_graph_output() and uses[0].node.op_type == "Add":
        add = uses[0].node
        other = add.inputs[1 - uses[0].idx]
        if other is not None and other.const_value is not None and other.shape is not None and len(other.shape) == 1:
            return other, add.outputs[0]
    return None, output


def _replace(editor: GraphEditor, old: ir.Value, new: ir.Value) -> None:
    old.replace_all_uses_with(new, replace_graph_outputs=True)
    new.name, old.name = old.name, editor.name(f"{old.name}_unused")
    # The fused node computes the same tensor: a graph output must keep its declared type and shape.
    if new.type is None:
        new.type = old.type
    if new.shape is None:
        new.shape = old.shape


def fuse_dynamic_quantize_matmul(graph: ir.Graph) -> int:
    """DynamicQuantizeLinear(x)→DQ→MatMul←DQ(const int8 W)[→Add bias] becomes DynamicQuantizeMatMul."""
    editor = GraphEditor(graph)
    fused = 0
    for node, _, b_dq, dyn in _int8_matmuls(graph, "DynamicQuantizeLinear"):
        bias, replaced = _bias_after(node)
        inputs = [dyn.inputs[0], b_dq.inputs[0], b_dq.inputs[1], b_dq.inputs[2] if len(b_dq.inputs) > 2 else None, bias]
        fused_node = editor.add("DynamicQuantizeMatMul", inputs, hint=f"{node.name}_dynamic_int8", domain=MS)
        _replace(editor, replaced, fused_node.outputs[0])
        fused += 1
    _drop_dead(graph)
    editor.finish()
    return fused


def _pack_nibbles(values: np.ndarray) -> np.ndarray:
    """Pack uint4 values along the last axis, two per byte, the first in the low nibble."""
    values = values.astype(np.uint8)
    if values.shape[-1] % 2:
        values = np.concatenate([values, np.zeros(values.shape[:-1] + (1,), np.uint8)], axis=-1)
    return (values[..., 0::2] & 0x0F) | ((values[..., 1::2] & 0x0F) << 4)


def _as_uint4(q: np.ndarray, zero_point: np.ndarray | None, signed: bool) -> tuple[np.ndarray, np.ndarray]:
    """int4 with zero point z is uint4 with zero point z+8: same real values, the layout ORT's kernels use."""
    zp = np.zeros_like(q[:1], dtype=np.int16) if zero_point is None else zero_point.astype(np.int16)
    if signed:
        return (q.astype(np.int16) + 8).astype(np.uint8), (zp + 8).astype(np.uint8)
    return q.astype(np.uint8, copy=False), zp.astype(np.uint8)


def lower_embedding_gathers(graph: ir.Graph) -> int:
    """Gather from a dequantized table: dequantize only the gathered rows, not the whole table per run.

    int8 per-row tables become Gather(q)·Gather(scale); int4 block-wise tables become GatherBlockQuantized."""
    editor = GraphEditor(graph)
    lowered = 0
    for node in list(graph):
        if node.op_type != "Gather" or node.attributes.get_int("axis", 0) != 0:
            continue
        dq = node.inputs[0].producer() if node.inputs[0] is not None else None
        if dq is None or dq.op_type != "DequantizeLinear" or dq.inputs[0].const_value is None:
            continue
        table, scale = dq.inputs[0], dq.inputs[1]
        zero_point = dq.inputs[2] if len(dq.inputs) > 2 else None
        ids = node.inputs[1]
        block = dq.attributes.get_int("block_size", 0)
        if table.dtype == ir.DataType.INT8 and not block and dq.attributes.get_int("axis", 1) == 0:
            if zero_point is not None and np.any(zero_point.const_value.numpy()):
                continue
            rows = editor.add("Gather", [table, ids], {"axis": 0}, hint=f"{node.name}_rows")
            as_float = editor.add("Cast", [rows.outputs[0]], {"to": ir.DataType.FLOAT}, hint=f"{node.name}_cast")
            row_scale = editor.add("Gather", [scale, ids], {"axis": 0}, hint=f"{node.name}_row_scale")
            axes = editor.constant(f"{node.name}_last_axis", np.array([-1], np.int64))
            column = editor.add("Unsqueeze", [row_scale.outputs[0], axes], hint=f"{node.name}_scale_column")
            result = editor.add("Mul", [as_float.outputs[0], column.outputs[0]], hint=f"{node.name}_dequantized")
        elif table.dtype in (ir.DataType.INT4, ir.DataType.UINT4) and block and dq.attributes.get_int("axis", 0) == 1:
            result = editor.add(
                "GatherBlockQuantized",
                [table, ids, scale, zero_point],
                {"gather_axis": 0, "quantize_axis": 1, "block_size": block, "bits": 4},
                hint=f"{node.name}_int4",
                domain=MS,
            )
        else:
            continue
        _replace(editor, node.outputs[0], result.outputs[0])
        lowered += 1
    _drop_dead(graph)
    editor.finish()
    return lowered


def keep_residual_add_unfused(graph: ir.Graph) -> int:
    """Write the residual Add in front of each LayerNormalization as Sum.

    ORT fuses Add→LayerNormalization into SkipLayerNormalization, whose CPU kernel (ORT 1.31) is slower
    than the two ops it replaces: on all-MiniLM-L6-v2 at 1 thread, 2.7 ms for 12 layers, and the whole
    model runs 11.3 → 8.9 ms without the fusion (compare the fp32 rows of benchmarks/minilm_recipes.py). Sum computes the
    same thing and is not matched by the fusion."""
    editor = GraphEditor(graph)
    count = 0
    for node in list(graph):
        if node.op_type != "Add" or node.domain not in ("", "ai.onnx") or len(node.inputs) != 2:
            continue
        uses = node.outputs[0].uses()
        if not uses or not any(u.node.op_type == "LayerNormalization" for u in uses):
            continue
        if any(v is None or v.const_value is not None for v in node.inputs):
            continue  # a bias add, not a residual
        total = editor.add("Sum", list(node.inputs), hint=f"{node.name}_residual")
        _replace(editor, node.outputs[0], total.outputs[0])
        graph.remove(node, safe=True)
        count += 1
    editor.finish()
    return count


def _scalar(value: ir.Value | None) -> float | None:
    array = _const(value)
    return float(array.reshape(-1)[0]) if array is not None and array.size == 1 else None


def _other_input(node: ir.Node, value: ir.Value) -> ir.Value | None:
    if len(node.inputs) != 2:
        return None
    return node.inputs[1] if node.inputs[0] is value else node.inputs[0] if node.inputs[1] is value else None


def _only_reader(value: ir.Value, op_type: str) -> ir.Node | None:
    uses = value.uses()
    if len(uses) == 1 and not value.is_graph_output() and uses[0].node.op_type == op_type:
        return uses[0].node
    return None


def fuse_erf_gelu(graph: ir.Graph) -> int:
    """x·0.5·(1 + erf(x/√2)), in the orders exporters write it, becomes one com.microsoft Gelu.

    ORT 1.31 does not fuse the form torch's dynamo exporter emits, and runs it as five element-wise
    kernels over the FFN activation."""
    editor = GraphEditor(graph)
    fused = 0
    for erf in list(graph):
        if erf.op_type != "Erf":
            continue
        scaled = erf.inputs[0].producer()
        if scaled is None or scaled.op_type not in ("Div", "Mul"):
            continue
        x, c = scaled.inputs[0], _scalar(scaled.inputs[1])
        if c is None or not np.isclose(c, np.sqrt(2.0) if scaled.op_type == "Div" else 1 / np.sqrt(2.0), rtol=1e-4):
            continue
        add = _only_reader(erf.outputs[0], "Add")
        if add is None or not np.isclose(_scalar(_other_input(add, erf.outputs[0])) or 0.0, 1.0):
            continue
        first = _only_reader(add.outputs[0], "Mul")
        if first is None:
            continue
        other = _other_input(first, add.outputs[0])
        if _scalar(other) is not None and np.isclose(_scalar(other), 0.5):  # (1+erf)·0.5, then ·x
            last = _only_reader(first.outputs[0], "Mul")
            ok = last is not None and _other_input(last, first.outputs[0]) is x
        elif other is x:  # (1+erf)·x, then ·0.5
            last = _only_reader(first.outputs[0], "Mul")
            ok = last is not None and np.isclose(_scalar(_other_input(last, first.outputs[0])) or 0.0, 0.5)
        else:  # (1+erf)·(x·0.5)
            half = other.producer() if other is not None else None
            last = first
            ok = half is not None and half.op_type == "Mul" and _other_input(half, x) is not None and np.isclose(_scalar(_other_input(half, x)) or 0.0, 0.5)
        if not ok:
            continue
        gelu = editor.add("Gelu", [x], hint=f"{erf.name}_gelu", domain=MS)
        _replace(editor, last.outputs[0], gelu.outputs[0])
        fused += 1
    _drop_dead(graph)
    editor.finish()
    return fused


def lower_for_ort(graph: ir.Graph, skip_layernorm_fusion: bool = False, nbits_accuracy_level: int = 4) -> dict[str, int]:
    """All ORT lowerings, in the order that lets each see its pattern intact."""
    from .blockwise import lower_block_weights

    blocks = lower_block_weights(graph, nbits_accuracy_level)
    counts = {
        "GatherBlockQuantized/row-gather": lower_embedding_gathers(graph) + blocks["GatherBlockQuantized"],
        "MatMulNBits": blocks["MatMulNBits"],
        "block offsets taken out of MatMulNBits": blocks["offset corrections"],
        "MatMulIntegerToFloat": fuse_matmul_integer_to_float(graph),
        "DynamicQuantizeMatMul": fuse_dynamic_quantize_matmul(graph),
        "Gelu": fuse_erf_gelu(graph),
        "residual Sum": 0 if skip_layernorm_fusion else keep_residual_add_unfused(graph),
    }
    return {k: v for k, v in counts.items() if v}
