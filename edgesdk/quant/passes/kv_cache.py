"""A causal LM's KV cache stored as int8 or int4, with a scale and an offset per head and per token.

Every cache tensor ``past.N.key`` [1, kv_heads, T, head_dim] float becomes two inputs: the codes
``past.N.key`` [1, kv_heads, T, head_dim] uint8 (int4: two codes a byte, [.., head_dim / 2]) and
``past.N.key_scale`` [1, kv_heads, T, 2·groups] float32, the (scale, offset) of each group of a token's
head row — int8: the whole row, one group; int4: blocks of 32 values (llm/builder.py kv_layout), since a
key row's few large channels would leave the others a level or two of a 16-level grid. The outputs
``present.N.*`` likewise. A call quantizes only its new tokens (asymmetric: x ≈ code·scale + offset),
appends codes and scales to the cache as the float graph appended floats (Concat, or ScatterND in the
static form), and attention reads the whole cache dequantized — so a prefill already sees its own keys
and values as every later step will.

Keys first have their channels evened out when calibration data is given (``key_channel_factors``): a
key row's range is set by its few far-reaching channels (Qwen2.5 0.5B's key bias puts some at ±100 where
most stay within ±3), and one scale per row leaves the others a handful of levels — top-1 agreement with
the float cache fell to 0.81 there. Each key channel is divided by a constant factor (its calibrated
|max| per head, the two channels the rotary embedding pairs sharing one) before the per-token codes are
taken, and multiplied back when the cache is read: a per-channel × per-token scale, as KIVI quantizes keys
per channel, with tokens still appended one at a time. Values keep per-token scales (no channel outliers).

Written with plain ONNX ops (Round, Clip, Cast, Floor): any backend that runs the float graph runs this."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ...calibration import CalibrationData
from ...errors import ModelError
from ...graph import Graph
from ...llm.builder import SCALE_SUFFIX, kv_layout
from ..edit import GraphEditor

LEVELS = {"int8": 255, "int4": 15}
KEY_CALIBRATION_SAMPLES = 16  # calibration windows the key channels' reach is measured on
# A channel that stayed near zero in calibration is not blown up by its factor: factors are at least this
# fraction of the head's median channel reach.
KEY_FACTOR_FLOOR = 0.1


def key_channel_factors(graph: Graph, data: CalibrationData, limit: int = KEY_CALIBRATION_SAMPLES) -> dict[str, np.ndarray]:
    """Per cache key tensor (``past.N.key``), the factor [kv_heads, head_dim] each channel is divided by
    before its codes are taken: the channel's |max| over the calibration windows on the float graph, the
    rotate-half pairs (i, i + head_dim/2) sharing the larger, normalized to a mean of 1 per head."""
    from ..observers import HeadChannelAbsMax
    from ..stats import collect

    appended = {past: _appended(graph.model.graph, past, present) for past, present in graph.lm.cache if past.endswith(".key")}
    observed = collect(graph, [node.inputs[-1].name for node in appended.values()], data, limit, observer=HeadChannelAbsMax)
    factors = {}
    for past, node in appended.items():
        reach = observed[node.inputs[-1].name].absmax
        if reach is None:
            continue
        half = reach.shape[-1] // 2
        paired = np.maximum(reach[:, :half], reach[:, half : 2 * half])
        reach = np.concatenate([paired, paired, reach[:, 2 * half :]], axis=-1)
        reach = np.maximum(reach, KEY_FACTOR_FLOOR * np.median(reach, axis=-1, keepdims=True))
        reach = np.where(reach > 0, reach, 1.0)
        factors[past] = (reach / reach.mean(axis=-1, keepdims=True)).astype(np.float32)
    return factors


def _appended(graph: ir.Graph, past_name: str, present_name: str) -> ir.Node:
    """The Concat or ScatterND that appends a call's new entries to the cache tensor ``past_name``."""
    past = next((v for v in graph.inputs if v.name == past_name), None)
    present = next((v for v in graph.outputs if v.name == present_name), None)
    append = present.producer() if present is not None else None
    if past is None or append is None or append.op_type not in ("Concat", "ScatterND") or append.inputs[0] is not past:
        raise ModelError(f"the KV cache tensor {past_name} -> {present_name} is not appended by a "
                         f"Concat or ScatterND of the past: this graph's cache cannot be quantized")
    return append


class KvCachePass(ir.passes.InPlacePass):
    def __init__(self, kind: str, cache: list[tuple[str, str]], key_factors: dict[str, np.ndarray] | None = None):
        super().__init__()
        if kind not in LEVELS:
            raise ValueError(f"kv_cache must be one of {', '.join(LEVELS)}")
        self.kind, self.cache = kind, cache
        self.key_factors = key_factors or {}  # past key name -> [kv_heads, head_dim] (key_channel_factors)
        self._constants: dict[tuple, ir.Value] = {}  # one initializer per distinct constant, not one per layer

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        editor = GraphEditor(graph)
        for past_name, present_name in self.cache:
            append = _appended(graph, past_name, present_name)
            self._quantize_entry(editor, graph, append.inputs[0], append.outputs[0], append, self.key_factors.get(past_name))
        editor.finish()
        return ir.passes.PassResult(model, True)

    def _quantize_entry(self, editor: GraphEditor, graph: ir.Graph, past: ir.Value, present: ir.Value, append: ir.Node,
                        factors: np.ndarray | None) -> None:
        levels = LEVELS[self.kind]
        kv_heads, length, head_dim = past.shape[1], past.shape[2], past.shape[3]
        group, width, scale_width = kv_layout(self.kind, head_dim)
        groups = head_dim // group
        codes_in = ir.Value(name=editor.name(past.name + "_codes"), type=ir.TensorType(ir.DataType.UINT8),
                            shape=ir.Shape([1, kv_heads, length, width]))
        scales_in = ir.Value(name=editor.name(past.name + SCALE_SUFFIX), type=ir.TensorType(ir.DataType.FLOAT),
                             shape=ir.Shape([1, kv_heads, length, scale_width]))
        new = append.inputs[-1]
        hint = present.name

        def op(op_type, *args, **attrs):
            return editor.add(op_type, list(args), attrs, hint=f"{hint}_{op_type.lower()}").outputs[0]

        def const(value, dtype=np.float32):
            array = np.asarray(value, dtype)
            key = (array.dtype.str, array.shape, array.tobytes())
            if key not in self._constants:
                self._constants[key] = editor.constant(f"kv_cache_{len(self._constants)}", array)
            return self._constants[key]

        def by_group(value, last):  # [1, kv, S, groups * last] <-> [1, kv, S, groups, last]
            return op("Reshape", value, const([0, 0, 0, groups, last], np.int64))

        def flat(value, last):
            return op("Reshape", value, const([0, 0, 0, last], np.int64))

        if factors is not None:  # keys: channels evened out first, multiplied back when read
            per_channel = factors[None, :, None, :]
            new = op("Mul", new, const(1.0 / per_channel))

        # (scale, offset) per head, token and group; a constant group gets scale 1
        grouped = by_group(new, group)
        low = op("ReduceMin", grouped, const([-1], np.int64), keepdims=1)
        high = op("ReduceMax", grouped, const([-1], np.int64), keepdims=1)
        spread = op("Div", op("Sub", high, low), const(levels))
        scale = op("Where", op("Greater", spread, const(0.0)), spread, const(1.0))
        codes = flat(op("Clip", op("Round", op("Div", op("Sub", grouped, low), scale)), const(0.0), const(float(levels))), head_dim)
        if self.kind == "int4":  # two codes a byte: the even value in the low nibble
            first, second = _split_last(op, const, op("Reshape", codes, const([0, 0, 0, width, 2], np.int64)))
            codes = op("Add", first, op("Mul", second, const(16.0)))
        new_codes = op("Cast", codes, to=ir.DataType.UINT8)
        new_scales = flat(op("Concat", scale, low, axis=-1), scale_width)

        # the cache grows as the float one did; the codes take the float tensor's place and name
        append.replace_input_with(0, codes_in)
        append.replace_input_with(len(append.inputs) - 1, new_codes)
        scales_append = editor.add(append.op_type, [scales_in, *append.inputs[1:-1], new_scales],
                                   {a.name: a for a in append.attributes.values()}, hint=f"{hint}_append")
        present_scales = scales_append.outputs[0]

        readers = list(present.uses())  # attention's, before the Cast below reads the codes too
        stored = op("Cast", present, to=ir.DataType.FLOAT)
        if self.kind == "int4":
            second = op("Floor", op("Mul", stored, const(1 / 16)))
            first = op("Sub", stored, op("Mul", second, const(16.0)))
            both = op("Concat", op("Unsqueeze", first, const([-1], np.int64)), op("Unsqueeze", second, const([-1], np.int64)), axis=-1)
            stored = flat(both, head_dim)
        scale_part, offset_part = _split_last(op, const, by_group(present_scales, 2), squeeze=False)
        dequantized = flat(op("Add", op("Mul", by_group(stored, group), scale_part), offset_part), head_dim)
        if factors is not None:
            dequantized = op("Mul", dequantized, const(per_channel))
        for use in readers:
            use.node.replace_input_with(use.idx, dequantized)
        _rename_io(graph, past, codes_in, scales_in, present, present_scales)
        total = present.shape[2]
        present.type, present.shape = ir.TensorType(ir.DataType.UINT8), ir.Shape([1, kv_heads, total, width])
        present_scales.type = ir.TensorType(ir.DataType.FLOAT)
        present_scales.shape = ir.Shape([1, kv_heads, total, scale_width])


def _split_last(op, const, value, squeeze: bool = True):
    """The two halves of ``value``'s last axis of size 2 (squeezed away, or kept as size 1)."""
    first = op("Slice", value, const([0], np.int64), const([1], np.int64), const([-1], np.int64))
    second = op("Slice", value, const([1], np.int64), const([2], np.int64), const([-1], np.int64))
    if squeeze:
        first, second = op("Squeeze", first, const([-1], np.int64)), op("Squeeze", second, const([-1], np.int64))
    return first, second


def _rename_io(graph: ir.Graph, past: ir.Value, codes_in: ir.Value, scales_in: ir.Value, present: ir.Value,
               present_scales: ir.Value) -> None:
    """The codes keep the float tensor's names; the scales sit right after them, named ``*_scale``."""
    name = past.name
    past.replace_all_uses_with(codes_in)
    index = list(graph.inputs).index(past)
    graph.inputs[index] = codes_in
    graph.inputs.insert(index + 1, scales_in)
    codes_in.name, scales_in.name = name, name + SCALE_SUFFIX
    out = list(graph.outputs).index(present)
    graph.outputs.insert(out + 1, present_scales)
    present_scales.name = present.name + SCALE_SUFFIX
