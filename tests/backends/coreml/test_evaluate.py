"""Each MIL op of the numpy evaluator against its Core ML definition: coremltools' own value inference (what
its MIL builder computes for constant inputs), or, for the few ops without one, the formula of coremltools'
MIL op reference. Every op the evaluator knows has a case here."""

from __future__ import annotations

import numpy as np
import pytest

from edgesdk.backends.coreml.deployment import import_coremltools
from edgesdk.backends.coreml.evaluate import EVALUATORS

RNG = np.random.default_rng(0)
X = RNG.normal(0, 1, (2, 3, 8)).astype(np.float32)
POSITIVE = np.abs(X) + 0.1
INTS = RNG.integers(1, 9, (2, 3, 8)).astype(np.int32)
CODES = RNG.integers(-8, 8, (8, 6)).astype(np.int8)


def _scattered() -> np.ndarray:
    """scatter_nd's "update": X with the rows at [0, 1] and [1, 2] replaced by the updates, in order."""
    expected = X.copy()
    expected[0, 1], expected[1, 2] = X[0, 0] * 10, X[1, 0] * 10
    return expected


def _cases(mb, types):
    """op type -> (a builder call making the op from constants, the reference when coremltools infers none)."""
    int4 = CODES.astype(types.np_int4_dtype)
    block_scale = RNG.uniform(0.01, 0.1, (2, 6)).astype(np.float32)
    return {
        "abs": (lambda: mb.abs(x=X), None), "add": (lambda: mb.add(x=X, y=X[0]), None),
        "cast": (lambda: mb.cast(x=X * 4, dtype="int32"), None), "ceil": (lambda: mb.ceil(x=X), None),
        "clip": (lambda: mb.clip(x=X, alpha=np.float32(-0.5), beta=np.float32(0.5)), None),
        "concat": (lambda: mb.concat(values=[X, X * 2], axis=1), None),
        "const": (lambda: mb.const(val=X), None),
        "constexpr_affine_dequantize": (lambda: mb.constexpr_affine_dequantize(
            quantized_data=CODES, zero_point=np.int8(1), scale=np.float32(0.05), axis=0), None),
        "constexpr_blockwise_shift_scale": (lambda: mb.constexpr_blockwise_shift_scale(
            data=int4, scale=block_scale, offset=np.ones((2, 6), np.int8).astype(types.np_int4_dtype)), None),
        "cos": (lambda: mb.cos(x=X), None),
        "dequantize": (lambda: mb.dequantize(input=CODES, scale=np.float32(0.1), zero_point=np.int8(-2)),
                       lambda: (CODES.astype(np.float32) + 2) * np.float32(0.1)),  # (input − zero_point) · scale
        "equal": (lambda: mb.equal(x=INTS, y=INTS[0]), None), "erf": (lambda: mb.erf(x=X), None),
        "exp": (lambda: mb.exp(x=X), None), "expand_dims": (lambda: mb.expand_dims(x=X, axes=[1]), None),
        "floor": (lambda: mb.floor(x=X), None), "floor_div": (lambda: mb.floor_div(x=INTS * 7, y=INTS), None),
        "gather": (lambda: mb.gather(x=X, indices=np.array([2, 0, 1], np.int32), axis=1), None),
        "gather_nd": (lambda: mb.gather_nd(x=X, indices=np.array([[0, 1], [1, 2]], np.int32)),
                      lambda: np.stack([X[0, 1], X[1, 2]])),
        "gelu": (lambda: mb.gelu(x=X, mode="TANH_APPROXIMATION"), None),
        "greater": (lambda: mb.greater(x=X, y=X[1]), None), "greater_equal": (lambda: mb.greater_equal(x=INTS, y=INTS[1]), None),
        "identity": (lambda: mb.identity(x=X), lambda: X), "inverse": (lambda: mb.inverse(x=POSITIVE), None),
        "layer_norm": (lambda: mb.layer_norm(x=X, axes=[-1], gamma=X[0, 0], beta=X[1, 1], epsilon=np.float32(1e-5)), None),
        "less": (lambda: mb.less(x=X, y=X[1]), None), "less_equal": (lambda: mb.less_equal(x=INTS, y=INTS[1]), None),
        "linear": (lambda: mb.linear(x=X, weight=X[0, :2], bias=X[1, 0, :2]), None),
        "log": (lambda: mb.log(x=POSITIVE), None),
        "logical_and": (lambda: mb.logical_and(x=X > 0, y=X[1] > 0), None),
        "logical_not": (lambda: mb.logical_not(x=X > 0), None),
        "logical_or": (lambda: mb.logical_or(x=X > 0, y=X[1] > 0), None),
        "logical_xor": (lambda: mb.logical_xor(x=X > 0, y=X[1] > 0), None),
        "matmul": (lambda: mb.matmul(x=X, y=X, transpose_y=True), None),
        "maximum": (lambda: mb.maximum(x=X, y=X[1]), None), "minimum": (lambda: mb.minimum(x=X, y=X[1]), None),
        "mul": (lambda: mb.mul(x=X, y=X[1]), None), "not_equal": (lambda: mb.not_equal(x=INTS, y=INTS[0]), None),
        "pow": (lambda: mb.pow(x=POSITIVE, y=np.float32(1.7)), None),
        "quantize": (lambda: mb.quantize(input=X, scale=np.float32(0.02), zero_point=np.int8(3), output_dtype="int8"), None),
        "real_div": (lambda: mb.real_div(x=X, y=POSITIVE), None),
        "reduce_max": (lambda: mb.reduce_max(x=X, axes=[1], keep_dims=True), None),
        "reduce_mean": (lambda: mb.reduce_mean(x=X, axes=[-1], keep_dims=False), None),
        "reduce_min": (lambda: mb.reduce_min(x=X, axes=[0, 2], keep_dims=True), None),
        "reduce_sum": (lambda: mb.reduce_sum(x=X, axes=[1], keep_dims=False), None),
        "relu": (lambda: mb.relu(x=X), None), "reshape": (lambda: mb.reshape(x=X, shape=[6, 8]), None),
        "round": (lambda: mb.round(x=X * 3), None), "rsqrt": (lambda: mb.rsqrt(x=POSITIVE), None),
        "scatter_nd": (lambda: mb.scatter_nd(data=X, indices=np.array([[0, 1], [1, 2]], np.int32), updates=X[:, 0] * 10,
                                             mode="update"), _scattered),
        "select": (lambda: mb.select(cond=X > 0, a=X, b=np.float32(-1)), None),
        "sigmoid": (lambda: mb.sigmoid(x=X), None),
        "silu": (lambda: mb.silu(x=X), lambda: X / (1 + np.exp(-X))),
        "sin": (lambda: mb.sin(x=X), None),
        "slice_by_index": (lambda: mb.slice_by_index(x=X, begin=[0, 1, 1], end=[2, 3, 8], stride=[1, 1, 3]), None),
        "softmax": (lambda: mb.softmax(x=X, axis=1), None),
        "split": (lambda: mb.split(x=X, split_sizes=[3, 5], axis=-1), None),
        "sqrt": (lambda: mb.sqrt(x=POSITIVE), None), "square": (lambda: mb.square(x=X), None),
        "squeeze": (lambda: mb.squeeze(x=X[:, :1], axes=[1]), None), "sub": (lambda: mb.sub(x=X, y=X[0]), None),
        "tanh": (lambda: mb.tanh(x=X), None), "tile": (lambda: mb.tile(x=X, reps=[1, 2, 1]), None),
        "transpose": (lambda: mb.transpose(x=X, perm=[2, 0, 1]), None),
    }


@pytest.fixture(scope="module")
def made():
    """op type -> (coremltools' op, its outputs' values by coremltools or by the reference formula)."""
    ct = import_coremltools()
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import Function, types

    built = {}
    with Function({}, opset_version=ct.target.iOS18):
        for op_type, (make, reference) in _cases(mb, types).items():
            result = make()
            outputs = list(result) if isinstance(result, (list, tuple)) else [result]
            op = outputs[0].op
            if op.op_type.startswith("constexpr_"):
                expected = [op.materialized_val_inference()]
            elif reference is not None:
                expected = [reference()]
            else:
                expected = [o.val for o in outputs]
            built[op_type] = (op, expected)
    return built


def test_every_evaluated_op_has_a_case(made):
    assert sorted(made) == sorted(EVALUATORS)


@pytest.mark.parametrize("op_type", sorted(EVALUATORS))
def test_the_evaluator_computes_each_op_as_core_ml_defines_it(made, op_type):
    op, expected = made[op_type]
    assert op.op_type == op_type
    assert all(value is not None for value in expected), f"coremltools infers no value for {op_type}: give a reference"
    args = {name: ([v.val for v in var] if isinstance(var, (list, tuple)) else var.val) for name, var in op.inputs.items()}
    args["_op"] = op
    result = EVALUATORS[op_type](args)
    results = result if isinstance(result, list) else [result]
    assert len(results) == len(expected)
    for ours, theirs in zip(results, expected):
        theirs = np.asarray(theirs)
        ours = np.asarray(ours)
        assert ours.shape == theirs.shape, (op_type, ours.shape, theirs.shape)
        if theirs.dtype.kind in "iub":
            np.testing.assert_array_equal(ours.astype(theirs.dtype), theirs, err_msg=op_type)
        else:
            np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6, err_msg=op_type)
