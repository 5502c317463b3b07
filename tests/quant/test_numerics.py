"""Quantization arithmetic: error bounds that follow from the formats, checked on random real-valued data."""

from __future__ import annotations

import numpy as np
import pytest

from edgesdk.quant.numerics import asymmetric_uint8, blockwise, dequantize_blockwise, symmetric_int8


def test_symmetric_int8_error_is_within_half_a_step():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.05, (384, 96)).astype(np.float32)
    q, scale = symmetric_int8(w, axis=1)
    assert q.dtype == np.int8 and scale.shape == (96,)
    assert np.abs(q).max() == 127  # each column's largest value lands on the grid's end
    assert np.all(np.abs(q * scale - w) <= scale / 2 + 1e-7)


@pytest.mark.parametrize("axis", [0, 1])
def test_symmetric_int8_by_row_chunks_matches_the_whole_array(axis, monkeypatch):
    from edgesdk.quant import numerics

    monkeypatch.setattr(numerics, "ROWS_PER_CHUNK", 7)  # ragged last chunk
    w = np.random.default_rng(1).normal(0, 0.05, (50, 12)).astype(np.float32)
    q, scale = symmetric_int8(w, axis=axis)
    absmax = np.abs(w).max(axis=1 - axis)
    np.testing.assert_array_equal(scale, (absmax / 127).astype(np.float32))
    expected = np.clip(np.rint(w / np.expand_dims(scale, 1 - axis)), -127, 127).astype(np.int8)
    np.testing.assert_array_equal(q, expected)


def test_uint8_range_covers_the_observed_range():
    scale, zp = asymmetric_uint8(-0.3, 2.1)
    assert np.isclose((0 - int(zp)) * scale, -0.3, atol=scale) and np.isclose((255 - int(zp)) * scale, 2.1, atol=scale)
    scale, zp = asymmetric_uint8(0.5, 3.0)  # a positive range is widened to include 0, so 0 stays exact
    assert zp == 0 and np.isclose(255 * scale, 3.0)
    assert asymmetric_uint8(0.5, 0.5)[0] > 0  # degenerate range still gives a usable scale


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("block", [16, 32, 128])
def test_blockwise_int4_roundtrip(symmetric, block):
    rng = np.random.default_rng(1)
    w = rng.standard_t(4, (256, 64)).astype(np.float32) * 0.02  # heavy tails, like real weights
    q, scale, zp = blockwise(w, block, bits=4, symmetric=symmetric, search_clip=False)
    lo, hi = (-8, 7) if symmetric else (0, 15)
    assert q.min() >= lo and q.max() <= hi and scale.shape == (256 // block, 64)
    assert (zp is None) == symmetric
    err = np.abs(dequantize_blockwise(q, scale, zp, block) - w)
    steps = np.repeat(scale, block, axis=0)
    assert np.all(err <= steps / 2 + 1e-6)


def test_clip_search_never_increases_the_error():
    rng = np.random.default_rng(2)
    w = rng.standard_t(3, (512, 32)).astype(np.float32)
    plain = dequantize_blockwise(*blockwise(w, 32, search_clip=False), 32)
    searched = dequantize_blockwise(*blockwise(w, 32, search_clip=True), 32)
    assert ((searched - w) ** 2).sum() < ((plain - w) ** 2).sum()


def test_blockwise_rejects_ragged_blocks():
    with pytest.raises(ValueError, match="not a multiple"):
        blockwise(np.zeros((100, 4), np.float32), 32)
