"""GPTQ against plain rounding, on inputs with correlated channels of very different sizes (as a
transformer's are): the output error it leaves on the calibration inputs."""

from __future__ import annotations

import numpy as np
import pytest

from edgesdk.quant.gptq import gptq
from edgesdk.quant.numerics import blockwise, dequantize_blockwise


def _layer(seed: int = 0, k: int = 256, n: int = 96, rows: int = 2048):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(0, 1, (k, k)) / np.sqrt(k)
    x = (rng.normal(0, 1, (rows, k)) @ mixing * np.exp(rng.normal(0, 1, k))).astype(np.float32)
    w = rng.normal(0, 0.05, (k, n)).astype(np.float32)
    return x, w, x.T.astype(np.float64) @ x / rows


def _output_error(x, w, q, scale, zp, block):
    return float(np.mean((x @ (dequantize_blockwise(q, scale, zp, block) - w)) ** 2))


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_leaves_less_output_error_than_rounding(symmetric, act_order):
    x, w, hessian = _layer()
    rtn = _output_error(x, w, *blockwise(w, 32, bits=4, symmetric=symmetric), 32)
    q, scale, zp = gptq(w, hessian, 32, bits=4, symmetric=symmetric, act_order=act_order)
    assert q.min() >= (-8 if symmetric else 0) and q.max() <= (7 if symmetric else 15)
    # measured 0.62 (rows in order) and 0.30 (act-order) of the clip-searched rounding's error
    assert _output_error(x, w, q, scale, zp, 32) < (0.8 if not act_order else 0.45) * rtn


def test_gptq_keeps_the_group_parameters_of_plain_rounding():
    x, w, hessian = _layer(seed=1)
    _, scale, zp = blockwise(w, 32, bits=4, symmetric=False)
    _, gptq_scale, gptq_zp = gptq(w, hessian, 32)
    np.testing.assert_array_equal(gptq_scale, scale)
    np.testing.assert_array_equal(gptq_zp, zp)


def test_a_channel_that_never_fires_does_not_break_the_factorisation():
    x, w, _ = _layer(seed=2)
    x[:, 5] = 0
    hessian = x.T.astype(np.float64) @ x / len(x)
    q, scale, zp = gptq(w, hessian, 32)
    assert np.isfinite(dequantize_blockwise(q, scale, zp, 32)).all()
