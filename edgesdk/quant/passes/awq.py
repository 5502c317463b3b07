"""AWQ: activation-aware scales before block-wise rounding (Lin et al., 2023).

The weight rows that meet large activations matter most to the output. Multiplying those rows by s > 1
before rounding shrinks their relative rounding error; dividing the activation by s keeps the product
(channel_scale.py does both). s = mean|X|^α per input channel, normalised; α is searched per group of
linears sharing an input, on a sample of calibration rows, for the smallest output error of the rounded
group. α = 0 is plain rounding, so the search never makes a group worse on its sample."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..edit import GraphEditor
from ..numerics import blockwise, dequantize_blockwise
from ..observers import Several
from ..patterns import linear_groups
from .channel_scale import can_rescale, rescale

ALPHAS = np.linspace(0.0, 1.0, 21)


class AwqScalePass(ir.passes.InPlacePass):
    """Rescale each linear group by its searched s; the rounding pass that follows quantizes the scaled
    weights. ``observed``: a Several(ChannelMeanAbs, RowSample) per activation name."""

    def __init__(self, observed: dict[str, Several], block: int, bits: int = 4, symmetric: bool = False,
                 insert_mul: bool = True):
        super().__init__()
        self.observed, self.block, self.bits, self.symmetric, self.insert_mul = observed, block, bits, symmetric, insert_mul
        self.alphas: dict[str, float] = {}  # activation -> α chosen (0: left as it was)

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        editor = GraphEditor(model.graph)
        for activation, group in linear_groups(model.graph).items():
            observed = self.observed.get(activation.name)
            if observed is None or not can_rescale(activation, group, self.insert_mul):
                continue
            weights = [linear.k_by_n() for linear in group]
            if any(w.shape[0] % self.block for w in weights):
                continue
            alpha, scale = self.search(observed["rows"].rows, observed["mean_abs"].mean, weights)
            self.alphas[activation.name] = alpha
            if alpha > 0:
                rescale(editor, activation, group, scale)
        editor.finish()
        return ir.passes.PassResult(model, any(a > 0 for a in self.alphas.values()))

    def search(self, x: np.ndarray, mean_abs: np.ndarray, weights: list[np.ndarray]) -> tuple[float, np.ndarray]:
        """(α, s) with the smallest squared output error of the group rounded after scaling by s."""
        references = [x @ w for w in weights]
        best = (np.inf, 0.0, np.ones_like(mean_abs))
        salience = np.maximum(mean_abs.astype(np.float64), 1e-8)
        for alpha in ALPHAS:
            s = salience**alpha
            s = (s / np.sqrt(s.max() * s.min())).astype(np.float32)
            error = sum(float(np.sum((x @ self._rounded(w, s) - ref) ** 2)) for w, ref in zip(weights, references))
            if error < best[0]:
                best = (error, float(alpha), s)
        return best[1], best[2]

    def _rounded(self, w: np.ndarray, s: np.ndarray) -> np.ndarray:
        scaled = w * s[:, None]
        q, scale, zp = blockwise(scaled, self.block, bits=self.bits, symmetric=self.symmetric, search_clip=False)
        return dequantize_blockwise(q, scale, zp, self.block) / s[:, None]
