"""Activation observers: min/max, per-channel ranges and percentile ranges over calibration samples."""

from __future__ import annotations

import numpy as np

import edgesdk
from edgesdk.calibration import CalibrationData
from edgesdk.quant.stats import TensorStats, collect
from tests.helpers import mlp_data, mlp_model


def test_minmax_and_channel_ranges_cover_every_sample():
    stats = TensorStats()
    stats.observe(np.array([[[1.0, -2.0, 0.5]]], np.float32))
    stats.observe(np.array([[[-3.0, 0.5, 0.25]]], np.float32))
    assert (stats.min, stats.max) == (-3.0, 1.0)
    assert np.allclose(stats.channel_absmax, [3.0, 2.0, 0.5])


def test_percentile_range_clips_a_lone_outlier():
    rng = np.random.default_rng(0)
    stats = TensorStats()
    for _ in range(8):
        x = rng.normal(0, 1, (1, 128, 64)).astype(np.float32)
        stats.observe(x)
    spike = np.zeros((1, 128, 64), np.float32)
    spike[0, 0, 0] = 500.0
    stats.observe(spike)
    low, high = stats.range(99.9)
    assert stats.max == 500.0 and 2.0 < high < 5.0 and -5.0 < low < -2.0
    assert stats.range(None) == (stats.min, stats.max)


def test_collect_observes_intermediate_tensors(tmp_path):
    graph = edgesdk.load(mlp_model(tmp_path / "mlp.onnx"))
    data = CalibrationData.from_npz(mlp_data(tmp_path / "calib.npz", samples=5))
    stats = collect(graph, ["h2", "y"], data)
    assert stats["h2"].min >= 0.0  # a ReLU output
    assert stats["y"].channel_absmax.shape == (8,)
    assert [o.name for o in graph.model.graph.outputs] == ["y"]  # the probe did not touch the graph
