"""The MIL program inside an .mlpackage, run op by op with numpy: how a package's numbers are checked where
Core ML does not run (Linux). It reads the program back from the package (coremltools' milproto loader, the
weights from the package's weight file), so what it runs is what ships, after coremltools' own passes.

Only the ops this backend's packages hold are here, each written from its definition in coremltools'
MIL op reference (tests/backends/coreml/test_evaluate.py checks each against coremltools' own value
inference where it has one). Values are computed in float32 and stored in each op's output dtype, so a
float16 package rounds where Core ML would store float16. An op not here is named, not guessed."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ArtifactError, ModelError
from .deployment import import_coremltools

Evaluator = Callable[[dict[str, Any]], np.ndarray | list[np.ndarray]]
EVALUATORS: dict[str, Evaluator] = {}


def evaluates(*op_types: str):
    def wrap(fn: Evaluator) -> Evaluator:
        for op_type in op_types:
            EVALUATORS[op_type] = fn
        return fn

    return wrap


def load_program(package: Path):
    """The package's MIL program (pymil), read back from its spec and weight file."""
    ct = import_coremltools()
    from coremltools.converters.mil.frontend.milproto.load import load

    try:
        model = ct.models.MLModel(str(package), skip_model_load=True)
        spec = model.get_spec()
        return load(spec, spec.specificationVersion, model.weights_dir), spec
    except Exception as exc:
        raise ArtifactError(f"{package}: not a readable Core ML package ({str(exc).splitlines()[0][:200]})") from None


class Program:
    """One function of a loaded program, ready to run: ``run({input name: array}) -> {output name: array}``.
    ``loaded`` shares one read of a package between its functions (a causal LM's prefill and decode), and
    ``weights`` their dequantized weights (the same constexpr ops in both)."""

    def __init__(self, package: Path, function: str | None = None, loaded=None, weights: dict | None = None):
        self.program, self.spec = loaded or load_program(package)
        function = function or self.spec.description.defaultFunctionName or "main"
        if function not in self.program.functions:
            raise ArtifactError(f"{package}: the program has no function '{function}' "
                                f"(it has {', '.join(sorted(self.program.functions))})")
        self.function = self.program.functions[function]
        missing = sorted({op.op_type for op in self.function.operations} - set(EVALUATORS))
        if missing:
            raise ModelError(f"{package}: the numpy evaluator has no definition of the MIL ops {', '.join(missing)}")
        self.constants = {}  # op name -> outputs of ops that read constants only (weights and their casts)
        self.weights = {} if weights is None else weights  # constexpr op name -> its dequantized weight
        self.constant_ops = _constant_ops(self.function)

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from coremltools.converters.mil.mil import types

        env: dict[str, np.ndarray] = {}
        for name, var in self.function.inputs.items():
            env[name] = np.asarray(feed[name]).astype(types.nptype_from_builtin(var.dtype))
        for op in self.function.operations:
            if op.name in self.constants:
                outputs = self.constants[op.name]
            elif op.op_type.startswith("constexpr_") and op.name in self.weights:
                outputs = self.constants[op.name] = self.weights[op.name]
            else:
                args = {key: _value(env, value) for key, value in op.inputs.items()}
                args["_op"] = op
                result = EVALUATORS[op.op_type](args)
                results = result if isinstance(result, list) else [result]
                outputs = [_as_dtype(value, var) for value, var in zip(results, op.outputs)]
                if op.name in self.constant_ops:
                    # kept as float32 holding the float16 values exactly: ops compute in float32 anyway, and
                    # widening a weight on every run was most of a float16 package's time
                    outputs = [o.astype(np.float32) if isinstance(o, np.ndarray) and o.dtype == np.float16 else o
                               for o in outputs]
                    self.constants[op.name] = outputs
                    if op.op_type.startswith("constexpr_"):
                        self.weights[op.name] = outputs
            for var, value in zip(op.outputs, outputs):
                env[var.name] = value
        return {var.name: env[var.name] for var in self.function.outputs}


def _constant_ops(function) -> set[str]:
    """Ops whose every input is a constant or another such op's output: computed once, on the first run."""
    constant_vars: set[str] = set()
    found = set()
    for op in function.operations:
        inputs = [v for value in op.inputs.values() for v in (value if isinstance(value, (list, tuple)) else [value])]
        if all(v.val is not None or v.name in constant_vars for v in inputs):
            found.add(op.name)
            constant_vars.update(v.name for v in op.outputs)
    return found


def host_runner(package: Path, info: dict[str, Any]):
    """feed (ONNX names) -> outputs (ONNX names), through the evaluator. A causal LM's package holds a prefill
    function (a fixed number of tokens) and a decode one (one token): a call's tokens go through prefill in
    whole chunks, the rest one by one, each call given the cache the one before it wrote."""
    inputs, outputs = info["inputs"], info["outputs"]

    def renamed(run):
        def call(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            results = run({inputs[name]["name"]: value for name, value in feed.items() if name in inputs})
            return {name: results[entry["name"]].astype(np.float32) if results[entry["name"]].dtype == np.float16
                    else results[entry["name"]] for name, entry in outputs.items()}

        return call

    if not info.get("lm"):
        return renamed(Program(package).run)
    loaded, weights = load_program(package), {}
    prefill, decode = (renamed(Program(package, name, loaded, weights).run) for name in ("prefill", "decode"))
    run = chunked_lm_runner(prefill, decode, info["lm"]["prefill_tokens"])
    if info.get("compute_precision") != "float16":
        return run

    def finite(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = run(feed)
        if not np.isfinite(outputs["logits"]).all():
            raise ModelError(f"{package}: the package's float16 compute overflows this model's activations (its "
                             "logits are not finite): set options.compute_precision: float32 in the target")
        return outputs

    return finite


def chunked_lm_runner(prefill, decode, chunk: int):
    """feed -> outputs of a static-form LM call of any number of tokens, made of fixed-size calls: ``prefill``
    takes ``chunk`` tokens, ``decode`` one; the logits of every token, the cache after the last."""

    def run(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids, start = np.asarray(feed["input_ids"]), int(np.asarray(feed["position"]).reshape(-1)[0])
        state = {name: value for name, value in feed.items() if name not in ("input_ids", "position")}
        logits, done = [], 0
        while done < ids.shape[1]:
            size = chunk if ids.shape[1] - done >= chunk else 1
            result = (prefill if size == chunk else decode)(
                {"input_ids": ids[:, done:done + size], "position": np.array([start + done], ids.dtype), **state})
            logits.append(result["logits"])
            state = {"past." + name[len("present."):]: value for name, value in result.items() if name.startswith("present.")}
            done += size
        return {**result, "logits": np.concatenate(logits, axis=1)}

    return run


def _value(env: dict[str, np.ndarray], value):
    if isinstance(value, (list, tuple)):
        return [_value(env, v) for v in value]
    if value.val is not None and value.name not in env:
        return value.val
    return env[value.name]


def _as_dtype(value, var) -> np.ndarray:
    from coremltools.converters.mil.mil import types

    if isinstance(value, str):
        return value
    dtype = types.nptype_from_builtin(var.dtype)
    return np.asarray(value).astype(dtype) if np.asarray(value).dtype != dtype else np.asarray(value)


def _f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


# ------------------------------------------------------------------------------------------ constants


@evaluates("const")
def _const(a):
    return np.asarray(a["_op"].outputs[0].val)


@evaluates("constexpr_blockwise_shift_scale")
def _blockwise_shift_scale(a):
    """output = scale · (data − offset), each of scale and offset repeated over its block."""
    data, scale, offset = a["data"].astype(np.float32), _f32(a["scale"]), a.get("offset")
    for axis, (size, blocks) in enumerate(zip(data.shape, scale.shape)):
        scale = np.repeat(scale, size // blocks, axis)
        if offset is not None:
            offset = np.repeat(offset, size // blocks, axis)
    return scale * (data - offset.astype(np.float32)) if offset is not None else scale * data


@evaluates("constexpr_affine_dequantize")
def _affine_dequantize(a):
    """output = scale · (data − zero_point), scale and zero point per tensor or along ``axis``."""
    data, scale, zero, axis = a["quantized_data"].astype(np.float32), _f32(a["scale"]), _f32(a["zero_point"]), int(a["axis"])
    shape = [1] * data.ndim
    if scale.size > 1:
        shape[axis] = scale.size
    return scale.reshape(shape) * (data - zero.reshape(shape if zero.size > 1 else [1] * data.ndim))


# ------------------------------------------------------------------------------------------ elementwise

_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "real_div": np.divide, "pow": np.power,
           "maximum": np.maximum, "minimum": np.minimum, "equal": np.equal, "not_equal": np.not_equal,
           "less": np.less, "less_equal": np.less_equal, "greater": np.greater, "greater_equal": np.greater_equal,
           "logical_and": np.logical_and, "logical_or": np.logical_or, "logical_xor": np.logical_xor}


def _binary(fn):
    def evaluate(a):
        x, y = np.asarray(a["x"]), np.asarray(a["y"])
        if x.dtype.kind == "f" or y.dtype.kind == "f":
            x, y = _f32(x), _f32(y)
        return fn(x, y)

    return evaluate


for _name, _fn in _BINARY.items():
    EVALUATORS[_name] = _binary(_fn)


@evaluates("floor_div")
def _floor_div(a):
    return np.floor_divide(a["x"], a["y"])


def _erf(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return erf(x)


_UNARY = {"sqrt": np.sqrt, "exp": np.exp, "erf": _erf, "tanh": np.tanh, "abs": np.abs, "floor": np.floor,
          "ceil": np.ceil, "round": np.round, "sin": np.sin, "cos": np.cos, "square": np.square,
          "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)), "relu": lambda x: np.maximum(x, 0),
          "logical_not": np.logical_not, "identity": lambda x: x}


def _unary(fn):
    def evaluate(a):
        x = np.asarray(a["x"])
        return fn(_f32(x)) if x.dtype.kind == "f" else fn(x)

    return evaluate


for _name, _fn in _UNARY.items():
    EVALUATORS[_name] = _unary(_fn)


@evaluates("rsqrt")
def _rsqrt(a):
    return 1.0 / np.sqrt(_f32(a["x"]) + np.float32(a.get("epsilon", 1e-12)))


@evaluates("inverse")
def _inverse(a):
    return 1.0 / (_f32(a["x"]) + np.float32(a.get("epsilon", 1e-4)))


@evaluates("log")
def _log(a):
    return np.log(_f32(a["x"]) + np.float32(a.get("epsilon", 1e-45)))


@evaluates("gelu")
def _gelu(a):
    x, mode = _f32(a["x"]), str(a.get("mode", "EXACT"))
    if mode == "EXACT":
        return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    return x / (1.0 + np.exp(-1.702 * x))  # SIGMOID_APPROXIMATION


@evaluates("silu")
def _silu(a):
    x = _f32(a["x"])
    return x / (1.0 + np.exp(-x))


@evaluates("clip")
def _clip(a):
    return np.clip(_f32(a["x"]), np.float32(a["alpha"]), np.float32(a["beta"]))


@evaluates("cast")
def _cast(a):
    from coremltools.converters.mil.mil import types

    return np.asarray(a["x"]).astype(types.nptype_from_builtin(types.string_to_builtin(str(a["dtype"]))))


@evaluates("select")
def _select(a):
    return np.where(np.asarray(a["cond"]).astype(bool), a["a"], a["b"])


# ------------------------------------------------------------------------------------------ linear algebra


@evaluates("matmul")
def _matmul(a):
    x, y = _f32(a["x"]), _f32(a["y"])
    if a.get("transpose_x", False):
        x = np.swapaxes(x, -1, -2)
    if a.get("transpose_y", False):
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y)


@evaluates("linear")
def _linear(a):
    """x · weightᵀ + bias (weight [out, in])."""
    out = np.matmul(_f32(a["x"]), _f32(a["weight"]).T)
    return out + _f32(a["bias"]) if a.get("bias") is not None else out


@evaluates("softmax")
def _softmax(a):
    x, axis = _f32(a["x"]), int(a.get("axis", -1))
    shifted = np.exp(x - x.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


@evaluates("layer_norm")
def _layer_norm(a):
    """(x − mean) / sqrt(variance + epsilon) · gamma + beta over ``axes`` (biased variance)."""
    x = _f32(a["x"])
    axes = tuple(int(v) for v in np.asarray(a["axes"]).reshape(-1)) if a.get("axes") is not None else tuple(range(x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    out = (x - mean) / np.sqrt(variance + np.float32(a.get("epsilon", 1e-5)))
    if a.get("gamma") is not None:
        out = out * _f32(a["gamma"])
    if a.get("beta") is not None:
        out = out + _f32(a["beta"])
    return out


def _reduce(fn):
    def evaluate(a):
        x = np.asarray(a["x"])
        axes = tuple(int(v) for v in np.asarray(a["axes"]).reshape(-1)) if a.get("axes") is not None else None
        return fn(_f32(x) if x.dtype.kind == "f" else x, axis=axes, keepdims=bool(a.get("keep_dims", False)))

    return evaluate


EVALUATORS.update({"reduce_sum": _reduce(np.sum), "reduce_mean": _reduce(np.mean), "reduce_max": _reduce(np.max),
                   "reduce_min": _reduce(np.min)})


# ------------------------------------------------------------------------------------------ shapes


@evaluates("reshape")
def _reshape(a):
    return np.reshape(a["x"], [int(v) for v in np.asarray(a["shape"]).reshape(-1)])


@evaluates("transpose")
def _transpose(a):
    return np.transpose(a["x"], [int(v) for v in np.asarray(a["perm"]).reshape(-1)])


@evaluates("expand_dims")
def _expand_dims(a):
    return np.expand_dims(a["x"], tuple(int(v) for v in np.asarray(a["axes"]).reshape(-1)))


@evaluates("squeeze")
def _squeeze(a):
    axes = a.get("axes")
    return np.squeeze(a["x"], None if axes is None else tuple(int(v) for v in np.asarray(axes).reshape(-1)))


@evaluates("tile")
def _tile(a):
    return np.tile(a["x"], [int(v) for v in np.asarray(a["reps"]).reshape(-1)])


@evaluates("concat")
def _concat(a):
    values, axis = [np.asarray(v) for v in a["values"]], int(a["axis"])
    if a.get("interleave", False):
        return np.stack(values, axis=axis + 1 if axis >= 0 else axis).reshape(
            *values[0].shape[:axis % values[0].ndim], -1, *values[0].shape[axis % values[0].ndim + 1:])
    return np.concatenate(values, axis=axis)


@evaluates("slice_by_index")
def _slice_by_index(a):
    x = np.asarray(a["x"])
    rank = x.ndim
    begin, end = np.asarray(a["begin"]).tolist(), np.asarray(a["end"]).tolist()
    stride = np.asarray(a["stride"]).tolist() if a.get("stride") is not None else [1] * rank
    begin_mask = np.asarray(a["begin_mask"]).tolist() if a.get("begin_mask") is not None else [False] * rank
    end_mask = np.asarray(a["end_mask"]).tolist() if a.get("end_mask") is not None else [False] * rank
    squeeze = np.asarray(a["squeeze_mask"]).tolist() if a.get("squeeze_mask") is not None else [False] * rank
    index = []
    for axis in range(rank):
        start = None if begin_mask[axis] else begin[axis]
        stop = None if end_mask[axis] else end[axis]
        index.append(start if squeeze[axis] else slice(start, stop, stride[axis]))
    return x[tuple(index)]


@evaluates("split")
def _split(a):
    x, axis = np.asarray(a["x"]), int(a["axis"])
    if a.get("split_sizes") is not None:
        bounds = np.cumsum(np.asarray(a["split_sizes"]).reshape(-1))[:-1]
        return list(np.split(x, bounds, axis=axis))
    return list(np.split(x, int(a["num_splits"]), axis=axis))


@evaluates("gather")
def _gather(a):
    x, indices, axis = np.asarray(a["x"]), np.asarray(a["indices"]).astype(np.int64), int(a.get("axis", 0))
    if int(a.get("batch_dims", 0) or 0):
        raise ModelError("gather with batch_dims: not in this evaluator")
    return np.take(x, np.where(indices < 0, indices + x.shape[axis], indices), axis=axis)


@evaluates("gather_nd")
def _gather_nd(a):
    x, indices = np.asarray(a["x"]), np.asarray(a["indices"]).astype(np.int64)
    batch = int(a.get("batch_dims", 0) or 0)
    if batch:
        raise ModelError("gather_nd with batch_dims: not in this evaluator")
    depth = indices.shape[-1]
    flat = indices.reshape(-1, depth)
    picked = np.stack([x[tuple(row)] for row in flat]) if len(flat) else np.zeros((0, *x.shape[depth:]), x.dtype)
    return picked.reshape(*indices.shape[:-1], *x.shape[depth:])


@evaluates("scatter_nd")
def _scatter_nd(a):
    """data with the slices that ``indices`` name replaced by (or combined with, per ``mode``) ``updates``."""
    data, indices, updates = np.array(a["data"]), np.asarray(a["indices"]).astype(np.int64), np.asarray(a["updates"])
    depth, mode = indices.shape[-1], str(a.get("mode", "add"))
    combine = {"update": lambda old, new: new, "add": np.add, "sub": np.subtract, "mul": np.multiply,
               "div": np.divide, "max": np.maximum, "min": np.minimum}[mode]
    flat_updates = updates.reshape(-1, *data.shape[depth:])
    for row, update in zip(indices.reshape(-1, depth), flat_updates):
        at = tuple(np.where(row < 0, row + np.asarray(data.shape[:depth]), row))
        data[at] = combine(data[at], update)
    return data


# ------------------------------------------------------------------------------------------ quantization


def _along(param: np.ndarray, rank: int, axis: int | None) -> np.ndarray:
    if param.size <= 1 or axis is None:
        return param.reshape(())
    shape = [1] * rank
    shape[axis % rank] = param.size
    return param.reshape(shape)


@evaluates("quantize")
def _quantize(a):
    """clip(round_half_even(x / scale) + zero_point) in int8 or uint8."""
    x = _f32(a["input"])
    axis = int(a["axis"]) if a.get("axis") is not None else None
    dtype = np.int8 if str(a["output_dtype"]) == "int8" else np.uint8
    codes = np.around(x / _along(_f32(a["scale"]), x.ndim, axis))
    if a.get("zero_point") is not None:
        codes = codes + _along(_f32(a["zero_point"]), x.ndim, axis)
    info = np.iinfo(dtype)
    return np.clip(codes, info.min, info.max).astype(dtype)


@evaluates("dequantize")
def _dequantize(a):
    """(x − zero_point) · scale."""
    x = _f32(a["input"])
    axis = int(a["axis"]) if a.get("axis") is not None else None
    if a.get("zero_point") is not None:
        x = x - _along(_f32(a["zero_point"]), x.ndim, axis)
    return x * _along(_f32(a["scale"]), x.ndim, axis)
