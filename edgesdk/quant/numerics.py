"""Quantization arithmetic on numpy arrays: scales, zero points, rounding, int4 packing."""

from __future__ import annotations

import numpy as np

INT8_MAX = 127
UINT8_MAX = 255
COLUMNS_PER_CHUNK = 4096  # block-wise quantization works through a weight this many columns at a time
ROWS_PER_CHUNK = 4096  # per-channel int8 through this many rows at a time


def symmetric_int8(weight: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel symmetric int8 along ``axis`` (the output channels); returns (int8 values, scales)."""
    if weight.ndim != 2:
        return _symmetric_int8(weight, axis)
    # A 2-D weight goes through its rows a few thousand at a time: a 262k-row vocabulary table would
    # otherwise need several float temporaries of its whole size.
    axis %= 2
    rows = range(0, weight.shape[0], ROWS_PER_CHUNK)
    if axis == 0:
        parts = [_symmetric_int8(weight[r : r + ROWS_PER_CHUNK], 0) for r in rows]
        return np.concatenate([q for q, _ in parts]), np.concatenate([s for _, s in parts])
    absmax = np.max([np.abs(weight[r : r + ROWS_PER_CHUNK]).max(axis=0) for r in rows], axis=0)
    scale = _scale(absmax)
    q = np.empty(weight.shape, np.int8)
    for r in rows:
        q[r : r + ROWS_PER_CHUNK] = _round_int8(weight[r : r + ROWS_PER_CHUNK], scale.reshape(1, -1))
    return q, scale


def _symmetric_int8(weight: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    reduce_axes = tuple(a for a in range(weight.ndim) if a != axis % weight.ndim)
    scale = _scale(np.abs(weight).max(axis=reduce_axes))
    shape = [1] * weight.ndim
    shape[axis] = -1
    return _round_int8(weight, scale.reshape(shape)), scale


def _scale(absmax: np.ndarray) -> np.ndarray:
    return np.where(absmax > 0, absmax / INT8_MAX, 1.0).astype(np.float32)


def _round_int8(weight: np.ndarray, scale: np.ndarray) -> np.ndarray:
    scaled = weight / scale
    return np.clip(np.rint(scaled, out=scaled), -INT8_MAX, INT8_MAX, out=scaled).astype(np.int8)


def asymmetric_uint8(low: float, high: float) -> tuple[np.float32, np.uint8]:
    """Scale and zero point for an activation range; the range always includes 0 so zero is exact."""
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    if high - low < 1e-12:
        return np.float32(1.0), np.uint8(0)
    scale = (high - low) / UINT8_MAX
    zero_point = int(np.clip(np.rint(-low / scale), 0, UINT8_MAX))
    return np.float32(scale), np.uint8(zero_point)


def blockwise(
    weight: np.ndarray, block: int, bits: int = 4, symmetric: bool = True, search_clip: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Round-to-nearest per-group quantization of a [K, N] weight along K in blocks of ``block``.

    Returns (q as int8 holding values of ``bits`` bits, scale [K/block, N], zero point or None). When
    ``search_clip`` is set, each group's range is shrunk by the factor (from a small grid) that minimises
    the group's squared error: still round-to-nearest, with a better step size for heavy-tailed groups.
    """
    k, n = weight.shape
    if k % block:
        raise ValueError(f"K={k} is not a multiple of the block size {block}")
    q = np.empty((k, n), np.int8)
    scale = np.empty((k // block, n), np.float32)
    zp = None if symmetric else np.empty((k // block, n), np.int8)
    # Columns are independent; a few thousand at a time keep the search's temporaries (several arrays of
    # the chunk's size per candidate clip) small next to a 262k-row vocabulary table.
    for start in range(0, n, COLUMNS_PER_CHUNK):
        columns = slice(start, start + COLUMNS_PER_CHUNK)
        q[:, columns], scale[:, columns], chunk_zp = _blockwise_columns(weight[:, columns], block, bits, symmetric, search_clip)
        if zp is not None:
            zp[:, columns] = chunk_zp
    return q, scale, zp


def _blockwise_columns(
    weight: np.ndarray, block: int, bits: int, symmetric: bool, search_clip: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    k, n = weight.shape
    groups = weight.reshape(k // block, block, n).astype(np.float32)
    qmax = 2 ** (bits - 1) - 1 if symmetric else 2**bits - 1
    qmin = -(2 ** (bits - 1)) if symmetric else 0
    if symmetric:
        absmax = np.abs(groups).max(axis=1)
    else:
        low, high = np.minimum(groups.min(axis=1), 0), np.maximum(groups.max(axis=1), 0)

    def parameters(ratio):
        """(scale, zero point) of every group with its range shrunk by ratio (a number or one per group)."""
        if symmetric:
            # absmax / 7.5 puts ±absmax half a step inside [-8, 7]: every value within half a step, all 16 levels used
            clipped = absmax * ratio
            return np.where(clipped > 0, clipped / (qmax + 0.5), 1.0), np.zeros_like(absmax)
        lo, hi = low * ratio, high * ratio
        scale = np.where(hi > lo, (hi - lo) / qmax, 1.0)
        return scale, np.clip(np.rint(-lo / scale), qmin, qmax)

    def rounded(scale, zp):
        q = groups / scale[:, None, :]
        np.rint(q, out=q)
        q += zp[:, None, :]
        return np.clip(q, qmin, qmax, out=q)

    # The search keeps each group's best ratio (the first of the smallest error) and rounds once with it.
    best_ratio = best_err = None
    for ratio in (np.linspace(1.0, 0.7, 7) if search_clip else ()):
        scale, zp = parameters(ratio)
        error = rounded(scale, zp)
        error -= zp[:, None, :]
        error *= scale[:, None, :]
        error -= groups
        err = np.square(error, out=error).sum(axis=1)
        if best_err is None:
            best_ratio, best_err = np.full(err.shape, ratio), err  # float64, as the ratio
        else:
            better = err < best_err
            best_ratio, best_err = np.where(better, ratio, best_ratio), np.where(better, err, best_err)
    scale, zp = parameters(1.0 if best_ratio is None else best_ratio)
    q = rounded(scale, zp).reshape(k, n).astype(np.int8)
    return q, scale.astype(np.float32), (None if symmetric else zp.astype(np.int8))


def dequantize_blockwise(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, block: int) -> np.ndarray:
    k, n = q.shape
    groups = q.reshape(k // block, block, n).astype(np.float32)
    zp = 0 if zero_point is None else zero_point.astype(np.float32)[:, None, :]
    return ((groups - zp) * scale[:, None, :]).reshape(k, n)
