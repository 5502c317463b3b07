"""A decoder-only LM as an ONNX graph with an explicit KV cache.

Inputs ``input_ids`` [1, sequence] and, per layer, ``past.N.key`` / ``past.N.value`` [1, kv_heads, past,
head_dim]; outputs ``logits`` [1, sequence, vocab] and ``present.N.key`` / ``present.N.value`` [1, kv_heads,
past + sequence, head_dim]. One graph does both jobs: a prefill is a call with an empty cache (past = 0)
and the whole prompt; a decode step is a call with one token and the cache the previous call returned, so
a step never re-runs the prompt. Positions, the causal (and sliding-window) mask and the rotary tables
are computed in the graph from the cache length.

The static form (``context=N``) has the shapes a static-shape runtime or generated C wants: every cache
tensor is [1, kv_heads, N, head_dim], in and out, and a ``position`` input [1] says where the call's tokens
go; the call writes them into the cache at that position (ScatterND: the output is the input buffer with
those rows replaced, which a runtime may do in place) and attends over the N slots with a mask that hides
the ones past the current position. The sequence axis of ``input_ids`` is the only free dimension: a
static runtime fixes it once for prefill chunks and once for single-token steps.

Written with plain ONNX ops at opset 21 (no contrib ops), in the forms runtimes fuse: RMSNorm as
Pow-ReduceMean-Add-Sqrt-Div-Mul, GELU-tanh spelled out, linears as MatMul with [in, out] weights. A tied
output layer reads the embedding table itself (Gemm with transB), so the table is stored once."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import onnx_ir as ir

from .config import DecoderConfig

OPSET = 21  # block-wise and int4 DequantizeLinear (gguf, int4) need 21; no version conversion of a large graph
FLOAT_LOWEST = float(np.finfo(np.float32).min)

Weights = Callable[[str], np.ndarray]  # a transformers parameter name -> its float32 array


SCALE_SUFFIX = "_scale"  # a quantized cache's (scale, offset) tensors: past.N.key_scale (quant/passes/kv_cache.py)
KV_GROUP = {"int8": None, "int4": 32}  # values sharing one (scale, offset): a head's whole row, or blocks of 32


def kv_layout(kind: str, head_dim: int) -> tuple[int, int, int]:
    """A quantized cache's (values per group, code bytes per token and head, scale floats per token and head)."""
    group = KV_GROUP[kind] or head_dim
    if head_dim % group:
        group = head_dim  # a head narrower than a block, or not a multiple of it: one group per head
    return group, head_dim // 2 if kind == "int4" else head_dim, 2 * (head_dim // group)


def cache_names(layers: int) -> list[tuple[str, str]]:
    """(input, output) names of every cache tensor, in graph order."""
    names = []
    for i in range(layers):
        for part in ("key", "value"):
            names.append((f"past.{i}.{part}", f"present.{i}.{part}"))
    return names


class _Builder:
    def __init__(self, config: DecoderConfig, weights: Weights, context: int | None = None):
        self.c = config
        self.context = context
        self.weights = weights
        self.tape = ir.tape.Tape()
        self._consts: dict[tuple, ir.Value] = {}

    # ------------------------------------------------------------------------------------- helpers

    def op(self, op_type: str, *inputs: ir.Value | None, **attributes) -> ir.Value:
        return self.tape.op(op_type, list(inputs), attributes or None)

    def const(self, value, dtype=np.float32) -> ir.Value:
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._consts:
            self._consts[key] = self.tape.initializer(ir.tensor(array), name=f"const_{len(self._consts)}")
        return self._consts[key]

    def weight(self, name: str, transpose: bool = False, offset: float = 0.0) -> ir.Value:
        array = np.asarray(self.weights(name), dtype=np.float32)
        if transpose:
            array = np.ascontiguousarray(array.T)
        if offset:
            array = array + np.float32(offset)
        return self.tape.initializer(ir.tensor(array), name=name)

    def linear(self, x: ir.Value, prefix: str, bias: bool = False) -> ir.Value:
        y = self.op("MatMul", x, self.weight(f"{prefix}.weight", transpose=True))
        return self.op("Add", y, self.weight(f"{prefix}.bias")) if bias else y

    def rms_norm(self, x: ir.Value, name: str) -> ir.Value:
        # (x / sqrt(mean(x²) + eps)) · gain: the form ORT fuses into SimplifiedLayerNormalization.
        mean = self.op("ReduceMean", self.op("Pow", x, self.const(2.0)), self.const([-1], np.int64), keepdims=1)
        root = self.op("Sqrt", self.op("Add", mean, self.const(self.c.norm_eps)))
        return self.op("Mul", self.op("Div", x, root), self.weight(name, offset=self.c.norm_offset))

    def activation(self, x: ir.Value) -> ir.Value:
        if self.c.activation == "silu":
            return self.op("Mul", x, self.op("Sigmoid", x))
        cube = self.op("Mul", self.op("Mul", x, x), x)
        inner = self.op("Mul", self.op("Add", x, self.op("Mul", cube, self.const(0.044715))), self.const(math.sqrt(2 / math.pi)))
        return self.op("Mul", self.op("Mul", x, self.const(0.5)), self.op("Add", self.op("Tanh", inner), self.const(1.0)))

    # ------------------------------------------------------------------------- positions and masks

    def positions(self, ids: ir.Value, past: ir.Value, position: ir.Value | None):
        """(query positions [S], key positions [T]): dynamic, the cache holds the past; static, the cache
        has ``context`` slots and the tokens start at ``position``."""
        seq_len = self.op("Squeeze", self.op("Shape", ids, start=1, end=2))
        start = self.op("Squeeze", position) if position is not None else self.op("Squeeze", self.op("Shape", past, start=2, end=3))
        # start + Range(0, S): the same positions, and a shape ([S]) that shape inference sees without start
        query = self.op("Add", start, self.op("Range", self.const(0, np.int64), seq_len, self.const(1, np.int64)))
        if position is not None:
            return query, self.const(np.arange(self.context), np.int64)
        return query, self.op("Range", self.const(0, np.int64), self.op("Add", start, seq_len), self.const(1, np.int64))

    def write_cache(self, cache: ir.Value, new: ir.Value, query: ir.Value) -> ir.Value:
        """Static form: ``cache`` [1, kv, N, d] with rows ``query`` replaced by ``new`` [1, kv, S, d]."""
        c = self.c
        seq_len = self.op("Shape", query)  # [1]
        shape = self.op("Concat", self.const([1, c.kv_heads], np.int64), seq_len, self.const([1], np.int64), axis=0)
        batch = self.op("Expand", self.const(np.zeros((1, 1, 1, 1)), np.int64), shape)
        head = self.op("Expand", self.const(np.arange(c.kv_heads).reshape(1, -1, 1, 1), np.int64), shape)
        slot = self.op("Expand", self.op("Reshape", query, self.const([1, 1, -1, 1], np.int64)), shape)
        return self.op("ScatterND", cache, self.op("Concat", batch, head, slot, axis=-1), new)

    def mask(self, query: ir.Value, key: ir.Value, window: int | None) -> ir.Value:
        """Additive [S, T] mask: 0 where query i may see key j (j <= i, and i - j < window), else lowest."""
        q = self.op("Unsqueeze", query, self.const([1], np.int64))
        k = self.op("Unsqueeze", key, self.const([0], np.int64))
        allowed = self.op("LessOrEqual", k, q)
        if window:
            recent = self.op("Greater", k, self.op("Sub", q, self.const(window, np.int64)))
            allowed = self.op("And", allowed, recent)
        return self.op("Where", allowed, self.const(0.0), self.const(FLOAT_LOWEST))

    def rotary(self, query: ir.Value, theta: float) -> tuple[ir.Value, ir.Value]:
        """cos and sin tables [S, head_dim] for the query positions (the rotate-half layout)."""
        d = self.c.head_dim
        inv_freq = (1.0 / (theta ** (np.arange(0, d, 2, dtype=np.int64).astype(np.float32) / d))).astype(np.float32)
        pos = self.op("Cast", query, to=ir.DataType.FLOAT)
        if self.c.rope_scale != 1.0:
            pos = self.op("Div", pos, self.const(self.c.rope_scale))
        freqs = self.op("Mul", self.op("Unsqueeze", pos, self.const([1], np.int64)), self.const(inv_freq[None, :]))
        angles = self.op("Concat", freqs, freqs, axis=-1)
        return self.op("Cos", angles), self.op("Sin", angles)

    def rope(self, x: ir.Value, cos: ir.Value, sin: ir.Value) -> ir.Value:
        half = self.c.head_dim // 2
        first = self.op("Slice", x, self.const([0], np.int64), self.const([half], np.int64), self.const([-1], np.int64))
        second = self.op("Slice", x, self.const([half], np.int64), self.const([2 * half], np.int64), self.const([-1], np.int64))
        rotated = self.op("Concat", self.op("Neg", second), first, axis=-1)
        return self.op("Add", self.op("Mul", x, cos), self.op("Mul", rotated, sin))

    # ------------------------------------------------------------------------------------- blocks

    def attention(self, x, i, past_k, past_v, mask, cos, sin, query):
        c, p = self.c, f"model.layers.{i}.self_attn"
        q = self.linear(x, f"{p}.q_proj", c.attention_bias)
        k = self.linear(x, f"{p}.k_proj", c.attention_bias)
        v = self.linear(x, f"{p}.v_proj", c.attention_bias)
        # Query heads grouped by the KV head they read: [1, kv, group, S, d]; keys/values [1, kv, S, d].
        q = self.op("Transpose", self.op("Reshape", q, self.const([1, 0, c.kv_heads, c.group, c.head_dim], np.int64)), perm=[0, 2, 3, 1, 4])
        k = self.op("Transpose", self.op("Reshape", k, self.const([1, 0, c.kv_heads, c.head_dim], np.int64)), perm=[0, 2, 1, 3])
        v = self.op("Transpose", self.op("Reshape", v, self.const([1, 0, c.kv_heads, c.head_dim], np.int64)), perm=[0, 2, 1, 3])
        if c.qk_norm:
            q = self.rms_norm(q, f"{p}.q_norm.weight")
            k = self.rms_norm(k, f"{p}.k_norm.weight")
        q = self.op("Mul", self.rope(q, cos, sin), self.const(c.query_scale))
        k = self.rope(k, cos, sin)
        if self.context:
            present_k, present_v = self.write_cache(past_k, k, query), self.write_cache(past_v, v, query)
        else:
            present_k = self.op("Concat", past_k, k, axis=2)
            present_v = self.op("Concat", past_v, v, axis=2)
        keys_t = self.op("Transpose", self.op("Unsqueeze", present_k, self.const([2], np.int64)), perm=[0, 1, 2, 4, 3])
        scores = self.op("Add", self.op("MatMul", q, keys_t), mask)  # [1, kv, group, S, T]
        probs = self.op("Softmax", scores, axis=-1)
        out = self.op("MatMul", probs, self.op("Unsqueeze", present_v, self.const([2], np.int64)))
        out = self.op("Reshape", self.op("Transpose", out, perm=[0, 3, 1, 2, 4]), self.const([1, 0, c.heads * c.head_dim], np.int64))
        return self.linear(out, f"{p}.o_proj"), present_k, present_v

    def mlp(self, x, i):
        p = f"model.layers.{i}.mlp"
        gate = self.activation(self.linear(x, f"{p}.gate_proj"))
        return self.linear(self.op("Mul", gate, self.linear(x, f"{p}.up_proj")), f"{p}.down_proj")

    def layer(self, h, i, past_k, past_v, mask, cos, sin, query):
        c, p = self.c, f"model.layers.{i}"
        attn, present_k, present_v = self.attention(self.rms_norm(h, f"{p}.input_layernorm.weight"), i, past_k, past_v,
                                                    mask, cos, sin, query)
        if c.sandwich_norms:
            attn = self.rms_norm(attn, f"{p}.post_attention_layernorm.weight")
            h = self.op("Add", h, attn)
            mlp = self.mlp(self.rms_norm(h, f"{p}.pre_feedforward_layernorm.weight"), i)
            h = self.op("Add", h, self.rms_norm(mlp, f"{p}.post_feedforward_layernorm.weight"))
        else:
            h = self.op("Add", h, attn)
            h = self.op("Add", h, self.mlp(self.rms_norm(h, f"{p}.post_attention_layernorm.weight"), i))
        return h, present_k, present_v

    # -------------------------------------------------------------------------------------- graph

    def build(self, name: str) -> ir.Model:
        c = self.c
        ids = ir.Value(name="input_ids", type=ir.TensorType(ir.DataType.INT64), shape=ir.Shape([1, "sequence"]))
        cache_shape = ir.Shape([1, c.kv_heads, self.context or "past", c.head_dim])
        pasts = [ir.Value(name=n, type=ir.TensorType(ir.DataType.FLOAT), shape=cache_shape) for n, _ in cache_names(c.layers)]
        position = None
        if self.context:
            position = ir.Value(name="position", type=ir.TensorType(ir.DataType.INT64), shape=ir.Shape([1]))
        query, key = self.positions(ids, pasts[0], position)
        masks = {None: self.mask(query, key, None)}
        tables = {c.rope_theta: self.rotary(query, c.rope_theta)}
        embedding = self.weight("model.embed_tokens.weight")
        h = self.op("Gather", embedding, ids, axis=0)
        if c.scaled_embedding:
            h = self.op("Mul", h, self.const(np.float32(c.hidden**0.5)))
        presents = []
        for i in range(c.layers):
            sliding = i in c.sliding_layers
            window = c.sliding_window if sliding else None
            theta = c.rope_theta_sliding if sliding and c.rope_theta_sliding else c.rope_theta
            if window not in masks:
                masks[window] = self.mask(query, key, window)
            if theta not in tables:
                tables[theta] = self.rotary(query, theta)
            h, pk, pv = self.layer(h, i, pasts[2 * i], pasts[2 * i + 1], masks[window], *tables[theta], query)
            presents += [pk, pv]
        h = self.rms_norm(h, "model.norm.weight")
        if c.tied_embeddings:
            flat = self.op("Reshape", h, self.const([-1, c.hidden], np.int64))
            logits = self.op("Gemm", flat, embedding, transB=1)
            logits = self.op("Reshape", logits, self.const([1, -1, c.vocab], np.int64))
        else:
            logits = self.linear(h, "lm_head")
        outputs = [logits, *presents]
        out_names = ["logits"] + [o for _, o in cache_names(c.layers)]
        total_shape = ir.Shape([1, c.kv_heads, self.context or "total", c.head_dim])
        for value, out_name in zip(outputs, out_names):
            value.name = out_name
            value.type = ir.TensorType(ir.DataType.FLOAT)
            value.shape = ir.Shape([1, "sequence", c.vocab]) if out_name == "logits" else total_shape
        graph = ir.Graph(
            [ids, *([position] if position is not None else []), *pasts], outputs, nodes=self.tape.nodes, initializers=self.tape.initializers,
            opset_imports={"": OPSET}, name=name,
        )
        _name_nodes(graph)
        return ir.Model(graph, ir_version=10, producer_name="edgesdk")


def _name_nodes(graph: ir.Graph) -> None:
    for index, node in enumerate(graph):
        node.name = f"{node.op_type}_{index}"
        for j, out in enumerate(node.outputs):
            if out.name is None:
                out.name = f"{node.op_type}_{index}_{j}"


def build_decoder(config: DecoderConfig, weights: Weights, name: str = "decoder", context: int | None = None) -> ir.Model:
    """The dynamic form, or with ``context`` the static form with that many cache slots."""
    return _Builder(config, weights, context).build(name)
