"""GPTQ: round a weight one input row at a time, pushing each row's rounding error onto the rows not yet
rounded, weighted by the inverse Hessian of the layer's squared output error (H = XᵀX over calibration
tokens). Frantar et al., 2022, with the lazy block updates of its reference implementation.

Groups keep the scales and zero points of plain block-wise quantization of the original weight (with its
clip search): with act-order (rows taken by decreasing Hessian diagonal) a group's rows are not rounded
together, so its parameters are fixed beforehand ("static groups")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .numerics import blockwise

ROWS_PER_STEP = 128  # rows rounded between two lazy updates of the rest of the weight


@dataclass
class HessianFactor:
    """What GPTQ reads of a Hessian: the row order (act-order) and the upper Cholesky factor of its damped
    inverse in that order. The linears reading one activation (q, k and v; gate and up) share it: made once."""

    order: np.ndarray
    upper: np.ndarray  # float32 [K, K]


def factor_hessian(hessian: np.ndarray, act_order: bool = True, damp: float = 0.01) -> HessianFactor:
    h = np.array(hessian, dtype=np.float64)
    k = h.shape[0]
    dead = np.diag(h) == 0  # a channel never active: its rows do not matter, round them as they are
    h[dead, dead] = 1.0
    order = np.argsort(-np.diag(h), kind="stable") if act_order else np.arange(k)
    h = h[np.ix_(order, order)]
    h[np.diag_indices(k)] += damp * float(np.mean(np.diag(h)))
    return HessianFactor(order, _inverse_cholesky_upper(h).astype(np.float32))


def gptq(
    weight: np.ndarray,
    hessian: np.ndarray | HessianFactor,
    block: int,
    bits: int = 4,
    symmetric: bool = False,
    act_order: bool = True,
    damp: float = 0.01,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A [K, N] weight (K = input channels, blocks along K) rounded against ``hessian`` [K, K] (or its
    factor_hessian, which then holds act_order and damp); returns (q, scale [K/block, N], zero point or None)
    in the form ``numerics.blockwise`` does."""
    k, n = weight.shape
    _, scale, zero_point = blockwise(weight, block, bits=bits, symmetric=symmetric)
    qmin, qmax = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if symmetric else (0, 2**bits - 1)
    zp = np.zeros_like(scale) if zero_point is None else zero_point.astype(np.float32)

    factor = hessian if isinstance(hessian, HessianFactor) else factor_hessian(hessian, act_order, damp)
    order, upper = factor.order, factor.upper
    w = weight.astype(np.float32)[order]

    q = np.empty((k, n), np.int8)
    group = order // block
    for start in range(0, k, ROWS_PER_STEP):
        end = min(start + ROWS_PER_STEP, k)
        rows = w[start:end].copy()
        errors = np.empty_like(rows)
        for i in range(end - start):
            g = group[start + i]
            row = rows[i]
            qi = np.clip(np.rint(row / scale[g]) + zp[g], qmin, qmax)
            q[start + i] = qi
            error = (row - (qi - zp[g]) * scale[g]) / upper[start + i, start + i]
            rows[i + 1 :] -= np.outer(upper[start + i, start + i + 1 : end], error)
            errors[i] = error
        w[end:] -= upper[start:end, end:].T @ errors
    restored = np.empty_like(q)
    restored[order] = q
    return restored, scale, zero_point


def _inverse_cholesky_upper(h: np.ndarray) -> np.ndarray:
    """U upper-triangular with H⁻¹ = UᵀU: the Cholesky factor of the inverse Hessian GPTQ's updates read.

    From one factorization and one triangular inverse (not H⁻¹ formed and factored again): with P the
    reversal permutation and P·H·P = L·Lᵀ, H⁻¹ = (P·L⁻¹·P)ᵀ(P·L⁻¹·P), and P·L⁻¹·P is upper-triangular with a
    positive diagonal, so it is that factor."""
    from scipy.linalg import lapack

    lower = np.linalg.cholesky(h[::-1, ::-1])
    lower_inverse, info = lapack.dtrtri(lower, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"the Hessian's Cholesky factor is singular (LAPACK dtrtri info {info})")
    return lower_inverse[::-1, ::-1]
