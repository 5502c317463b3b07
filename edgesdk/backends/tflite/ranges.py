"""Int8 range observation for the lowering (lowering.py): run the observing trace on the calibration feeds,
then one range per tap (softmax inputs floored below the smallest row maximum)."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np

from ...errors import ModelError

if TYPE_CHECKING:
    from .graph_view import GraphView
    from .tracer import Tracer

SOFTMAX_FLOOR = 12.0  # softmax inputs: range starts this far below the smallest row maximum


def _args(view: GraphView, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(feed[name]).astype(dtype) for name, dtype in view.inputs]


def observe(tracer: Tracer, feeds: list[dict[str, np.ndarray]]):
    """Run the observing trace on the feeds: (Ranges per tap, smallest row maximum per softmax
    input tap, integer range per integer tap)."""
    from ...quant.observers import Ranges

    function = tracer.function()
    stats: dict[str, Ranges] = defaultdict(Ranges)
    row_max: dict[str, float] = {}
    ints: dict[str, tuple[int, int]] = {}
    for feed in feeds:
        _, taps, int_taps = function(*_args(tracer.view, feed))
        for key, tensor in taps.items():
            x = tensor.numpy()
            stats[key].observe(x)
            if tracer.tap_tensor.get(key) in tracer.softmax_inputs:
                m = float(x.max(axis=-1).min())
                row_max[key] = min(row_max.get(key, m), m)
        for key, tensor in int_taps.items():
            x = tensor.numpy()
            low, high = ints.get(key, (int(x.min()), int(x.max())))
            ints[key] = (min(low, int(x.min())), max(high, int(x.max())))
    return stats, row_max, ints


def ranges_from(tracer: Tracer, stats, row_max) -> dict[str, tuple[float, float]]:
    return {key: _range(s, row_max.get(key)) for key, s in stats.items()}


def _range(stats, row_max: float | None) -> tuple[float, float]:
    low, high = stats.min, stats.max
    if row_max is not None and low < row_max - SOFTMAX_FLOOR:
        low = row_max - SOFTMAX_FLOOR  # below it only masked or negligible scores: saturate them there
    low, high = min(low, 0.0), max(high, 0.0)
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ModelError(f"a tensor's calibration range [{low}, {high}] is not finite; it cannot be int8")
    if high - low < 1e-6:
        high = low + 1e-6
    return float(low), float(high)
