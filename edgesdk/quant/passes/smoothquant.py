"""SmoothQuant: move activation outliers into the weights, channel by channel.

Transformer activations have a few channels far larger than the rest (the residual stream after
LayerNorm is the worst), so one per-tensor int8 scale wastes its levels on them. For a linear layer
X·W, dividing channel j of X by s_j and multiplying row j of W by s_j leaves the product unchanged while
flattening X; s_j = max|X_j|^α / max|W_j|^(1-α). The division is folded into the producing norm's gain
at no cost where it can be; otherwise a Mul is inserted (only if ``insert_mul``): channel_scale.py.

α is one number for the model, or searched per group of linears reading one activation: each candidate
(and no smoothing at all) is replayed on a sample of calibration rows with the int8 grids the recipe will
use (per-tensor activations, per-channel weights) and the one with the smallest output error is kept."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from ..edit import GraphEditor
from ..numerics import asymmetric_uint8, symmetric_int8
from ..observers import Ranges
from ..patterns import linear_groups
from .channel_scale import can_rescale, rescale


def outlier_ratio(channel_absmax: np.ndarray) -> float:
    median = float(np.median(channel_absmax))
    return float(channel_absmax.max()) / median if median > 0 else float("inf")


SEARCHED_ALPHAS = np.linspace(0.0, 1.0, 11)


class SmoothQuantPass(ir.passes.InPlacePass):
    """``alpha`` None: searched per group on ``samples`` (rows of each activation, from observers.RowSample)."""

    def __init__(
        self, stats: dict[str, Ranges], alpha: float | None = 0.5, insert_mul: bool = False,
        min_outlier_ratio: float = 0.0, samples: dict[str, np.ndarray] | None = None,
    ):
        super().__init__()
        self.stats, self.alpha, self.insert_mul, self.min_outlier_ratio = stats, alpha, insert_mul, min_outlier_ratio
        self.samples = samples or {}
        self.smoothed: list[str] = []
        self.alphas: dict[str, float | None] = {}  # per activation: the α chosen, None for left unsmoothed

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        editor = GraphEditor(graph)
        modified = False
        for activation, group in linear_groups(graph).items():
            stats = self.stats.get(activation.name)
            if stats is None or stats.channel_absmax is None:
                continue
            # Without outlier channels (largest channel range / median one below the ratio) a per-tensor
            # scale already fits, and an inserted Mul would only cost time.
            if outlier_ratio(stats.channel_absmax) < self.min_outlier_ratio:
                continue
            if not can_rescale(activation, group, self.insert_mul):
                continue
            act_max = stats.channel_absmax.astype(np.float64)
            weight_max = np.max([np.abs(l.weight_array()).max(axis=1 - l.input_axis) for l in group], axis=0)
            if act_max.shape != weight_max.shape:
                continue
            if self.alpha is None:
                alpha = _searched_alpha(self.samples.get(activation.name), stats, weight_max, group)
            else:
                alpha = self.alpha
            self.alphas[activation.name] = alpha
            if alpha is None:
                continue
            rescale(editor, activation, group, _smoothing_scale(act_max, weight_max, alpha))
            self.smoothed.append(activation.name)
            modified = True
        editor.finish()
        return ir.passes.PassResult(model, modified)


def _smoothing_scale(act_max: np.ndarray, weight_max: np.ndarray, alpha: float) -> np.ndarray:
    scale = np.power(np.maximum(act_max, 1e-5), alpha) / np.power(np.maximum(weight_max, 1e-5), 1 - alpha)
    return np.clip(scale, 1e-2, 1e3).astype(np.float32)


def _searched_alpha(rows: np.ndarray | None, ranges: Ranges, weight_max: np.ndarray, group) -> float | None:
    """The α (None: no smoothing) whose int8 replay of the group on ``rows`` is closest to the float one."""
    if rows is None or len(rows) == 0:
        return None
    act_max = ranges.channel_absmax.astype(np.float64)
    weights = [linear.k_by_n() for linear in group]
    references = [rows @ w for w in weights]

    def error(scale: np.ndarray) -> float:
        # activations: the uint8 grid of the smoothed tensor's whole calibration range; weights: per channel
        step, zero_point = asymmetric_uint8(float((ranges.channel_min / scale).min()), float((ranges.channel_max / scale).max()))
        x = (np.clip(np.rint(rows / scale / step) + zero_point, 0, 255) - zero_point) * step
        total = 0.0
        for w, reference in zip(weights, references):
            q, w_scale = symmetric_int8(w * scale[:, None], axis=1)
            total += float(np.sum((x @ (q * w_scale) - reference) ** 2))
        return total

    best_alpha, best_error = None, error(np.ones_like(act_max, dtype=np.float32))
    for alpha in SEARCHED_ALPHAS:
        candidate = error(_smoothing_scale(act_max, weight_max, float(alpha)))
        if candidate < best_error:
            best_alpha, best_error = float(alpha), candidate
    return best_alpha
